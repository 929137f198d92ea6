"""policy_node running an RT-1 checkpoint over DDS (#20): the same node, topics and messages as
for PI0.5; only the checkpoint directory differs.

An rt1 checkpoint (random weights, routed cameras, the probe's 7 joints) is saved with
``Policy.save``; the node loads it from its ``checkpoint`` parameter, and the probe's cameras,
joint states and prompt give ActionChunks of RT-1's horizon (10 steps of 0.02 s) and routing
weights over the expert cameras.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import yaml
from policy_probe import JOINTS, POLICY, PolicyProbe

from pi05_moe_policy import Policy
from pi05_moe_policy.nodes.config import PolicyNodeConfig


@pytest.fixture(scope='module')
def rt1_node(ros, spawn, tmp_path_factory):
    tmp = tmp_path_factory.mktemp('rt1_node')
    n = len(JOINTS)
    policy = Policy.from_preset('rt1', seed=0, use_camera_moe=True, robot_state_dim=n,
                                robot_action_dim=n, joint_names=tuple(JOINTS))
    ckpt = policy.save(tmp / 'rt1')
    # The probe's latched prompt may reach the node after its first chunks: start with it.
    params = dict(POLICY, checkpoint=str(ckpt), prompt='lift the red cube')
    PolicyNodeConfig(**params)
    path = tmp / 'policy.yaml'
    path.write_text(yaml.safe_dump({'policy_node': {'ros__parameters': params}}))
    proc = spawn(['policy_node', '--ros-args', '--params-file', str(path)])
    proc.wait_for(r'\[policy_node\]: .*rt1: cameras .* horizon 10 x 0.02 s', timeout=60)
    probe = PolicyProbe(ros, 'rt1_probe')
    yield proc, probe
    ros.remove(probe.node)
    code = proc.stop()
    print('\n'.join(proc.lines))
    assert code == 0


@pytest.mark.timeout(120)
def test_rt1_checkpoint_publishes_chunks_and_routing(rt1_node, wait_until):
    proc, probe = rt1_node
    wait_until(lambda: len(probe.chunks_since(0)) >= 3 and len(probe.routing_since(0)) >= 3,
               60, 'three chunks and routing messages from the rt1 checkpoint', process=proc)
    for chunk in probe.chunks_since(0)[:3]:
        assert (chunk.horizon, chunk.action_dim, chunk.period) == (10, len(JOINTS), 0.02)
        assert list(chunk.joint_names) == JOINTS
        assert chunk.prompt == 'lift the red cube'
        actions = np.asarray(chunk.actions).reshape(chunk.horizon, chunk.action_dim)
        assert np.isfinite(actions).all()
        assert list(chunk.expert_names) == ['l515', 'thermal']
        assert math.isclose(sum(chunk.routing_weights), 1.0, abs_tol=1e-5)
    for routing in probe.routing_since(0)[:3]:
        assert list(routing.expert_names) == ['l515', 'thermal']
        assert list(routing.present) == [1, 1]
        assert math.isclose(sum(routing.weights), 1.0, abs_tol=1e-5)
    # successive chunks come from successive observations (the node keeps inferring)
    stamps = [(c.header.stamp.sec, c.header.stamp.nanosec) for c in probe.chunks_since(0)]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
