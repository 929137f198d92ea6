"""``pi05-moe train`` end to end on a tiny real dataset: the loss falls, checkpoints load with
``Policy.load`` and carry the dataset's stats, TensorBoard gets every scalar."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from train_helpers import FRAMES, build_dataset, train_args

from pi05_moe_bringup import cli
from pi05_moe_policy import Policy
from pi05_moe_training.dataset.episodes import EpisodeDataset
from pi05_moe_training.dataset.stats import chunk_action_values
from pi05_moe_training.train.checkpointing import load_train_config, load_train_state
from pi05_moe_training.train.config import TrainConfig
from pi05_moe_training.train.torch_dataset import TrainDataset

STEPS = 16


@pytest.fixture(scope='module')
def dataset(tmp_path_factory):
    return build_dataset(tmp_path_factory.mktemp('train'))


@pytest.fixture(scope='module')
def run(dataset, tmp_path_factory):
    """One short run: routing loss on from step 0, checkpoints every 4 steps, keep 2."""
    out = tmp_path_factory.mktemp('run') / 'ckpt'
    rc = cli.main(train_args(
        dataset, out, '--max-steps', str(STEPS), '--batch-size', '4', '--lr', '1e-3',
        '--warmup-steps', '2', '--log-every', '4', '--save-every', '4', '--keep-last', '2',
        '--routing-warmup-steps', '0', '--routing-ramp-steps', '0',
        '--routing-loss-weight', '1.0'))
    assert rc == 0
    return out


def scalars(out) -> dict[str, list[float]]:
    acc = EventAccumulator(str(out / 'tb'))
    acc.Reload()
    return {tag: [e.value for e in acc.Scalars(tag)] for tag in acc.Tags()['scalars']}


def test_loss_decreases(run):
    s = scalars(run)
    loss = s['train/loss']
    assert len(loss) == STEPS // 4
    assert np.mean(loss[-2:]) < 0.8 * loss[0], loss
    assert s['train/routing_loss'][-1] < s['train/routing_loss'][0], s['train/routing_loss']


def test_tensorboard_has_every_scalar(run):
    s = scalars(run)
    expected = {'train/loss', 'train/action_loss', 'train/routing_loss',
                'train/routing_loss_weight', 'train/routing_accuracy',
                'train/routing_weight/l515', 'train/routing_weight/thermal', 'train/lr',
                'train/grad_norm', 'perf/steps_per_s', 'perf/samples_per_s'}
    assert expected <= set(s)
    assert all(len(v) == STEPS // 4 for k, v in s.items() if k in expected)
    w = np.array(s['train/routing_weight/l515']) + np.array(s['train/routing_weight/thermal'])
    np.testing.assert_allclose(w, 1.0, atol=1e-5)  # mean gate weights of a softmax
    assert all(0.0 <= a <= 1.0 for a in s['train/routing_accuracy'])
    assert s['train/routing_loss_weight'] == [1.0] * (STEPS // 4)
    lr = s['train/lr']
    assert max(lr) == pytest.approx(1e-3, rel=0.05) and lr[-1] < 0.1 * max(lr)  # the cosine


def test_checkpoints_rotate_and_latest_points_at_the_last(run):
    names = sorted(p.name for p in run.iterdir())
    assert names == ['checkpoint-12', 'checkpoint-16', 'latest', 'tb']
    assert (run / 'latest').resolve() == (run / 'checkpoint-16').resolve()
    state = load_train_state(run / 'latest')
    assert state['step'] == STEPS and state['world_size'] == 1
    assert (state['epoch'], state['batch_in_epoch']) == (1, 8)  # 8 batches of 4 an epoch
    assert len(state['rng']) == 1


def test_checkpoint_is_a_policy_with_the_dataset_description(run, dataset):
    policy = Policy.load(run / 'latest')
    model, cfg = policy.model_config, policy.data_config
    frames = EpisodeDataset(dataset, horizon=model.action_horizon)
    stats = frames.stats()
    assert (model.preset, model.image_size, model.action_horizon) == ('tiny', 56, 10)
    assert (cfg.robot_state_dim, cfg.robot_action_dim) == (7, 7)
    assert cfg.joint_names == tuple(frames.action_names)
    assert cfg.control_period_s == pytest.approx(1 / frames.fps)
    # The run's loss schedule is recorded with the run (train_config.json), not the policy.
    assert load_train_config(run / 'latest')['routing_loss_weight'] == 1.0
    # Delta actions (the default): every joint but the gripper relative to the state, and the
    # action stats are those of the chunks the model learns, state subtracted.
    gripper = [name == 'gripper' for name in frames.action_names]
    assert cfg.delta_action_mask == tuple(not g for g in gripper) and any(gripper)
    chunks = np.concatenate([
        chunk_action_values(a['state'], a['action'], 10, ~np.array(gripper))
        for a in map(frames.episode_arrays, range(frames.num_episodes))])  # (N*10, 7)
    np.testing.assert_allclose(policy.norm_stats.actions.q01, np.quantile(chunks, 0.01, axis=0),
                               rtol=1e-5)
    np.testing.assert_allclose(policy.norm_stats.actions.q99[gripper],
                               stats['action']['q99'][gripper], rtol=1e-5)
    np.testing.assert_allclose(policy.norm_stats.state.q99, stats['observation.state']['q99'])
    frame = frames[3]
    out = policy.infer({'images': frame['images'], 'state': frame['state'],
                        'prompt': frame['prompt']}, num_steps=2)
    assert out['actions'].shape == (10, 7) and np.isfinite(out['actions']).all()
    assert set(out['routing']) == {'l515', 'thermal'}
    saved = TrainConfig.from_dict(json.loads((run / 'latest' / 'train_config.json').read_text()))
    assert (saved.max_steps, saved.batch_size, saved.dataset) == (STEPS, 4, str(dataset))


@pytest.mark.parametrize('make_args, message', [
    (lambda ds, run, tmp: train_args(ds, run, '--max-steps', '1'),
     'already holds checkpoints; pass --resume'),
    (lambda ds, run, tmp: train_args(ds, tmp / 'empty', '--resume'), '--resume: no checkpoint'),
    (lambda ds, run, tmp: train_args(ds, tmp / 'x', '--model-overrides', 'control_period_s=0.1'),
     'does not fit the model: control_period_s: model 0.1'),
    (lambda ds, run, tmp: train_args(tmp / 'nothing', tmp / 'x'), 'not a dataset'),
    (lambda ds, run, tmp: train_args(ds, tmp / 'x', '--lr', '-1'), 'TrainConfig.lr=-1.0'),
])
def test_errors_are_one_clear_line(run, dataset, tmp_path, capsys, make_args, message):
    assert cli.main(make_args(dataset, run, tmp_path)) == 2
    err = capsys.readouterr().err
    assert err.startswith('pi05-moe train: error: ') and message in err, err
    assert list(run.iterdir()) and not (tmp_path / 'x').exists()  # nothing written


def test_oversampling_draws_the_first_frames_of_each_episode_more_often(dataset):
    """--oversample-start-s S --oversample-factor K: frames under S s into their episode are
    drawn K times an epoch, the rest once; a factor of 1 leaves the dataset as it is."""
    policy = Policy.from_config(TrainConfig(preset='tiny').model_config(
        TrainDataset(dataset).robot_description()))
    plain = TrainDataset(dataset)
    plain.bind(policy)
    assert len(plain) == FRAMES
    data = TrainDataset(dataset, oversample_start_s=0.05, oversample_factor=3)
    data.bind(policy)
    frames = data.frames
    early = [i for i in range(FRAMES) if frames[i]['frame_index'] < 3]  # 0, 20, 40 ms
    assert len(early) == 6  # 3 frames in each of the 2 episodes
    assert len(data) == FRAMES + 2 * len(early)
    drawn = np.bincount(data.index, minlength=FRAMES)  # (FRAMES,)
    assert sorted(np.flatnonzero(drawn == 3)) == early
    assert set(drawn) == {1, 3}
    for k, frame in enumerate(early):  # the copies are those frames' samples
        assert torch.equal(data[FRAMES + k]['actions'], data[frame]['actions'])


@pytest.mark.parametrize('field, value, quoted', [
    ('oversample_start_s', -0.1, 'oversample_start_s=-0.1'),
    ('oversample_factor', 0, 'oversample_factor=0'),
])
def test_oversampling_flags_are_validated(field, value, quoted):
    with pytest.raises(ValueError, match=quoted):
        TrainConfig(**{field: value})


def test_the_camera_scales_gamma_get_no_weight_decay():
    """gamma is (experts, channels): a matrix by shape, but a gain (issue 16)."""
    import torch

    from pi05_moe_policy import Policy
    from pi05_moe_training.train.config import TrainConfig
    from pi05_moe_training.train.loop import make_optimizer

    model = Policy.from_preset('tiny').model
    opt = make_optimizer(model, TrainConfig(preset='tiny', weight_decay=0.1), torch.device('cpu'))
    decay, no_decay = ({id(p) for p in g['params']} for g in opt.param_groups)
    assert opt.param_groups[0]['weight_decay'] == 0.1 and opt.param_groups[1]['weight_decay'] == 0
    gamma = model.camera_moe.expert_scales
    assert gamma.dim() == 2 and id(gamma) in no_decay and id(gamma) not in decay
    assert id(model.action_in_proj.weight) in decay and id(model.action_in_proj.bias) in no_decay
    assert len(decay) + len(no_decay) == sum(1 for p in model.parameters() if p.requires_grad)
