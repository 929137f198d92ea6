"""`pi05-moe demo` end to end: the sim graph, the recorder, two episodes, a bag and a PNG.

Random tiny weights (preset:tiny), so the episodes fail; what is checked is that the demo
orchestrates the graph, prints one line per episode with its routing, records a readable bag and
writes the routing plot, on a private ROS_DOMAIN_ID, in about half a minute.
"""

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
from domains import private_domain_id

from pi05_moe_training.bags.reader import BagReader

EPISODE = re.compile(r'^episode (\d): (lift the (?:red|hot) cube): success=(True|False) '
                     r'routing: l515=([01]\.\d\d) thermal=([01]\.\d\d) ', re.M)
# the columns that show whether the checkpoint keeps up with the real-time world
LATENCY = (r'chunk latency p50 (\d+) ms \(age on arrival (\d+\.\d{3}) s\), '
           r'held (\d+)% of the ticks')


@pytest.fixture
def env():
    return {**os.environ, 'ROS_DOMAIN_ID': str(private_domain_id()),
            'ROS_AUTOMATIC_DISCOVERY_RANGE': 'LOCALHOST', 'PYTHONUNBUFFERED': '1'}


def test_demo_runs_episodes_records_a_bag_and_plots_the_routing(tmp_path: Path, env):
    out = tmp_path / 'demo_out'
    proc = subprocess.run(
        ['pi05-moe', 'demo', '--out', str(out), '--checkpoint', 'preset:tiny', '--episodes', '2',
         '--episode-timeout', '3', '--set', 'policy_node.torch_compile=false'],  # compile: unit
        env=env, capture_output=True, text=True, timeout=170)
    log = proc.stdout + proc.stderr
    graph_log = (out / 'graph.log').read_text() if (out / 'graph.log').is_file() else ''
    assert proc.returncode == 0, f'{log}\n--- graph.log (tail) ---\n{graph_log[-4000:]}'

    episodes = EPISODE.findall(proc.stdout)
    assert [(i, prompt) for i, prompt, *_ in episodes] == [
        ('1', 'lift the red cube'), ('2', 'lift the hot cube')], proc.stdout
    for *_, l515, thermal in episodes:
        assert float(l515) + float(thermal) == pytest.approx(1.0, abs=0.011)  # 2-digit rounding
    figures = re.findall(r'^episode \d: .* ' + LATENCY + '$', proc.stdout, re.M)
    assert len(figures) == 2, proc.stdout
    assert all(int(ms) > 0 and float(age) > 0 and 0 <= int(held) <= 100
               for ms, age, held in figures)
    assert re.search(r'^demo: \d/2 episodes succeeded; ' + LATENCY + '$', proc.stdout, re.M)

    report = json.loads((out / 'demo.json').read_text())
    assert [e['task'] for e in report['episodes']] == ['lift_red_cube', 'lift_hot_cube']
    assert all(e['routing_messages'] > 0 for e in report['episodes'])
    assert all(0 < e['sim_time_s'] <= 3.5 for e in report['episodes'])
    for e in report['episodes']:
        assert e['chunks'] == len(e['chunk_latencies_ms']) == len(e['chunk_ages_s']) > 0
        assert e['latency_ms_median'] > 0 and 0.0 <= e['held_share'] <= 1.0
    assert report['chunks'] == sum(e['chunks'] for e in report['episodes'])
    assert 0.0 <= report['held_share'] <= 1.0 and report['latency_ms_median'] > 0

    bag = Path(re.search(r'^demo: bag (\S+)$', proc.stdout, re.M).group(1))
    assert bag.parent == out / 'bags' and (bag / 'metadata.yaml').is_file()
    with BagReader(bag) as reader:
        counts = {t: sum(1 for _ in reader.messages([t]))
                  for t in ('/pi05_moe/routing', '/joint_states', '/arm_controller/commands')}
    assert counts['/pi05_moe/routing'] >= sum(e['routing_messages'] for e in report['episodes'])
    assert counts['/joint_states'] > 100  # 50 Hz over more than 2 x 3 s of sim time
    assert counts['/arm_controller/commands'] > 0  # the executor was enabled in the episodes

    png = Path(re.search(r'^demo: routing plot (\S+)$', proc.stdout, re.M).group(1))
    assert png == out / 'routing.png'
    assert png.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n' and png.stat().st_size > 5000
