"""``pi05-moe eval`` on a tiny dataset made here: metrics, PNGs, report, and a metric that can
fail (a checkpoint overfitted to the data beats its own random initialisation by far).

The data goes through the real pipeline: two episode bags (bag_factory) converted by
``pi05_moe_training.dataset.convert``, 12 frames each at 50 Hz, 24x32 images; "hot" labels the
thermal camera active, "red" the L515. The model is the tiny preset at 28x28 pixels with a
10-step chunk.
"""

from __future__ import annotations

import json
import math
import re
import shutil

import numpy as np
import pytest
import torch
from bag_factory import JOINTS, write_episode_bag
from matplotlib.image import imread

from pi05_moe_bringup import cli
from pi05_moe_policy import Policy
from pi05_moe_policy.checkpoints import shipped_checkpoint
from pi05_moe_training.bags.reader import find_bags
from pi05_moe_training.dataset.convert import convert
from pi05_moe_training.dataset.episodes import EpisodeDataset
from pi05_moe_training.evaluate.metrics import (
    EvalRecord,
    action_error_metrics,
    json_ready,
    latency_metrics,
    routing_metrics,
)
from pi05_moe_training.evaluate.plots import plot_all
from pi05_moe_training.evaluate.report import write_report
from pi05_moe_training.train.config import TrainConfig
from pi05_moe_training.train.torch_dataset import TrainDataset

HORIZON = 10
MODEL = {'image_size': '28', 'action_horizon': str(HORIZON)}
EPISODE_FRAMES = 12  # 0.4 s at 50 Hz where every stream overlaps (checked in `dataset`)
TRAIN_STEPS = 50
PNGS = ('actions.png', 'routing.png', 'latency.png')


