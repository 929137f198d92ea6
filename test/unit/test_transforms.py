"""Transforms shared by inference and training."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pi05_moe_policy.policy_config import make_policy_config
from pi05_moe_policy.transforms import (
    NormStats,
    Stats,
    WordHashTokenizer,
    discretize_state,
    format_prompt,
    make_transforms,
    resize_with_pad,
    rgb_to_tensor,
    thermal_to_tensor,
)
from pi05_moe_policy.transforms.tokenizer import HFTokenizer


def make_transform(**overrides):
    cfg = make_policy_config('tiny', **overrides)
    d = cfg.data
    return make_transforms(cfg.model, d, NormStats.identity(d.robot_state_dim,
                                                            d.robot_action_dim),
                           WordHashTokenizer(cfg.model.vocab_size))


def test_resize_with_pad_keeps_aspect_and_pads_black():
    img = np.full((120, 240, 3), 255, np.uint8)  # wide white image
    x = rgb_to_tensor(img, 224)
    assert x.shape == (3, 224, 224) and x.dtype == torch.float32
    assert torch.allclose(x[:, 56:168], torch.ones(3, 112, 224))  # 240 -> 224, 120 -> 112
    assert torch.all(x[:, :56] == -1) and torch.all(x[:, 168:] == -1)
    assert rgb_to_tensor(np.zeros((224, 224, 3), np.uint8), 224).min() == -1
    tall = resize_with_pad(torch.zeros(3, 300, 100), 224)
    assert tall.shape == (3, 224, 224) and (tall[:, :, :38] == -1).all()


def test_rgb_scaled_to_minus_one_one():
    img = np.array([[[0, 127, 255]]], np.uint8).repeat(224, 0).repeat(224, 1)
    x = rgb_to_tensor(img, 224)
    assert x[:, 0, 0].tolist() == pytest.approx([-1.0, 127 / 127.5 - 1, 1.0], abs=1e-6)


def test_thermal_window_to_three_channels():
    lo, hi = 27315.0, 37315.0  # 0..100 degC
    img = np.array([[27315 - 500, 27315, 32315, 37315, 40000]], np.uint16).repeat(5, 0)
    x = thermal_to_tensor(img, 5, (lo, hi), 'gray')
    assert x.shape == (3, 5, 5)
    assert x[0, 2].tolist() == pytest.approx([-1, -1, 0, 1, 1], abs=1e-6)
    assert torch.equal(x[0], x[1]) and torch.equal(x[1], x[2])
    color = thermal_to_tensor(img, 5, (lo, hi), 'ironbow')
    assert color.min() >= -1 and color.max() <= 1 and not torch.equal(color[0], color[2])


def test_quantile_normalisation_formula_and_inverse():
    s = Stats(q01=[0.0, -2.0], q99=[10.0, 2.0], mean=[0, 0], std=[1, 1], min=[0, -2],
              max=[10, 2])
    x = np.array([5.0, 2.0], np.float32)
    want = (x - s.q01) / (s.q99 - s.q01 + 1e-6) * 2 - 1
    v1 = {'preprocessing': 'v1'}
    assert np.allclose(s.normalize(x, **v1), want)
    assert np.allclose(s.unnormalize(s.normalize(x, **v1), **v1), x)


def test_reference_quantiles_divide_by_the_range_and_eps_only_where_it_is_zero():
    """LeRobot's rule: 2 (x - q01) / (q99 - q01) - 1, the range 0 replaced by 1e-8."""
    s = Stats(q01=[0.0, 1.0], q99=[1e-4, 1.0], mean=[0, 0], std=[1, 1], min=[0, 1], max=[1, 1])
    x = np.array([5e-5, 1.0], np.float32)
    np.testing.assert_allclose(s.normalize(x), [0.0, -1.0], atol=1e-6)
    assert abs(s.normalize(x, preprocessing='v1')[0]) > 5e-3  # 1e-6 on a 1e-4 range
    np.testing.assert_allclose(s.unnormalize(s.normalize(x)), x, atol=1e-7)


