"""`pi05-moe import` against LeRobot's own PI0.5 (``../shared/fixtures/lerobot_pi05_tiny``).

The fixture is a LeRobot 0.6.1 ``PI05Policy`` at tiny dims with random weights, saved by LeRobot
itself, plus ``reference.npz``: raw inputs at non-224 sizes, the preprocessed inputs, the noise and
LeRobot's outputs (normalised and robot-unit actions) for two cases (all cameras; the third camera
missing and a state below q01). Its token ids come from a character-level stand-in tokenizer
(fixture README), rebuilt here as a real ``tokenizer.json`` and passed to ``--tokenizer`` as a
user passes PaliGemma's. Nothing imports LeRobot.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from pi05_moe_bringup import cli
from pi05_moe_policy import Policy
from pi05_moe_policy.transforms.prompt import format_prompt
from pi05_moe_training.pretrained.keymap import UNUSED, map_key

# shared/ sits beside the project root (CI copies it there); PI05_MOE_SHARED overrides.
SHARED = Path(os.environ.get('PI05_MOE_SHARED',
                             Path(__file__).resolve().parents[2].parent / 'shared'))
FIXTURES = SHARED / 'fixtures'
TINY = FIXTURES / 'lerobot_pi05_tiny'
SLOTS = ('base_0_rgb', 'left_wrist_0_rgb', 'right_wrist_0_rgb')
SAME_SLOTS = ','.join(f'{s}={s}' for s in SLOTS)


@pytest.fixture(scope='module', autouse=True)
def fixture_present():
    # A missing reference is a failure, not a skip: these tests are the equivalence evidence.
    assert (TINY / 'reference.npz').is_file(), (
        f'{TINY} is missing: shared/ must sit beside the project root (or set PI05_MOE_SHARED)')


def standin_tokenizer(path: Path) -> Path:
    """The fixture's stand-in: <pad>=0 <eos>=1 <bos>=2 <unk>=3 '\\n'=4, ASCII c -> 5 + c - 32."""
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers

    vocab = {'<pad>': 0, '<eos>': 1, '<bos>': 2, '<unk>': 3, '\n': 4}
    vocab.update({chr(c): 5 + c - 32 for c in range(32, 127)})
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token='<unk>'))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r'[\s\S]'), behavior='isolated')
    tok.save(str(path))
    return path


@pytest.fixture(scope='module')
def reference():
    return np.load(TINY / 'reference.npz')


@pytest.fixture(scope='module')
def imported(tmp_path_factory):
    """The fixture imported as plain PI0.5 (--no-moe), cameras in LeRobot's slot order."""
    tmp = tmp_path_factory.mktemp('lerobot_import')
    tok = standin_tokenizer(tmp / 'tokenizer.json')
    out = tmp / 'ckpt'
    assert cli.main(['import', '--from', 'lerobot', str(TINY), '--out', str(out), '--tokenizer',
                     str(tok), '--no-moe', '--camera-slots', SAME_SLOTS, '--quiet']) == 0
    return out


def observation(ref, case: str) -> dict:
    present = ref[f'{case}_raw_image_present']
    images = {slot: ref[f'{case}_raw_image_cam{i}'] for i, slot in enumerate(SLOTS) if present[i]}
    return {'images': images, 'state': ref[f'{case}_raw_state'],
            'prompt': str(ref[f'{case}_prompt'])}


@pytest.mark.parametrize('case', ['caseA', 'caseB'])
def test_lerobot_import_reproduces_lerobots_robot_unit_actions(imported, reference, case):
    policy = Policy.load(imported)
    noise = torch.from_numpy(reference[f'{case}_noise'])  # (1, 50, 32)
    out = policy.infer(observation(reference, case), noise=noise)
    want = reference[f'{case}_actions_robot'][0]  # (50, 7) robot units
    err = np.abs(out['actions'] - want).max()
    assert err < 1e-4, f'max |delta| {err:.2e} against LeRobot (scale {np.abs(want).max():.1f})'