@pytest.fixture(scope='module')
def one_thread():
    """Two CPU cores shared with other work: one torch thread is several times faster."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp('eval_data')
    bags = root / 'bags'
    write_episode_bag(bags / 'a_hot', prompt='lift the hot cube', seconds=0.4)
    write_episode_bag(bags / 'b_red', prompt='lift the red cube', seconds=0.4, t0=2000.0)
    report = convert(find_bags([bags]), root / 'dataset', progress=False)
    assert not report.skipped and report.total_frames == 2 * EPISODE_FRAMES, report
    return {'bags': bags, 'dataset': root / 'dataset'}


@pytest.fixture(scope='module')
def checkpoints(data, tmp_path_factory, one_thread):
    """A random checkpoint and the same weights after overfitting both episodes (flow loss +
    routing loss, full batch, fixed seed)."""
    root = tmp_path_factory.mktemp('eval_ckpt')
    frames = TrainDataset(data['dataset'])
    config = TrainConfig(preset='tiny', model_overrides=MODEL).model_config(
        frames.robot_description())
    policy = Policy.from_config(config, seed=0, norm_stats=frames.norm_stats(config))
    random_dir = policy.save(root / 'random')
    frames.bind(policy)
    batch = frames.collate([frames[i] for i in range(len(frames))])
    torch.manual_seed(0)
    optimizer = torch.optim.AdamW(policy.model.parameters(), lr=2e-3)
    policy.model.train()
    for _ in range(TRAIN_STEPS):
        loss, _ = policy.compute_loss(batch, routing_loss_weight=1.0)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return {'random': random_dir, 'trained': policy.save(root / 'trained')}


def run_eval(inputs, checkpoint, out, *extra: str) -> dict:
    """`pi05-moe eval`, in this process; ``extra`` may turn the progress bar back on."""
    rc = cli.main(['eval', *map(str, inputs), '--checkpoint', str(checkpoint), '--out',
                   str(out), '--no-progress', *extra])
    assert rc == 0
    return json.loads((out / 'metrics.json').read_text())


@pytest.fixture(scope='module')
def runs(data, checkpoints, tmp_path_factory):
    root = tmp_path_factory.mktemp('eval_runs')
    for name, checkpoint in checkpoints.items():
        run_eval([data['dataset']], checkpoint, root / name)
    return {name: root / name for name in checkpoints}


def metrics(out) -> dict:
    return json.loads((out / 'metrics.json').read_text())


def numbers(tree) -> list:
    """Every leaf value of a metrics section."""
    if isinstance(tree, dict):
        return [x for v in tree.values() for x in numbers(v)]
    if isinstance(tree, list):
        return [x for v in tree for x in numbers(v)]
    return [tree]


def test_metrics_have_the_documented_keys_and_finite_values(runs):
    valid_rows = [min(HORIZON, EPISODE_FRAMES - t) for t in range(EPISODE_FRAMES)]
    for out in runs.values():
        m = metrics(out)
        assert set(m) == {'definitions', 'setup', 'action_error', 'routing', 'latency_ms'}
        assert {k.split('.')[0] for k in m['definitions']} == set(m) - {'definitions'}
        per_expert = m['routing'].pop('per_expert')  # null where a denominator is 0
        for section in ('action_error', 'routing', 'latency_ms'):
            values = [v for v in numbers(m[section]) if not isinstance(v, str)]
            assert values and all(isinstance(v, (int, float)) and math.isfinite(v)
                                  for v in values), (section, m[section])
        for score in per_expert.values():
            assert (score['precision'] is None) == (score['predicted'] == 0), per_expert
            assert 0 <= score['recall'] <= 1 and score['support'] == EPISODE_FRAMES
        for units in ('robot_units', 'normalized'):
            errors = m['action_error'][units]
            assert list(errors) == ['h1', 'h10', 'chunk']
            for key in errors:
                assert list(errors[key]['per_joint']) == JOINTS
                assert errors[key]['mean'] == pytest.approx(
                    np.mean(list(errors[key]['per_joint'].values())))
            assert errors['h1']['count'] == 2 * EPISODE_FRAMES
            assert errors['h10']['count'] == 2 * (EPISODE_FRAMES - HORIZON + 1)
            assert errors['chunk']['count'] == 2 * sum(valid_rows)
        routing = m['routing']
        assert routing['experts'] == ['l515', 'thermal']
        assert routing['frames'] == {'total': 24, 'labelled': 24, 'no_label': 0,
                                     'multi_label': 0}
        assert sum(numbers(routing['confusion'])) == 24
        assert {a: sum(row.values()) for a, row in routing['confusion'].items()} == {
            'l515': EPISODE_FRAMES, 'thermal': EPISODE_FRAMES}
        for row in routing['mean_weight'].values():
            assert sum(row.values()) == pytest.approx(1.0, abs=1e-5)
        lat = m['latency_ms']
        assert 0 < lat['p50'] <= lat['p90'] <= lat['p99'] <= lat['max']
        assert lat['count'] == 24
        assert {'transform', 'vision', 'denoise', 'total'} <= set(lat['stages_mean'])
        assert m['setup']['num_steps'] == 10 and m['setup']['noise_seed'] == 0


def test_overfitted_checkpoint_has_a_clearly_smaller_error_than_random(runs):
    random, trained = metrics(runs['random']), metrics(runs['trained'])
    for units in ('robot_units', 'normalized'):
        for key in ('h1', 'h10', 'chunk'):
            ours = trained['action_error'][units][key]['mean']
            baseline = random['action_error'][units][key]['mean']
            assert ours < 0.5 * baseline, (units, key, ours, baseline)
    assert trained['routing']['accuracy'] >= 0.9, trained['routing']


def test_metrics_agree_with_the_saved_predictions_and_the_recorded_actions(runs, data,
                                                                             checkpoints):
    m = metrics(runs['trained'])
    record = EvalRecord.load(runs['trained'] / 'predictions.npz')
    assert record.predicted.shape == (24, HORIZON, len(JOINTS))
    frames = EpisodeDataset(data['dataset'], horizon=HORIZON, load_images=False)
    for i in (0, 5, 13, 23):  # the comparison is with the recorded future actions
        item = frames[i]
        assert (record.episode[i], record.frame[i]) == (item['episode_index'],
                                                         item['frame_index'])
        np.testing.assert_array_equal(record.recorded[i], item['actions'])
        np.testing.assert_array_equal(record.is_pad[i], item['action_is_pad'])
    h1 = np.abs(record.predicted[:, 0] - record.recorded[:, 0]).mean(axis=0)  # (A,)
    assert list(m['action_error']['robot_units']['h1']['per_joint'].values()) == \
        pytest.approx(h1.tolist(), rel=1e-5)
    normalize = Policy.load(checkpoints['trained']).norm_stats.actions.normalize
    valid = ~record.is_pad  # (N, H)
    chunk = np.abs(normalize(record.predicted) - normalize(record.recorded))[valid].mean()
    assert m['action_error']['normalized']['chunk']['mean'] == pytest.approx(chunk, rel=1e-5)
    predicted = record.weights.argmax(axis=1)
    labelled = record.labels.argmax(axis=1)
    assert m['routing']['accuracy'] == pytest.approx(np.mean(predicted == labelled))
    assert m['latency_ms']['p90'] == pytest.approx(np.percentile(record.latency_ms, 90))


def test_subsets_and_reruns_see_the_same_noise_per_frame(runs, data, checkpoints, tmp_path,
                                                         capsys):
    run_eval([data['dataset']], checkpoints['trained'], tmp_path, '--stride', '2',
             '--max-frames', '5', '--progress')
    assert 'eval: 100%' in capsys.readouterr().err  # the progress bar
    subset = EvalRecord.load(tmp_path / 'predictions.npz')
    full = EvalRecord.load(runs['trained'] / 'predictions.npz')
    assert len(subset.frame) == 5 and set(subset.episode) == {0, 1}
    assert all(t % 2 == 0 for t in subset.frame)
    index = {(e, t): i for i, (e, t) in enumerate(zip(full.episode, full.frame))}
    rows = [index[(e, t)] for e, t in zip(subset.episode, subset.frame)]
    np.testing.assert_allclose(subset.predicted, full.predicted[rows], rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(subset.weights, full.weights[rows], atol=1e-6)


def test_pngs_are_real_images(runs):
    for name in PNGS:
        image = imread(runs['trained'] / name)  # (H, W, 3|4) float in [0, 1]
        assert image.ndim == 3 and image.shape[0] >= 200 and image.shape[1] >= 400, name
        rgb = np.round(image[..., :3].reshape(-1, 3) * 255).astype(np.int64)  # (P, 3)
        colours = np.unique(rgb @ np.array([65536, 256, 1]))
        assert len(colours) > 50, f'{name} looks blank'
        assert (rgb.min(axis=1) < 128).mean() > 0.005, f'{name} has almost no ink'


def test_report_links_resolve_and_hold_the_metrics(runs):
    out = runs['trained']
    text = (out / 'report.md').read_text()
    links = re.findall(r'\]\(([^)]+)\)', text)
    assert set(PNGS) <= set(links)
    for link in links:
        assert not link.startswith('/') and (out / link).is_file(), link
    m = metrics(out)
    assert all(f'| {j} |' in text for j in JOINTS)
    assert f'{m["action_error"]["robot_units"]["h1"]["mean"]:.4g}' in text
    assert f'{100 * m["routing"]["accuracy"]:.1f} %' in text


def test_eval_on_bags_goes_through_the_converter(runs, data, checkpoints, tmp_path):
    m = run_eval([data['bags']], checkpoints['trained'], tmp_path, '--max-frames', '4')
    assert m['setup']['converted_from_bags'] is True and m['setup']['dataset'] is None
    from_bags = EvalRecord.load(tmp_path / 'predictions.npz')
    full = EvalRecord.load(runs['trained'] / 'predictions.npz')
    index = {(e, t): i for i, (e, t) in enumerate(zip(full.episode, full.frame))}
    rows = [index[(e, t)] for e, t in zip(from_bags.episode, from_bags.frame)]
    assert len(rows) == 4
    np.testing.assert_array_equal(from_bags.recorded, full.recorded[rows])
    np.testing.assert_allclose(from_bags.predicted, full.predicted[rows], rtol=1e-5, atol=1e-3)


def test_checkpoint_may_be_a_training_output(data, checkpoints, tmp_path):
    """`pi05-moe train --out RUN` writes RUN/checkpoint-<step>/; eval takes RUN itself."""
    shutil.copytree(checkpoints['trained'], tmp_path / 'run' / 'checkpoint-30')
    m = run_eval([data['dataset']], tmp_path / 'run', tmp_path / 'out', '--max-frames', '2',
                 '--warmup', '0')
    assert m['setup']['checkpoint'] == str(tmp_path / 'run' / 'checkpoint-30')
    assert m['latency_ms']['count'] == 2


@pytest.mark.parametrize('spec', ['shipped:sim_small', 'preset:tiny'])
def test_checkpoint_takes_every_form_the_nodes_take(data, tmp_path, one_thread, spec):
    """`shipped:` and `preset:` as policy_node takes them (pi05_moe_policy.checkpoints)."""
    m = run_eval([data['dataset']], spec, tmp_path / 'out', '--max-frames', '1',
                 '--warmup', '0')
    assert m['latency_ms']['count'] == 1
    expected = str(shipped_checkpoint()) if spec.startswith('shipped:') else spec
    assert m['setup']['checkpoint'] == expected


def test_bad_inputs_exit_2_with_a_message(data, checkpoints, tmp_path, capsys):
    def fails(checkpoint, *extra) -> str:
        rc = cli.main(['eval', str(data['dataset']), '--checkpoint', str(checkpoint),
                       '--out', str(tmp_path / 'out'), '--no-progress', *extra])
        assert rc == 2
        return capsys.readouterr().err

    assert 'not a checkpoint directory' in fails(tmp_path / 'nowhere')
    assert 'EvalConfig.stride=0' in fails(checkpoints['trained'], '--stride', '0')
    assert "EvalConfig.device='gpu'" in fails(checkpoints['trained'], '--device', 'gpu')
    if not torch.cuda.is_available():
        assert 'CUDA is not available' in fails(checkpoints['trained'], '--device', 'cuda')
    three_joints = Policy.from_preset('tiny', robot_state_dim=7, robot_action_dim=3,
                                      **{k: int(v) for k, v in MODEL.items()})
    err = fails(three_joints.save(tmp_path / 'three'))
    assert 'does not fit' in err and 'robot_action_dim' in err
    assert not (tmp_path / 'out').exists()


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
def test_cuda_matches_cpu(runs, data, checkpoints, tmp_path):
    m = run_eval([data['dataset']], checkpoints['trained'], tmp_path, '--device', 'cuda',
                 '--max-frames', '4')
    assert m['setup']['device'] == 'cuda'
    on_gpu = EvalRecord.load(tmp_path / 'predictions.npz')
    full = EvalRecord.load(runs['trained'] / 'predictions.npz')
    index = {(e, t): i for i, (e, t) in enumerate(zip(full.episode, full.frame))}
    rows = [index[(e, t)] for e, t in zip(on_gpu.episode, on_gpu.frame)]
    normalize = Policy.load(checkpoints['trained']).norm_stats.actions.normalize
    np.testing.assert_allclose(normalize(on_gpu.predicted), normalize(full.predicted[rows]),
                               atol=2e-3)


def test_outputs_without_camera_moe(tmp_path):
    """A checkpoint without the camera MoE has no routing: a plain plot and a note."""
    n, h = 6, 3
    rng = np.random.default_rng(0)
    record = EvalRecord(rng.normal(size=(n, h, 2)).astype(np.float32),
                        rng.normal(size=(n, h, 2)).astype(np.float32), np.zeros((n, h), bool),
                        np.zeros((n, 0), np.float32), np.zeros((n, 0), np.float32),
                        np.array([0, 0, 0, 1, 1, 1]), np.array([0, 1, 2, 0, 1, 2]),
                        np.zeros(n), rng.uniform(10, 20, n), {'total': rng.uniform(10, 20, n)})
    images = plot_all(tmp_path, record, ['a', 'b'], [])
    assert imread(images['routing']).shape[0] > 100
    metrics = json_ready({
        'setup': {'checkpoint': 'c', 'data': 'd', 'frames': n, 'episodes': 2, 'stride': 1,
                  'max_frames': 0, 'device': 'cpu', 'num_steps': 10, 'noise_seed': 0},
        'action_error': action_error_metrics(record, ['a', 'b'], lambda x: x),
        'routing': routing_metrics(record.weights, record.labels, []),
        'latency_ms': latency_metrics(record.latency_ms, record.stage_ms)})
    text = write_report(tmp_path / 'report.md', metrics, images).read_text()
    assert 'no camera MoE' in text and '![' in text
