"""Each transform step on its own (make_transforms composes them; test_transforms.py tests the
composition)."""

import numpy as np
import pytest
import torch

from pi05_moe_policy.core.observation import clean_prompt
from pi05_moe_policy.policy_config import make_policy_config
from pi05_moe_policy.transforms import (
    AbsoluteActions,
    CameraLabels,
    CheckActions,
    CheckObservation,
    Compose,
    DataConfig,
    DeltaActions,
    ImagesToTensors,
    Normalize,
    NormStats,
    PadStatesAndActions,
    Stats,
    TokenizePrompt,
    ToModelInputs,
    TruncateActions,
    Unnormalize,
    WordHashTokenizer,
    collate,
    make_transforms,
    rgb_to_tensor,
    thermal_to_tensor,
)

DATA = DataConfig(robot_state_dim=3, robot_action_dim=3)
WRIST = np.zeros((8, 8, 3), np.uint8)


def test_check_observation_validates_and_never_mutates():
    check = CheckObservation(DATA)
    images = {'wrist': WRIST, 'l515': None, 'thermal': np.full((4, 4, 1), 30000, np.uint16)}
    raw = {'images': images, 'state': [1, 2, 3], 'prompt': 'lift'}
    out = check(raw)
    assert set(out['images']) == {'wrist', 'thermal'} and out['images']['thermal'].shape == (4, 4)
    assert out['state'].dtype == np.float32 and raw['state'] == [1, 2, 3]
    assert 'l515' in images  # the caller's dict is unchanged
    with pytest.raises(ValueError, match="base camera 'wrist' is missing"):
        check({**raw, 'images': {'l515': WRIST}})
    with pytest.raises(ValueError, match=r'shape \(3,\) \(robot_state_dim\)'):
        check({**raw, 'state': [1, 2]})
    with pytest.raises(ValueError, match='requires a prompt'):
        check({**raw, 'prompt': '  '})
    with pytest.raises(ValueError, match='missing key "state"'):
        check.check_obs({'images': images, 'prompt': 'x'})


def test_check_actions_shape_and_pad_flags():
    step = CheckActions(action_horizon=4, robot_action_dim=3)
    out = step({'actions': np.ones((4, 3)), 'state': np.zeros(3)})
    assert out['actions'].dtype == np.float32 and out['action_is_pad'].tolist() == [False] * 4
    assert 'actions' not in step({'actions': None, 'action_is_pad': None})
    with pytest.raises(ValueError, match=r'actions must have shape \(4, 3\)'):
        step({'actions': np.ones((4, 2))})
    with pytest.raises(ValueError, match='NaN/inf'):
        step({'actions': np.full((4, 3), np.nan)})
    with pytest.raises(ValueError, match='action_is_pad must have 4 flags'):
        step({'actions': np.ones((4, 3)), 'action_is_pad': [False]})


def test_delta_then_absolute_actions_is_the_identity_on_robot_units():
    mask = [True, False, True]
    state = np.array([0.5, -1.0, 2.0], np.float32)
    actions = np.arange(6, dtype=np.float32).reshape(2, 3)  # (H, A)
    rel = DeltaActions(mask, 3)({'actions': actions, 'state': state})['actions']
    np.testing.assert_allclose(rel, actions - [0.5, 0.0, 2.0])
    back = AbsoluteActions(mask, 3)({'actions': rel, 'state': state})['actions']
    np.testing.assert_allclose(back, actions)
    assert DeltaActions([], 3)({'actions': actions, 'state': state})['actions'] is actions
    with pytest.raises(ValueError, match='needs the state'):
        AbsoluteActions(mask, 3)({'actions': rel, 'state': None})


def test_normalize_and_unnormalize_use_the_quantiles():
    stats = NormStats(state=Stats(q01=[0, 0, 0], q99=[2, 2, 2], mean=[0] * 3, std=[1] * 3,
                                  min=[0] * 3, max=[2] * 3),
                      actions=Stats(q01=[10] * 3, q99=[20] * 3, mean=[0] * 3, std=[1] * 3,
                                    min=[10] * 3, max=[20] * 3))
    out = Normalize(stats)({'state': np.ones(3, np.float32), 'actions': np.full((2, 3), 20.0)})
    np.testing.assert_allclose(out['state'], 0.0, atol=1e-5)
    np.testing.assert_allclose(out['actions'], 1.0, atol=1e-5)
    assert 'actions' not in Normalize(stats)({'state': np.ones(3, np.float32)})
    back = Unnormalize(stats)({'actions': out['actions']})['actions']
    np.testing.assert_allclose(back, 20.0, atol=1e-4)