@pytest.mark.parametrize('case', ['caseA', 'caseB'])
def test_lerobot_preprocessing_matches_images_state_and_prompt(imported, reference, case):
    policy = Policy.load(imported)
    obs = observation(reference, case)
    sample = policy.transform.sample(obs['images'], obs['state'], obs['prompt'])
    masks = reference[f'{case}_image_masks']
    assert sample['image_masks'].tolist() == masks.tolist()
    theirs = torch.from_numpy(reference[f'{case}_images'])  # (3, 3, 224, 224)
    diff = (sample['images'][masks] - theirs[masks]).abs().max().item()
    assert diff < 1e-5, f'images differ by {diff:.2e}'
    state_norm = reference[f'{case}_state_norm'][0]  # (7,)
    np.testing.assert_allclose(sample['state'][:7].numpy(), state_norm, atol=1e-5)
    assert format_prompt(obs['prompt'], state_norm, pi05=True) == str(
        reference[f'{case}_full_prompt'])
    tokens = reference[f'{case}_tokens'][0]
    mask = reference[f'{case}_attention_mask'][0]
    n = int(mask.sum())
    assert int(sample['token_mask'].sum()) == n and bool(sample['token_mask'][:n].all())
    assert sample['tokens'][:n].tolist() == tokens[:n].tolist()


def test_lerobot_pi05_base_keys_all_have_a_home_or_are_listed_unused():
    """LeRobot's full-size state dict (key, shape) against ours built on the meta device."""
    lines = (FIXTURES / 'lerobot_pi05_base_keys.txt').read_text().split('\n')
    theirs = {}
    for line in filter(None, lines):
        key, shape = line.split(' ', 1)
        theirs[key] = tuple(int(v) for v in shape.rsplit(')', 1)[0].strip('( ').split(',') if v)
    assert len(theirs) == 813
    from pi05_moe_policy.model import Pi05Model
    from pi05_moe_policy.policy_config import make_policy_config

    cfg = make_policy_config('pi05_base', use_camera_moe=False, tokenizer_type='word_hash')
    with torch.device('meta'):
        ours = Pi05Model(cfg.model).state_dict()
    homeless, wrong, covered = [], [], set()
    for key, shape in theirs.items():
        mine = map_key(key)
        if mine is None:
            assert key.removeprefix('model.') in UNUSED
            continue
        if mine not in ours:
            homeless.append(key)
        elif tuple(ours[mine].shape) != shape:
            wrong.append(f'{key} {shape} vs {mine} {tuple(ours[mine].shape)}')
        covered.add(mine)
    assert not homeless and not wrong, (homeless[:5], wrong[:5])
    assert covered == set(ours), sorted(set(ours) - covered)[:5]


def test_lerobot_import_with_the_moe_starts_from_ordinary_image_tokens(imported, reference,
                                                                        tmp_path):
    """With the camera MoE on, step 0 fuses to the base camera's own tokens (identity fusion):
    with only the base camera present it acts as plain PI0.5 fed that camera."""
    tok = standin_tokenizer(tmp_path / 'tokenizer.json')
    out = tmp_path / 'moe'
    assert cli.main(['import', '--from', 'lerobot', str(TINY), '--out', str(out),
                     '--tokenizer', str(tok), '--quiet']) == 0
    moe = Policy.load(out)
    assert moe.model_config.use_camera_moe and moe.data_config.base_camera == 'wrist'
    assert moe.data_config.expert_cameras == ('l515', 'thermal')
    plain = Policy.load(imported)
    ref = observation(reference, 'caseA')
    wrist = ref['images']['left_wrist_0_rgb']
    noise = torch.from_numpy(reference['caseA_noise'])
    a = moe.infer({**ref, 'images': {'wrist': wrist}}, noise=noise)['actions']
    b = plain.infer({**ref, 'images': {'base_0_rgb': wrist}}, noise=noise)['actions']
    # the fused block holds the wrist's own tokens in slot 0's place; masked slots take no
    # positions, so the language tokens sit where they do for plain PI0.5
    np.testing.assert_allclose(a, b, atol=1e-4)
    fresh = [k for k in moe.model.state_dict() if k.startswith('camera_moe.')]
    assert fresh  # the router and fusion are new