def test_mean_std_normalisation_and_inverse():
    s = Stats(q01=[0.0], q99=[1.0], mean=[2.0], std=[4.0], min=[0], max=[1])
    y = s.normalize(np.array([10.0], np.float32), mode='mean_std')
    np.testing.assert_allclose(y, [2.0], rtol=1e-6)
    np.testing.assert_allclose(s.unnormalize(y, mode='mean_std'), [10.0], rtol=1e-6)


def test_discretized_state_bins():
    s = np.array([-1.0, -0.999, 0.0, 0.999, 1.0, 3.0, -3.0])
    bins = discretize_state(s, clip=True)  # preprocessing 'v1'
    assert bins.tolist() == (np.clip(np.digitize(np.clip(s, -1, 1),
                                                 np.linspace(-1, 1, 257)[:-1]) - 1, 0, 255)
                             ).tolist()
    assert bins.min() >= 0 and bins.max() <= 255 and bins[2] == 128
    ref = discretize_state(s)  # LeRobot / openpi: out of range -> -1 below, 255 above
    assert ref.tolist()[:5] == bins.tolist()[:5] and ref[5] == 255 and ref[6] == -1


def test_pi05_prompt_format():
    text = format_prompt('  lift_the hot cube\n', np.array([-1.0, 0.0, 1.0]), pi05=True)
    assert text == 'Task: lift the hot cube, State: 0 128 255;\nAction: '
    assert format_prompt('lift', None, pi05=False) == 'lift\n'
    no_state = format_prompt('lift_the hot cube', None, pi05=True)
    assert no_state == 'Task: lift the hot cube;\nAction: '


def test_word_hash_tokenizer_is_deterministic_and_short():
    tok = WordHashTokenizer(4096)
    text = format_prompt('lift the hot cube', np.zeros(14), pi05=True)
    ids = tok.encode(text)
    assert ids == WordHashTokenizer(4096).encode(text) and ids[0] == 1
    assert len(ids) < 48 and max(ids) < 4096
    assert tok.encode('hot')[1] != tok.encode('red')[1]
    assert tok.encode('zebra')[1] == tok.encode('Zebra')[1]  # hashed, case-insensitive


@pytest.mark.parametrize('text', ['lift³ the cube', 'x²', '① lift', '\u00b9\u2079\u2460',
                                  '٣ arabic-indic three', '\ud800 lone surrogate'])
def test_word_hash_tokenizer_takes_digit_like_characters(text):
    # '³', '²', '①' are str.isdigit() but not int()-able: they used to raise ValueError.
    ids = WordHashTokenizer(4096).encode(text)
    assert ids[0] == 1 and len(ids) > 1 and max(ids) < 4096


def test_decimal_digits_of_any_script_stay_number_tokens():
    tok = WordHashTokenizer(4096)
    assert tok.encode('٣')[1:] == tok.encode('3')[1:]  # Unicode Nd digits: as before the fix
    assert tok.encode('³')[1:] != tok.encode('3')[1:]  # a superscript is bytes, not a number


# Every category, surrogates included: any str a user (or a fuzzer) can send.
ANY_TEXT = st.text(st.characters(exclude_categories=()), max_size=200)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(ANY_TEXT)
def test_every_string_tokenizes(text):
    tok = WordHashTokenizer(4096)
    ids = tok.encode(text)
    assert ids == tok.encode(text) and ids[0] == 1
    assert all(isinstance(i, int) and 0 <= i < 4096 for i in ids)
    assert len(ids) > 1 or not text.strip()


@settings(max_examples=100, deadline=None, derandomize=True)
@given(ANY_TEXT, st.lists(st.floats(-1, 1), min_size=14, max_size=14))
def test_every_prompt_becomes_tokens_of_the_model_length(text, state):
    from pi05_moe_policy.transforms.prompt import TokenizePrompt

    tr = make_transform()
    n, vocab = tr.data_config.max_token_len, tr.model_config.vocab_size
    step = TokenizePrompt(WordHashTokenizer(vocab), n, pi05=True, state_in_prompt=True)
    out = step({'prompt': text, 'state': np.array(state, np.float32)})
    tokens, mask = out['tokens'], out['token_mask']
    assert tokens.shape == mask.shape == (n,)
    assert int(tokens.max()) < vocab and bool(mask[0])