def test_tokenize_prompt_writes_the_normalised_state_when_asked():
    tok = WordHashTokenizer(4096)
    sample = {'prompt': 'lift_the cube', 'state': np.array([-1.0, 0.0, 1.0], np.float32)}
    seen = TokenizePrompt(tok, 16, pi05=True, state_in_prompt=True)(sample)
    blind = TokenizePrompt(tok, 16, pi05=True, state_in_prompt=False)(sample)
    want = tok.encode('Task: lift the cube, State: 0 128 255;\nAction: ')
    assert seen['tokens'][:len(want)].tolist() == want
    assert int(seen['token_mask'].sum()) == len(want)
    assert seen['tokens'].shape == (16,) and seen['tokens'].dtype == torch.long
    assert int(blind['token_mask'].sum()) < len(want)
    short = TokenizePrompt(tok, 4, pi05=True, state_in_prompt=True)(sample)
    assert short['token_mask'].all() and short['tokens'].tolist() == want[:4]  # truncated


def test_one_clean_prompt_for_nodes_and_transforms():
    assert clean_prompt('  lift_the \n hot  cube ') == ('lift the hot cube', None)
    assert clean_prompt('abcdef', 3) == ('abc', 'prompt of 6 characters cut to max_prompt_chars 3')
    assert clean_prompt(' ') == ('', 'empty prompt ignored')


def test_images_to_tensors_in_camera_order_with_masks():
    step = ImagesToTensors(('wrist', 'l515', 'thermal'), 16, (27315.0, 37315.0), 'gray')
    thermal = np.full((4, 4), 32315, np.uint16)
    out = step({'images': {'wrist': WRIST, 'thermal': thermal}})
    assert out['images'].shape == (3, 3, 16, 16) and out['image_masks'].tolist() == [
        True, False, True]
    assert torch.equal(out['images'][0], rgb_to_tensor(WRIST, 16))
    assert torch.equal(out['images'][1], torch.zeros(3, 16, 16))
    assert torch.equal(out['images'][2], thermal_to_tensor(thermal, 16, (27315.0, 37315.0)))


def test_camera_labels_in_expert_order():
    step = CameraLabels(('l515', 'thermal'))
    assert step({'camera_active': {'thermal': 1, 'l515': 0}})['camera_active'].tolist() == [0, 1]
    assert step({'camera_active': [1, 0]})['camera_active'].tolist() == [1, 0]
    assert 'camera_active' not in step({'camera_active': None})
    with pytest.raises(ValueError, match="missing \\['thermal'\\]"):
        step({'camera_active': {'l515': 1}})


def test_pad_states_and_actions_marks_the_real_dims():
    out = PadStatesAndActions(8, 6)({'state': np.ones(3, np.float32),
                                     'actions': np.ones((2, 3), np.float32)})
    assert out['state'].tolist() == [1, 1, 1, 0, 0, 0, 0, 0]
    assert out['actions'].shape == (2, 6) and not out['actions'][:, 3:].any()
    assert out['action_dim_mask'].tolist() == [True] * 3 + [False] * 3
    assert 'action_dim_mask' not in PadStatesAndActions(8, 6)({'state': np.ones(3)})
    trunc = TruncateActions(3)({'actions': out['actions']})['actions']
    assert trunc.shape == (2, 3)


def test_to_model_inputs_keeps_the_batch_keys_as_tensors_and_collate_stacks():
    out = ToModelInputs()({'state': np.zeros(2, np.float32), 'prompt': 'x',
                           'tokens': torch.zeros(3, dtype=torch.long)})
    assert set(out) == {'state', 'tokens'} and isinstance(out['state'], torch.Tensor)
    a = {'state': torch.zeros(2), 'camera_active': torch.ones(2)}
    b = {'state': torch.ones(2)}
    batch = collate([a, b], num_experts=2)
    assert batch['state'].shape == (2, 2) and torch.isnan(batch['camera_active'][1]).all()
    with pytest.raises(ValueError, match='all or none'):
        collate([{'actions': torch.zeros(1)}, b], num_experts=2)


def test_compose_runs_steps_in_order_and_make_transforms_lists_them():
    trace = Compose([lambda s: {**s, 'x': s['x'] * 2}, lambda s: {**s, 'x': s['x'] + 1}])
    assert trace({'x': 3})['x'] == 7
    cfg = make_policy_config('tiny', robot_state_dim=3, robot_action_dim=3,
                             delta_action_mask=[True, True, False])
    t = make_transforms(cfg.model, cfg.data, NormStats.identity(3, 3),
                        WordHashTokenizer(cfg.model.vocab_size))
    names = [type(s).__name__ for s in t.inputs.steps]
    assert names == ['CheckObservation', 'CheckActions', 'DeltaActions', 'Normalize',
                     'TokenizePrompt', 'ImagesToTensors', 'CameraLabels',
                     'PadStatesAndActions', 'ToModelInputs']
    assert [type(s).__name__ for s in t.outputs.steps] == [
        'TruncateActions', 'Unnormalize', 'AbsoluteActions']