def test_lerobot_import_names_missing_and_misshapen_tensors(tmp_path, capsys):
    from safetensors.torch import load_file, save_file

    broken = tmp_path / 'broken'
    shutil.copytree(TINY, broken)
    state = load_file(str(TINY / 'model.safetensors'))
    gone = 'model.paligemma_with_expert.gemma_expert.model.layers.1.mlp.up_proj.weight'
    del state[gone]
    save_file(state, str(broken / 'model.safetensors'))
    assert cli.main(['import', '--from', 'lerobot', str(broken), '--out',
                     str(tmp_path / 'x')]) == 2
    err = capsys.readouterr().err
    assert 'gemma.action_expert.layers.1.mlp.up_proj.weight' in err and 'missing' in err
    (broken / 'config.json').write_text('{"type": "pi05", ')
    assert cli.main(['import', '--from', 'lerobot', str(broken), '--out',
                     str(tmp_path / 'y')]) == 2
    assert 'config.json: not valid JSON' in capsys.readouterr().err


def test_openpi_layout_imports_to_the_same_policy(imported, reference, tmp_path):
    """openpi's PyTorch layout: the same names without LeRobot's ``model.`` level and the norm
    stats in assets/<id>/norm_stats.json."""
    from safetensors.torch import load_file, save_file

    d = tmp_path / 'openpi'
    (d / 'assets' / 'sim').mkdir(parents=True)
    state = {k.removeprefix('model.'): v for k, v in
             load_file(str(TINY / 'model.safetensors')).items()}
    save_file(state, str(d / 'model.safetensors'))
    stats = json.loads((TINY / 'stats.json').read_text())
    (d / 'assets' / 'sim' / 'norm_stats.json').write_text(json.dumps({'norm_stats': {
        'state': stats['observation.state'], 'actions': stats['action']}}))
    (d / 'config.json').write_text(json.dumps({'pi05': True, 'action_horizon': 50,
                                               'max_token_len': 200}))
    tok = standin_tokenizer(tmp_path / 'tokenizer.json')
    out = tmp_path / 'ckpt'
    assert cli.main(['import', '--from', 'openpi', str(d), '--out', str(out), '--tokenizer',
                     str(tok), '--no-moe', '--camera-slots', SAME_SLOTS, '--quiet']) == 0
    noise = torch.from_numpy(reference['caseA_noise'])
    obs = observation(reference, 'caseA')
    a = Policy.load(out).infer(obs, noise=noise)['actions']
    b = Policy.load(imported).infer(obs, noise=noise)['actions']
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_lerobot_import_fine_tunes_from_init_with_a_frozen_vision_tower(tmp_path):
    """`train --init` starts from the imported weights (MoE on: the router and fusion are the
    only new tensors) and `--freeze vision` keeps SigLIP exactly as imported."""
    from train_helpers import build_dataset

    dataset = build_dataset(tmp_path)
    tok = standin_tokenizer(tmp_path / 'tokenizer.json')
    imp = tmp_path / 'imported'
    assert cli.main(['import', '--from', 'lerobot', str(TINY), '--out', str(imp),
                     '--tokenizer', str(tok), '--quiet']) == 0
    out = tmp_path / 'run'
    assert cli.main(['train', '--dataset', str(dataset), '--out', str(out), '--init', str(imp),
                     '--freeze', 'vision', '--max-steps', '2', '--batch-size', '2',
                     '--save-every', '2', '--warmup-steps', '1', '--routing-warmup-steps', '0',
                     '--num-workers', '0', '--no-progress', '--device', 'cpu']) == 0
    before = Policy.load(imp).model.state_dict()
    after = Policy.load(out / 'latest').model.state_dict()
    vision = [k for k in before if k.startswith('vision.')]
    vlm = [k for k in before if k.startswith('gemma.language_model.layers.')]
    assert vision and all(torch.equal(before[k], after[k]) for k in vision)  # frozen
    assert any(not torch.equal(before[k], after[k]) for k in vlm)  # trained from the import
    assert any(k.startswith('camera_moe.') for k in after)
    tuned = Policy.load(out / 'latest')
    assert tuned.data_config.tokenizer_type == 'hf' and tuned.data_config.max_token_len == 200
