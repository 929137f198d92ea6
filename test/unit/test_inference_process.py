"""PolicyProcess (#15): Policy.infer in a child process, checked against the in-process policy."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

from pi05_moe_policy import Policy
from pi05_moe_policy.checkpoints import CheckpointError, load_policy
from pi05_moe_policy.inference_process import PolicyProcess, RemoteInferenceError

JOINTS = [f'joint_{i}' for i in range(7)]
LOAD = dict(spec='preset:tiny', seed=3, joint_names=JOINTS, num_threads=1)


@pytest.fixture(scope='module')
def served():
    process = PolicyProcess(LOAD, dict(num_steps=4))
    yield process
    process.close()


def test_the_child_gives_the_in_process_policys_actions_and_attributes(served):
    local = load_policy(**LOAD).set_inference(num_steps=4)
    obs = local.fake_obs(seed=1)
    noise = np.random.default_rng(0).standard_normal(
        (local.action_horizon, local.model_config.action_dim)).astype(np.float32)
    remote = served.infer(obs, noise=noise)
    here = local.infer(obs, noise=noise)
    np.testing.assert_allclose(remote['actions'], here['actions'], atol=1e-5)
    assert remote['routing'].keys() == here['routing'].keys()
    assert remote['timing']['total'] > 0
    for name in ('joint_names', 'camera_names', 'base_camera', 'expert_cameras',
                 'thermal_cameras', 'action_horizon', 'control_period_s', 'robot_state_dim',
                 'robot_action_dim'):
        assert getattr(served, name) == getattr(local, name), name
    assert served.data_config.max_token_len == local.data_config.max_token_len


def test_a_failed_inference_comes_back_as_one_error_and_the_child_serves_on(served):
    good = load_policy(**LOAD).fake_obs(seed=2)
    bad = {**good, 'images': {}}  # no base camera
    with pytest.raises(RemoteInferenceError, match="ValueError: base camera"):
        served.infer(bad)
    assert served.infer(good)['actions'].shape == (served.action_horizon, len(JOINTS))


def test_truncated_prompts_reach_the_parents_handler(served):
    cuts = []
    served.set_truncation_handler(lambda text, n: cuts.append((text, n)))
    obs = load_policy(**LOAD).fake_obs(seed=2)
    served.infer({**obs, 'prompt': ' '.join(['word'] * 300)})
    assert len(cuts) == 1 and cuts[0][1] > served.data_config.max_token_len
    served.infer(obs)
    assert len(cuts) == 1
    served.set_truncation_handler(None)


def test_a_bad_checkpoint_or_setting_is_one_checkpoint_error(tmp_path):
    with pytest.raises(CheckpointError, match='missing'):
        PolicyProcess(dict(spec=str(tmp_path)))
    concat = Policy.from_preset('tiny', seed=0, use_camera_moe=False).save(tmp_path / 'concat')
    with pytest.raises(CheckpointError, match='camera-MoE'):
        PolicyProcess(dict(spec=str(concat)), dict(sparse_threshold=0.5))


def test_close_ends_the_child_at_once_and_later_calls_fail():
    process = PolicyProcess(LOAD)
    pid = process.pid
    start = time.monotonic()
    process.close()
    assert time.monotonic() - start < 2.0
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    with pytest.raises(OSError):
        process.infer({})
    process.close()  # twice is fine


def test_the_warm_up_leaves_no_trace_of_the_fake_observation():
    """The start-up inference (a first chunk not slow: the child always, in process with
    torch_compile or CUDA) leaves the policy as loaded: the next sampled chunk equals a fresh
    policy's (the noise generator restarted), and RT-1's image history keeps no fake frame."""
    from pi05_moe_policy.inference_process import warm_up

    warmed = load_policy(**LOAD).set_inference(num_steps=4)
    warm_up(warmed)
    fresh = load_policy(**LOAD).set_inference(num_steps=4)
    obs = fresh.fake_obs(seed=1)
    np.testing.assert_allclose(warmed.infer(obs)['actions'], fresh.infer(obs)['actions'],
                               atol=1e-6)
    rt1 = load_policy(**dict(LOAD, spec='preset:rt1')).set_inference(inference_hz=10.0)
    warm_up(rt1)
    assert len(rt1.model._history) == 0 and rt1.model.history_call_stride == 2
