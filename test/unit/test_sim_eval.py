"""`pi05-moe sim-eval`: the mechanics with a random tiny policy, and the routing metrics.

The tiny policy has random weights, so it fails the task; what is checked is that the loop ran,
its actions moved the arm, the routing weights are a distribution over the expert cameras, and
the report has every figure the issue asks for.
"""

import json
import re

import numpy as np
import pytest

from pi05_moe_bringup.cli import main as cli
from pi05_moe_bringup.sim_tools.closed_loop import EpisodeResult, Inference
from pi05_moe_bringup.sim_tools.evaluate import report, summarise_episode

TASKS = ('lift_red_cube', 'lift_hot_cube')


def test_sim_eval_runs_a_tiny_policy_and_writes_the_report(tmp_path, capsys):
    out = tmp_path / 'sim_eval.json'
    code = cli(['sim-eval', '--checkpoint', 'preset:tiny', '--episodes', '1', '--max-steps', '20',
                '--replan', '10', '--seed', '7', '--noise-scale', '0.5', '--layout', 'slots',
                '--latency-s', '0', '--no-progress', '--out', str(out)])
    assert code == 0
    result = json.loads(out.read_text())
    assert result['tasks'] == list(TASKS) and result['noise_scale'] == 0.5
    assert result['layout'] == 'slots'
    # the report states the latency model it ran with: here the world waited (fixed 0 s)
    assert result['latency']['model'] == 'fixed' and result['latency']['fixed_s'] == 0.0
    assert result['latency']['median_s'] == 0.0 and result['latency']['inferences'] == 4
    assert result['latency']['infer_ms_median'] > 0  # still measured, for the record
    assert [e['task'] for e in result['episodes']] == list(TASKS)
    for episode in result['episodes']:
        assert episode['seed'] == 7 and episode['steps'] == 20 and episode['inferences'] == 2
        assert episode['success'] is False
        assert episode['arm_travel_rad'] > 1e-3  # the policy's actions reached the arm
        assert 0 < episode['closest_m'] < 1.0
        assert episode['safety']['executed'] == 20
        weights = episode['mean_routing']
        assert set(weights) == {'l515', 'thermal'}
        assert sum(weights.values()) == pytest.approx(1.0, abs=1e-5)
        assert episode['routing_choice'] in weights
    families = result['families']
    assert families['lift_red_cube']['labelled_expert'] == 'l515'
    assert families['lift_hot_cube']['labelled_expert'] == 'thermal'
    for name, fam in families.items():
        assert fam['episodes'] == 1 and fam['success_rate'] == 0.0
        episode = result['episodes'][list(families).index(name)]
        assert fam['median_closest_m'] == episode['closest_m']
        assert fam['routing_accuracy_inference'] in (0.0, 1.0)  # 2 inferences, one episode
        assert fam['prefers'] in ('l515', 'thermal')
        assert fam['prefers_labelled'] == (fam['prefers'] == fam['labelled_expert'])
    overall = result['overall']
    assert overall['routing_accuracy_episode'] == np.mean(
        [e['routing_choice_correct'] for e in result['episodes']])
    assert overall['meets_success_goal'] is False
    printed = capsys.readouterr().out
    assert re.search(r'lift_hot_cube seed 7: success=False steps=20 closest=\d+\.\d cm '
                     r'routing: l515=', printed)
    assert 'overall' in printed and f'wrote {out}' in printed
    assert re.search(r'^latency: fixed 0 s of sim time per chunk \(inference wall-clock median '
                     r'\d+ ms, p90 \d+ ms\)$', printed, re.M)
    assert re.search(r'^family\s+episodes\s+success\s+held\s', printed, re.M)
    assert re.search(r'^overall\s+2\s+0% \(0\)\s+0%\s', printed, re.M)  # latency 0: never held


