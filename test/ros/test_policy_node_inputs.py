"""policy_node over DDS against impossible inputs, long prompts and broken checkpoints (#17).

- joint positions beyond the declared limits (and 1e30) are dropped with a warning: no chunk is
  stamped with such a message, chunks stop once the last good state is older than max_age, and
  resume with valid joint states;
- a 0 K thermal frame is dropped: the thermal camera (an expert) goes stale and is left out
  (routing ``present`` 0) until plausible frames come again;
- a prompt cut to max_token_len is warned about once per prompt, in the node's log;
- a truncated model.safetensors or config.json, or a missing tokenizer_spec.json, stops the node
  with one fatal line naming the file (exit status 1, no traceback).
"""

from __future__ import annotations

import re
import shutil
import time

import numpy as np
import pytest
from policy_probe import JOINTS, PolicyProbe, stamp_key, start_policy_node
from std_msgs.msg import String

THERMAL_INDEX = 1  # tiny's expert cameras: l515, thermal


@pytest.fixture(scope='module')
def policy(ros, spawn, tmp_path_factory):
    proc = start_policy_node(spawn, tmp_path_factory.mktemp('policy') / 'policy.yaml')
    probe = PolicyProbe(ros)
    yield proc, probe
    ros.remove(probe.node)
    code = proc.stop()
    print('\n'.join(proc.lines))
    assert code == 0


@pytest.mark.timeout(90)
def test_joint_positions_beyond_the_limits_never_reach_a_chunk(policy, wait_until):
    proc, probe = policy
    wait_until(lambda: len(probe.chunks_since(0)) >= 2, 60, 'chunks from valid input',
               process=proc)
    mark, bad_stamps = proc.mark(), set()

    def impossible(stamp):
        bad_stamps.add(stamp_key(stamp))
        positions = [0.0] * len(JOINTS)
        positions[0] = 100.0 if len(bad_stamps) % 2 else 1e30
        return JOINTS, positions

    probe.joints = impossible
    t_bad = time.monotonic()
    proc.wait_for(r'\[WARN\].*\[policy_node\]: /joint_states: dropping physically impossible '
                  r'joint positions: waist=(100|1e\+30) not in \[-1, 1\]', timeout=10, since=mark)
    time.sleep(2.5)
    during = probe.chunks_since(t_bad)
    assert not [c for c in during if stamp_key(c.header.stamp) in bad_stamps]
    # The last good state ages out (max_age 0.5 s): then no chunk at all.
    assert not probe.chunks_since(t_bad + 1.5), 'chunks kept coming from impossible joints'
    proc.wait_for(r'skipping inference: /joint_states: newest message is', timeout=5,
                  since=mark)
    probe.joints = lambda stamp: (JOINTS, [0.1 * i for i in range(len(JOINTS))])
    t_good = time.monotonic()
    wait_until(lambda: probe.chunks_since(t_good), 20, 'chunks after valid joints', process=proc)


@pytest.mark.timeout(90)
def test_a_0_kelvin_thermal_frame_is_dropped_and_the_camera_left_out(policy, wait_until):
    proc, probe = policy
    wait_until(lambda: [r for r in probe.routing_since(time.monotonic() - 0.5)
                        if r.present[THERMAL_INDEX]], 30, 'routing with thermal present',
               process=proc)
    mark = proc.mark()
    good = probe.frames['thermal']
    probe.frames['thermal'] = lambda: (np.zeros((60, 80), np.uint16), 'mono16')
    t_bad = time.monotonic()
    proc.wait_for(r'\[WARN\].*\[policy_node\]: dropping frame: /thermal/image_raw: thermal '
                  r'frame with 100% of pixels outside \[173\.15, 1000\] K', timeout=10, since=mark)
    time.sleep(2.5)
    late = probe.routing_since(t_bad + 1.5)  # the last plausible frame is stale by then
    assert late, 'the policy stopped: an expert camera going bad must only leave it out'
    assert all(r.present[THERMAL_INDEX] == 0 for r in late)
    probe.frames['thermal'] = good
    t_good = time.monotonic()
    wait_until(lambda: [r for r in probe.routing_since(t_good) if r.present[THERMAL_INDEX]], 20,
               'thermal back in the routing', process=proc)


@pytest.mark.timeout(60)
def test_a_truncated_prompt_is_warned_once_per_prompt(policy, wait_until):
    proc, probe = policy
    mark = proc.mark()
    long_prompts = ['lift the red cube ' * 20, 'put the hot cube in the bin ' * 15]
    for prompt in long_prompts:
        probe.prompt_pub.publish(String(data=prompt))
        since, text = time.monotonic(), prompt.strip()
        wait_until(lambda s=since, p=text: len([c for c in probe.chunks_since(s)
                                                if c.prompt == p]) >= 4,
                   30, 'four chunks with the long prompt', process=proc)
    probe.prompt_pub.publish(String(data='lift the red cube'))
    lines = proc.matching(r'cut to max_token_len', since=mark)
    assert len(lines) == 2, '\n'.join(lines)
    assert all('[WARN]' in line and '[policy_node]' in line for line in lines)
    assert "prompt 'lift the red cube lift" in lines[0] and 'put the hot cube' in lines[1]
    assert not proc.matching(r'truncated to max_token_len', since=mark)  # no Python logging


@pytest.fixture(scope='module')
def saved_tiny(tmp_path_factory):
    from pi05_moe_policy import Policy

    return Policy.from_preset('tiny', robot_state_dim=7, robot_action_dim=7,
                              joint_names=tuple(JOINTS)).save(
        tmp_path_factory.mktemp('ckpt') / 'tiny')


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])


@pytest.mark.timeout(60)
@pytest.mark.parametrize(('name', 'damage', 'cause'), [
    ('model.safetensors', _truncate, r'not a valid safetensors file \(truncated\?\)'),
    ('tokenizer_spec.json', lambda p: p.unlink(), 'missing'),
    ('config.json', _truncate, r'not valid JSON \(truncated\?\)'),
])
def test_a_broken_checkpoint_stops_the_node_with_one_line(spawn_each, saved_tiny, tmp_path,
                                                          name, damage, cause):
    import yaml

    d = tmp_path / 'broken'
    shutil.copytree(saved_tiny, d)
    damage(d / name)
    path = tmp_path / 'policy.yaml'
    path.write_text(yaml.safe_dump({'policy_node': {'ros__parameters': {
        'checkpoint': str(d), 'joint_names': JOINTS}}}))
    proc = spawn_each(['policy_node', '--ros-args', '--params-file', str(path)])
    assert proc.proc.wait(timeout=50) == 1, proc.tail()
    proc.stop()
    fatal = proc.matching(r'\[FATAL\]')
    assert len(fatal) == 1, proc.text
    assert f'[policy_node]: {d / name}: ' in fatal[0], fatal[0]
    assert re.search(cause, fatal[0]), fatal[0]
    assert 'Traceback' not in proc.text, proc.text