def test_truncation_goes_to_the_handler_once_per_cut_and_keeps_the_first_ids():
    from pi05_moe_policy.transforms.prompt import tokenize

    cuts = []
    tok = WordHashTokenizer(4096)
    long = 'lift the red cube onto the blue plate'
    tokens, mask = tokenize(tok, long, 5, lambda text, n: cuts.append((text, n)))
    assert tokens.tolist() == tok.encode(long)[:5] and bool(mask.all())
    assert cuts == [(long, 9)]
    tokens, mask = tokenize(tok, 'lift', 5, lambda text, n: cuts.append((text, n)))
    assert cuts == [(long, 9)] and int(mask.sum()) == len(tok.encode('lift'))


def test_policy_transforms_route_truncation_to_the_handler(caplog):
    from pi05_moe_policy import Policy

    policy = Policy.from_preset('tiny', max_token_len=8)
    cuts = []
    policy.transform.set_truncation_handler(lambda text, n: cuts.append(n))
    obs = policy.fake_obs(height=28, width=28)
    obs['prompt'] = 'lift the red cube onto the blue plate next to the green bowl'
    with caplog.at_level('WARNING'):
        policy.infer(obs)
    assert len(cuts) == 1 and cuts[0] > 8
    assert 'truncated' not in caplog.text  # the handler, not Python logging