def test_sim_eval_lets_the_world_move_for_the_measured_inference_time_by_default(tmp_path,
                                                                                 capsys):
    out = tmp_path / 'sim_eval.json'
    assert cli(['sim-eval', '--checkpoint', 'expert', '--tasks', 'lift_red_cube', '--episodes',
                '1', '--max-steps', '20', '--real-time-factor', '0.5', '--no-progress',
                '--out', str(out)]) == 0
    result = json.loads(out.read_text())
    latency = result['latency']
    assert latency['model'] == 'measured' and latency['real_time_factor'] == 0.5
    assert latency['fixed_s'] is None and latency['inferences'] == 2
    # the sim time used is the measured wall-clock time, scaled by the declared factor
    assert latency['median_s'] == pytest.approx(latency['infer_ms_median'] * 1e-3 * 0.5)
    assert 0 < latency['median_s'] <= latency['p90_s'] <= latency['max_s']
    # the first chunk lands after its (non-zero) latency: the arm held until the next tick
    episode = result['episodes'][0]
    assert episode['safety']['hold_no_chunk'] >= 1 and episode['held_share'] > 0
    printed = capsys.readouterr().out
    assert re.search(r'^latency: measured \(wall-clock inference time x real-time factor 0\.5\): '
                     r'median \d\.\d{3} s, p90 \d\.\d{3} s of sim time over 2 inferences',
                     printed, re.M)
    assert re.search(r'goals: .*\(at latency measured', printed)


def test_sim_eval_latency_sweep_prints_success_against_latency(tmp_path, capsys):
    out = tmp_path / 'sweep.json'
    assert cli(['sim-eval', '--checkpoint', 'expert', '--tasks', 'lift_red_cube', '--episodes',
                '1', '--max-steps', '20', '--latency-sweep', '0,0.1,measured', '--no-progress',
                '--out', str(out)]) == 0
    sweep = json.loads(out.read_text())['sweep']
    assert [r['latency']['fixed_s'] for r in sweep] == [0.0, 0.1, None]
    assert [r['latency']['model'] for r in sweep] == ['fixed', 'fixed', 'measured']
    # 0.1 s = 5 control ticks held before the first chunk lands; none at 0
    assert [r['episodes'][0]['safety']['hold_no_chunk'] for r in sweep[:2]] == [0, 5]
    assert sweep[1]['overall']['held_share'] == pytest.approx(5 / 20)
    printed = capsys.readouterr().out
    table = printed[printed.index('success against latency:'):].splitlines()[1:5]
    assert re.match(r'latency\s+lift_red_cube\s+overall\s+held\s+latency used', table[0])
    assert [row.split()[0] for row in table[1:]] == ['0', '0.1', 'measured']
    assert re.match(r'0\.1 s\s+0% \(0/1\)\s+0% \(0/1\)\s+25%\s+0\.100 / 0\.100 s$', table[2])


@pytest.mark.parametrize('argv, message', [
    (['--latency-s', '0.2', '--latency-sweep', '0,0.1'], 'does not go with'),
    (['--latency-sweep', '0,fast'], "--latency-sweep '0,fast'"),
    (['--latency-sweep', '0,-1'], 'latency_s=-1.0'),
    (['--real-time-factor', '0'], 'real_time_factor=0'),
    (['--jobs', '2'], '--jobs 2 runs episodes side by side'),  # measured latency: refused
    (['--jobs', '0', '--latency-s', '0.4'], '--jobs must be >= 1, got 0'),
])
def test_sim_eval_rejects_bad_latency_arguments(tmp_path, capsys, argv, message):
    assert cli(['sim-eval', '--checkpoint', 'expert', *argv,
                '--out', str(tmp_path / 'r.json')]) == 2
    assert message in capsys.readouterr().out
    assert not (tmp_path / 'r.json').exists()


def test_sim_eval_jobs_run_the_same_episodes_in_worker_processes(tmp_path, capsys):
    """--jobs 2 spreads the episodes over two processes: at a fixed latency each comes out as
    in the serial run (a deterministic policy), reported in the serial order."""
    argv = ['sim-eval', '--checkpoint', 'preset:tiny', '--episodes', '2', '--max-steps', '30',
            '--replan', '10', '--seed', '11', '--noise-scale', '0', '--latency-s', '0.1',
            '--layout', 'slots', '--num-threads', '1', '--no-progress']
    assert cli([*argv, '--out', str(tmp_path / 'serial.json')]) == 0
    assert cli([*argv, '--jobs', '2', '--out', str(tmp_path / 'jobs.json')]) == 0
    assert '2 worker processes' in capsys.readouterr().out
    serial, jobs = (json.loads((tmp_path / f).read_text()) for f in ('serial.json', 'jobs.json'))
    assert [(e['task'], e['seed']) for e in jobs['episodes']] == [
        (t, s) for t in TASKS for s in (11, 12)]
    keys = ('success', 'steps', 'arm_travel_rad', 'closest_m', 'mean_routing', 'safety')
    for a, b in zip(serial['episodes'], jobs['episodes']):
        assert {k: a[k] for k in keys} == {k: b[k] for k in keys}
    assert jobs['latency']['inferences'] == serial['latency']['inferences'] == 12
    assert jobs['overall'] == serial['overall']


