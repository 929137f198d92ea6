"""The RT-1 baseline behind the Policy API (#20): ``Policy.from_preset('rt1')``, the image
history at inference, save -> load, ``pi05-moe train --preset rt1`` on a real converted dataset
(with the previous frames, resume and TensorBoard), and ``pi05-moe sim-eval`` of an rt1
checkpoint directory.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from train_helpers import build_dataset

from pi05_moe_bringup.cli import main as cli
from pi05_moe_bringup.sim.robot import JOINT_NAMES
from pi05_moe_policy import Policy
from pi05_moe_policy.model.config import ModelConfig
from pi05_moe_policy.model.rt1 import RT1Config, RT1Model
from pi05_moe_policy.policy_config import checkpoint_meta, config_from_checkpoint
from pi05_moe_policy.policy_config import make_policy_config as make_cfg
from pi05_moe_training.train.torch_dataset import TrainDataset

FAST = dict(image_size=64, feature_grid=2, tokens_per_image=4)
FAST_ARGS = ['--model-overrides', 'image_size=64', 'feature_grid=2', 'tokens_per_image=4',
             'use_camera_moe=true']


@pytest.mark.parametrize('moe', [False, True])
def test_from_preset_infers_a_chunk_like_pi05(moe):
    policy = Policy.from_preset('rt1', seed=0, use_camera_moe=moe, **FAST)
    assert isinstance(policy.model, RT1Model) and isinstance(policy.model_config, RT1Config)
    out = policy.infer(policy.fake_obs(seed=1))
    assert {'actions', 'routing', 'timing'} <= set(out)  # main's #15 adds cameras_encoded
    assert out['actions'].shape == (policy.action_horizon, policy.robot_action_dim) == (10, 14)
    assert out['actions'].dtype == np.float32 and np.isfinite(out['actions']).all()
    assert {'transform', 'vision', 'transformer', 'model', 'total'} <= set(out['timing'])
    if moe:
        assert set(out['routing']) == {'l515', 'thermal'}
        assert sum(out['routing'].values()) == pytest.approx(1.0, abs=1e-6)
    else:
        assert out['routing'] == {}


def test_an_unknown_override_names_rt1_config():
    with pytest.raises(ValueError, match=r"unknown config fields \['vlm_depth'\]; RT1Config"):
        Policy.from_preset('rt1', vlm_depth=3)


def test_the_history_at_inference_is_the_training_history():
    """Two calls: the second sees the first's frame, exactly as a training batch whose
    image_history holds it; reset() forgets it; a new prompt starts a new history."""
    policy = Policy.from_preset('rt1', seed=0, use_camera_moe=True, **FAST)
    model = policy.model.eval()
    obs1, obs2 = policy.fake_obs(seed=1), policy.fake_obs(seed=2)
    b1, b2 = (policy.transform.sample(o['images'], o['state'], o['prompt']) for o in (obs1, obs2))
    b1, b2 = ({k: v[None] for k, v in b.items()} for b in (b1, b2))
    a1, _ = model.sample_actions(b1)
    a2, info2 = model.sample_actions(b2)
    assert len(model._history) == 1
    train_like = {**b2, 'image_history': b1['images'][:, None],
                  'image_history_masks': b1['image_masks'][:, None]}
    with torch.no_grad():
        cond, text = model.encode_instruction(train_like)
        images, masks = model.history_frames(train_like)
        cams = model.encode_cameras(images, masks, cond)
        frames, route = model.fuse_cameras(cams, masks, text, b2['token_mask'], b2['state'])
        logits = model.decode(frames)  # (1, H, A, bins)
    torch.testing.assert_close(a2, model.bins.undiscretise(logits.argmax(-1)))
    torch.testing.assert_close(info2['routing_weights'], route.weights.view(1, 2, 2)[:, -1])
    # reset: the first call of an episode repeats its own frame (use_history=False's answer)
    policy.reset()
    assert len(model._history) == 0
    alone, _ = model.sample_actions(b2, use_history=False)
    torch.testing.assert_close(model.sample_actions(b2)[0], alone)
    # another prompt: the frames encoded under the old one are dropped
    b3 = {k: v[None] for k, v in policy.transform.sample(
        obs2['images'], obs2['state'], 'lift the red cube').items()}
    model.sample_actions(b3)
    assert len(model._history) == 1
    assert a1.shape == a2.shape == (1, 10, 32)


def test_a_history_call_stride_takes_every_mth_call_as_history():
    """Called twice per training history spacing (m = 2): the history frame of call 4 is call
    2's, exactly as a policy with stride 1 that saw only calls 2 and 4; before two calls have
    passed, the oldest frame seen.  Compared on the logits (random weights' argmax bins barely
    move)."""
    policy = Policy.from_preset('rt1', seed=0, use_camera_moe=True, **FAST)
    model = policy.model.eval()
    batches = [{k: v[None] for k, v in policy.transform.sample(
        o['images'], o['state'], o['prompt']).items()}
        for o in (policy.fake_obs(seed=s) for s in range(5))]
    decode, seen = model.decode, []
    model.decode = lambda frames: seen.append(decode(frames)) or seen[-1]  # (1, H, A, bins)

    def logits(batch):
        model.sample_actions(batch)
        return seen[-1]

    model.set_history_call_stride(2)
    strided = [logits(b) for b in batches]
    model.set_history_call_stride(1)
    assert len(model._history) == 0
    model.sample_actions(batches[2])
    torch.testing.assert_close(strided[4], logits(batches[4]))
    model.reset_history()
    model.sample_actions(batches[0])
    torch.testing.assert_close(strided[1], logits(batches[1]))
    model.reset_history()  # and it is not the previous call's frame (the history matters)
    model.sample_actions(batches[3])
    assert (strided[4] - logits(batches[4])).abs().max().item() > 1e-4
    with pytest.raises(ValueError, match='history call stride must be an int >= 1, got 0'):
        model.set_history_call_stride(0)


def test_set_inference_paces_the_history_by_the_call_rate():
    """rt1: history frames 10 control periods (0.2 s at 50 Hz) apart in training; called at
    10 Hz (policy_node's max_inference_hz, sim-eval's --replan 5) every 2nd call's frame is
    history, at 5 Hz every call's; 0 (unknown) keeps every call's."""
    from pi05_moe_policy.nodes.config import PolicyNodeConfig

    policy = Policy.from_preset('rt1', seed=0, **FAST)
    assert (policy.model_config.history_stride, policy.control_period_s) == (10, 0.02)
    for hz, calls in ((10.0, 2), (5.0, 1), (0.0, 1), (2.5, 1), (25.0, 5)):
        policy.set_inference(inference_hz=hz)
        assert policy.model.history_call_stride == calls, hz
    with pytest.raises(ValueError, match="inference_hz must be a rate >= 0 .*got -1"):
        policy.set_inference(inference_hz=-1)
    node = PolicyNodeConfig(checkpoint='preset:rt1', max_inference_hz=10.0)
    assert node.inference_kwargs()['inference_hz'] == 10.0


def test_save_then_load_is_equal(tmp_path):
    policy = Policy.from_preset('rt1', seed=3, use_camera_moe=True, **FAST)
    obs = policy.fake_obs(seed=4)
    policy.save(tmp_path / 'ckpt')
    meta = json.loads((tmp_path / 'ckpt' / 'config.json').read_text())
    assert meta['model']['architecture'] == 'rt1' and meta['model']['preset'] == 'rt1'
    loaded = Policy.load(tmp_path / 'ckpt')
    assert isinstance(loaded.model, RT1Model)
    assert loaded.config.to_dict() == policy.config.to_dict()
    ours, theirs = policy.model.state_dict(), loaded.model.state_dict()
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)
    for _ in range(2):  # the second call uses the history of the first, in both
        a, b = policy.infer(obs), loaded.infer(obs)
        np.testing.assert_array_equal(a['actions'], b['actions'])
        assert a['routing'] == b['routing']
    # PI0.5's configs (no "architecture") still load as ModelConfig
    pi05 = config_from_checkpoint(checkpoint_meta(make_cfg('tiny')))
    assert type(pi05.model) is ModelConfig


@pytest.fixture(scope='module')
def dataset(tmp_path_factory):
    return build_dataset(tmp_path_factory.mktemp('rt1_train'))


def test_the_dataset_adds_the_previous_frames(dataset):
    policy = Policy.from_preset('rt1', seed=0, robot_state_dim=7, robot_action_dim=7,
                                control_period_s=0.02, **FAST)
    data = TrainDataset(dataset)
    data.bind(policy)
    assert (data.history, data.history_stride) == (2, 10)
    frames = data.frames
    episode_start = [i for i in range(len(frames)) if frames[i]['frame_index'] == 0]
    first, later = episode_start[0], episode_start[0] + 12
    for i, past in ((first, first), (later, later - 10)):
        sample = data[i]
        assert sample['image_history'].shape == (1, 3, 3, 64, 64)  # (k-1, C, 3, S, S)
        assert sample['image_history_masks'].shape == (1, 3)
        expect = data[past]['images']
        torch.testing.assert_close(sample['image_history'][0], expect)
    batch = data.collate([data[0], data[1]])
    assert batch['image_history'].shape == (2, 1, 3, 3, 64, 64)


def test_train_preset_rt1_logs_checkpoints_and_resumes(dataset, tmp_path):
    out = tmp_path / 'run'
    args = ['train', '--dataset', str(dataset), '--out', str(out), '--preset', 'rt1',
            *FAST_ARGS, '--num-workers', '0', '--no-progress', '--batch-size', '4',
            '--lr', '1e-3', '--warmup-steps', '1', '--log-every', '2', '--save-every', '3',
            '--routing-warmup-steps', '0', '--routing-ramp-steps', '0', '--device', 'cpu']
    assert cli([*args, '--max-steps', '6']) == 0
    assert cli([*args, '--max-steps', '9', '--resume']) == 0
    policy = Policy.load(out / 'latest')
    assert isinstance(policy.model, RT1Model) and policy.model_config.use_camera_moe
    assert policy.robot_action_dim == 7 and policy.action_horizon == 10
    state = torch.load(out / 'latest' / 'train_state.pt', weights_only=False)
    assert state['step'] == 9
    acc = EventAccumulator(str(out / 'tb'))
    acc.Reload()
    tags = set(acc.Tags()['scalars'])
    assert {'train/action_loss', 'train/routing_loss', 'train/routing_accuracy', 'train/loss',
            'train/routing_weight/l515', 'train/routing_weight/thermal'} <= tags, tags
    losses = [e.value for e in acc.Scalars('train/action_loss')]
    assert len(losses) >= 4 and all(np.isfinite(losses))
    assert losses[-1] < np.log(256)  # the cross-entropy over 256 bins fell from uniform
    # open-loop evaluation of the checkpoint on its dataset, episode by episode
    assert cli(['eval', str(dataset), '--checkpoint', str(out / 'latest'), '--out',
                str(tmp_path / 'eval'), '--no-progress', '--num-threads', '1']) == 0
    report = json.loads((tmp_path / 'eval' / 'metrics.json').read_text())
    assert report['setup']['frames'] == 34 and report['setup']['episodes'] == 2
    assert report['routing']['available'] and report['routing']['frames']['labelled'] == 34
    assert report['latency_ms']['count'] == 34


def test_sim_eval_runs_an_rt1_checkpoint_directory(tmp_path, capsys):
    n = len(JOINT_NAMES)
    policy = Policy.from_preset('rt1', seed=0, use_camera_moe=True, robot_state_dim=n,
                                robot_action_dim=n, joint_names=JOINT_NAMES)
    ckpt = policy.save(tmp_path / 'rt1')
    report = tmp_path / 'sim_eval.json'
    assert cli(['sim-eval', '--checkpoint', str(ckpt), '--episodes', '1', '--max-steps', '20',
                '--replan', '10', '--layout', 'slots', '--latency-s', '0', '--no-progress',
                '--num-threads', '1', '--out', str(report)]) == 0
    result = json.loads(report.read_text())
    assert result['latency']['inferences'] == 4
    for episode in result['episodes']:
        assert episode['steps'] == 20 and episode['inferences'] == 2
        assert episode['arm_travel_rad'] > 1e-3  # its chunks reached the arm
        assert sum(episode['mean_routing'].values()) == pytest.approx(1.0, abs=1e-5)
    assert 'overall' in capsys.readouterr().out


@pytest.mark.parametrize('flags, quoted', [
    (dict(rtc_max_delay=3), 'TrainConfig.rtc_max_delay=3: expected 0 with an RT-1 preset'),
    (dict(freeze='vlm'), "TrainConfig.freeze='vlm': expected only vision with an RT-1 preset"),
    (dict(lora=True), 'TrainConfig.lora=True: expected False with an RT-1 preset'),
    (dict(model_overrides={'vlm_depth': '2'}), "expected RT1Config or DataConfig fields"),
])
def test_training_flags_that_do_not_apply_to_rt1_are_refused(flags, quoted):
    from pi05_moe_training.train.config import TrainConfig

    with pytest.raises(ValueError, match=re.escape(quoted)):
        TrainConfig(preset='rt1', **flags)