def test_hf_tokenizer_from_a_local_file(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {'<pad>': 0, '<bos>': 1, '<unk>': 2, 'lift': 3, 'cube': 4}
    tk = Tokenizer(models.WordLevel(vocab, unk_token='<unk>'))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    tk.save(str(tmp_path / 'tokenizer.json'))
    hf = HFTokenizer(tmp_path)
    assert hf.encode('lift cube') == [1, 3, 4] and hf.pad_id == 0
    with pytest.raises(ValueError, match='nothing is downloaded'):
        HFTokenizer(tmp_path / 'nope')


def test_sample_and_collate_give_the_batch_keys():
    t = make_transform()
    cfg = t.data_config
    images = {'wrist': np.zeros((480, 640, 3), np.uint8),
              'thermal': np.full((120, 160), 30000, np.uint16)}
    a = t.sample(images, np.zeros(14), 'lift the hot cube', actions=np.zeros((50, 14)),
                 camera_active={'l515': 0, 'thermal': 1})
    b = t.sample(images, np.ones(14), 'lift the red cube', actions=np.ones((50, 14)))
    batch = t.collate([a, b])
    assert batch['images'].shape == (2, 3, 3, 224, 224)
    assert batch['image_masks'].tolist() == [[True, False, True]] * 2
    assert batch['tokens'].shape == (2, cfg.max_token_len) and batch['tokens'].dtype == torch.long
    assert batch['token_mask'].dtype == torch.bool
    assert batch['state'].shape == (2, 32) and batch['actions'].shape == (2, 50, 32)
    assert batch['action_is_pad'].shape == (2, 50)
    assert batch['camera_active'][0].tolist() == [0.0, 1.0]
    assert torch.isnan(batch['camera_active'][1]).all()  # unlabelled
    assert torch.equal(batch['actions'][..., 14:], torch.zeros(2, 50, 18))  # padded dims
    assert torch.equal(batch['images'][:, 1], torch.zeros(2, 3, 224, 224))  # missing camera
    with pytest.raises(ValueError, match='all or none'):
        t.collate([a, t.sample(images, np.zeros(14), 'x')])


def test_norm_stats_validation_names_key():
    cfg = make_policy_config('tiny')
    bad = NormStats.identity(13, 14)
    with pytest.raises(ValueError, match=r'norm_stats\["state"\]\["q01"\].*14'):
        make_transforms(cfg.model, cfg.data, bad, WordHashTokenizer(cfg.model.vocab_size))
    d = NormStats.identity(14, 14).to_dict()
    assert NormStats.from_dict(d).to_dict() == d


def test_delta_actions_are_relative_to_the_state_and_come_back_absolute():
    mask = [True, True, False]  # two joints relative to the state, a gripper absolute
    t = make_transform(robot_state_dim=3, robot_action_dim=3, delta_action_mask=mask)
    rng = np.random.default_rng(0)
    state = np.array([0.5, -1.0, 0.3], np.float32)
    actions = rng.normal(size=(t.model_config.action_horizon, 3)).astype(np.float32)  # (H, 3)
    img = {'wrist': np.zeros((8, 8, 3), np.uint8)}
    model = t.sample(img, state, 'lift', actions=actions)['actions'].numpy()  # (H, 32)
    # identity stats: normalised = x / (2 + 1e-6) * 2, close to x itself
    np.testing.assert_allclose(model[:, :3], actions - [0.5, -1.0, 0.0], atol=1e-5)
    np.testing.assert_allclose(t.unnormalize_actions(model, state), actions, atol=1e-5)
    with pytest.raises(ValueError, match='needs the state'):
        t.unnormalize_actions(model)
    plain = make_transform(robot_state_dim=3, robot_action_dim=3)
    model = plain.sample(img, state, 'lift', actions=actions)['actions'].numpy()
    np.testing.assert_allclose(plain.unnormalize_actions(model), actions, atol=1e-5)


def test_state_left_out_of_the_prompt_still_anchors_delta_actions():
    """state_in_prompt=False: the tokens do not depend on the state, but the state vector and
    the delta-action offset still do; True (PI0.5's default) writes it into the prompt."""
    mask = [True, True, False]
    img = {'wrist': np.zeros((8, 8, 3), np.uint8)}
    actions = np.zeros((make_policy_config('tiny').model.action_horizon, 3), np.float32)  # (H, 3)
    s0, s1 = np.zeros(3, np.float32), np.array([0.5, -0.5, 0.9], np.float32)
    blind = make_transform(robot_state_dim=3, robot_action_dim=3, delta_action_mask=mask,
                           state_in_prompt=False)
    a, b = (blind.sample(img, s, 'lift', actions=actions) for s in (s0, s1))
    assert torch.equal(a['tokens'], b['tokens']) and torch.equal(a['token_mask'], b['token_mask'])
    assert not torch.equal(a['state'], b['state'])
    np.testing.assert_allclose(b['actions'][:, :2].numpy(), np.tile(-s1[:2], (len(actions), 1)),
                               atol=1e-5)
    seen = make_transform(robot_state_dim=3, robot_action_dim=3, delta_action_mask=mask)
    a, b = (seen.sample(img, s, 'lift', actions=actions) for s in (s0, s1))
    assert not torch.equal(a['tokens'], b['tokens'])
    assert int(seen.sample(img, s0, 'lift')['token_mask'].sum()) > int(
        blind.sample(img, s0, 'lift')['token_mask'].sum())
    with pytest.raises(ValueError, match="state_in_prompt='no': expected true or false"):
        make_policy_config('tiny', state_in_prompt='no')


@pytest.mark.parametrize('overrides, message', [
    (dict(robot_action_dim=3, delta_action_mask=[True, False]), 'expected 3 booleans'),
    (dict(robot_action_dim=3, delta_action_mask=[1, 0, 0]), 'expected 3 booleans'),
    (dict(robot_state_dim=2, robot_action_dim=3, delta_action_mask=[False, False, True]),
     'action dim 2 is relative to state dim 2, but robot_state_dim=2'),
])
def test_delta_action_mask_is_validated(overrides, message):
    with pytest.raises(ValueError, match=f'delta_action_mask=.*{message}'):
        make_policy_config('tiny', **overrides)


def test_norm_stats_changes_name_the_dims_whose_quantiles_moved():
    """`train --init` prints these when the dataset's stats rescale the checkpoint's outputs."""
    def stats(q01, q99):
        q01, q99 = np.asarray(q01, np.float32), np.asarray(q99, np.float32)
        return Stats(q01=q01, q99=q99, mean=(q01 + q99) / 2, std=q99 - q01, min=q01, max=q99)

    old = NormStats(state=stats([0, 0], [1, 1]), actions=stats([-1, 0], [1, 0]))
    assert old.changes(NormStats.from_dict(old.to_dict())) == []
    new = NormStats(state=stats([0, 0], [1, 1.00001]), actions=stats([-1, -0.038], [1, 0.038]))
    assert old.changes(new, ['elbow', 'roll']) == [
        'actions[roll] q01 0 -> -0.038', 'actions[roll] q99 0 -> 0.038']
    wider = NormStats(state=stats([0, 0, 0], [1, 1, 1]), actions=old.actions)
    assert old.changes(wider) == ['state: 2 dims -> 3']