def test_sim_eval_rejects_an_unknown_layout(tmp_path, capsys):
    assert cli(['sim-eval', '--checkpoint', 'expert', '--layout', 'grid',
                '--out', str(tmp_path / 'r.json')]) == 2
    assert "layout='grid'" in capsys.readouterr().out
    assert not (tmp_path / 'r.json').exists()


def _episode(task, labels, routings, success=True):
    return EpisodeResult(task=task, prompt=task, seed=0, camera_labels=labels, success=success,
                         steps=10, sim_time_s=0.2,
                         inferences=[Inference(0.0, r, 1.0, 0.0) for r in routings])


def test_routing_accuracy_per_inference_and_per_episode():
    heat = {'l515': 0, 'thermal': 1}
    # 3 inferences: thermal wins twice -> episode choice thermal (majority), accuracy 2/3
    a = summarise_episode(_episode('hot', heat, [{'l515': 0.2, 'thermal': 0.8},
                                                 {'l515': 0.7, 'thermal': 0.3},
                                                 {'l515': 0.4, 'thermal': 0.6}]))
    assert a['routing_accuracy'] == pytest.approx(2 / 3)
    assert a['routing_choice'] == 'thermal' and a['routing_choice_correct'] is True
    assert a['mean_routing'] == pytest.approx({'l515': 1.3 / 3, 'thermal': 1.7 / 3})
    # a 1:1 tie goes to the larger mean weight: l515 (0.9 + 0.4) beats thermal (0.1 + 0.6)
    b = summarise_episode(_episode('hot', heat, [{'l515': 0.9, 'thermal': 0.1},
                                                 {'l515': 0.4, 'thermal': 0.6}], success=False))
    assert b['routing_choice'] == 'l515' and b['routing_choice_correct'] is False
    summary = report([a, b], ['hot'])
    fam = summary['families']['hot']
    assert fam['success_rate'] == 0.5
    assert fam['routing_accuracy_inference'] == pytest.approx(3 / 5)
    assert fam['routing_accuracy_episode'] == 0.5
    # on average over both episodes l515 weighs more ((1.3/3 + 0.65) / 2 > 1/2)
    assert fam['prefers'] == 'l515' and fam['prefers_labelled'] is False
    assert summary['overall']['meets_routing_goal'] is False


def test_an_episode_without_a_router_has_no_routing_figures():
    e = summarise_episode(_episode('red', {'l515': 1, 'thermal': 0}, [{}, {}]))
    assert e['mean_routing'] == {} and e['routing_accuracy'] is None
    assert e['routing_choice'] is None and e['routing_choice_correct'] is None
    overall = report([e], ['red'])['overall']
    assert overall['routing_accuracy_inference'] is None
    assert overall['meets_routing_goal'] is None and overall['meets_success_goal'] is True
    assert np.isclose(overall['success_rate'], 1.0)


def test_sim_eval_like_demo_runs_the_demos_episodes_with_the_graphs_settings(tmp_path, capsys):
    """--like-demo: episode k is task k mod 2 with seed + k, as `pi05-moe demo` runs them;
    --set reaches policy_node's inference settings (here 2 Euler steps and RTC) and the
    executor's mode, and the report records them."""
    out = tmp_path / 'like_demo.json'
    code = cli(['sim-eval', '--checkpoint', 'preset:tiny', '--episodes', '3', '--like-demo',
                '--max-steps', '20', '--replan', '5', '--seed', '40', '--layout', 'slots',
                '--latency-s', '0.04', '--no-progress', '--out', str(out),
                '--set', 'policy_node.num_steps=2', '--set', 'policy_node.rtc=true',
                '--set', 'executor_node.mode=rtc', '--set', 'policy_node.torch_compile=false'])
    assert code == 0
    result = json.loads(out.read_text())
    assert [(e['task'], e['seed']) for e in result['episodes']] == [
        ('lift_red_cube', 40), ('lift_hot_cube', 41), ('lift_red_cube', 42)]
    assert result['policy_inference'] == {'num_steps': 2, 'rtc': True, 'torch_compile': False}
    assert result['executor']['mode'] == 'rtc' and result['loop']['executor_mode'] == 'rtc'
    assert 'policy {' in capsys.readouterr().out
    assert cli(['sim-eval', '--checkpoint', 'preset:tiny', '--episodes', '1', '--no-progress',
                '--out', str(out), '--set', 'policy_node.checkpoint=x']) == 2
    assert 'uses only' in capsys.readouterr().out
