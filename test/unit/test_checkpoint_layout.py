"""Checkpoints do not depend on the transformers version.

transformers 5.5 nests SigLIP's weights one level deeper (``vision_tower.vision_model.encoder``)
than the other versions (``vision_tower.encoder``). ``Policy.save`` writes the names without
that level, and ``Policy.load`` reads either layout into whichever the installed transformers
builds. Both directions are checked here: a checkpoint in either layout loads and gives the same
actions, and a tower with the extra level (built here as 5.5 nests it) saves the canonical names
and loads them back strictly.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from pi05_moe_policy import Policy
from pi05_moe_policy.policy import canonical_state_dict, to_model_layout

LEVEL = 'vision.vision_tower.vision_model.'
FLAT = 'vision.vision_tower.'


class NestedTower(nn.Module):
    """SigLIP as transformers 5.5 holds it: the same modules under ``vision_model``."""

    def __init__(self, tower: nn.Module):
        super().__init__()
        self.vision_model = tower

    def forward(self, **kwargs):
        return self.vision_model(**kwargs)


@pytest.fixture(scope='module')
def saved(tmp_path_factory):
    policy = Policy.from_preset('tiny', seed=3, image_size=56)
    return policy, policy.save(tmp_path_factory.mktemp('layout') / 'flat')


def actions(policy: Policy) -> np.ndarray:
    obs = policy.fake_obs(seed=1)
    noise = np.random.default_rng(0).standard_normal(
        (policy.action_horizon, policy.model_config.action_dim)).astype(np.float32)
    return policy.infer(obs, noise=noise)['actions']


def test_a_checkpoint_in_the_nested_layout_loads_and_acts_the_same(saved, tmp_path):
    policy, flat = saved
    state = load_file(flat / 'model.safetensors')
    tower = [k for k in state if k.startswith(FLAT)]
    assert tower and not any(k.startswith(LEVEL) for k in state)  # saved canonical
    nested = tmp_path / 'nested'
    shutil.copytree(flat, nested)
    save_file({(LEVEL + k[len(FLAT):] if k.startswith(FLAT) else k): v
               for k, v in state.items()}, str(nested / 'model.safetensors'))
    assert any(k.startswith(LEVEL) for k in load_file(nested / 'model.safetensors'))
    a, b = actions(Policy.load(flat)), actions(Policy.load(nested))
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, actions(policy))


def test_a_model_with_the_nested_tower_saves_canonical_names_and_loads_either(saved, tmp_path):
    policy, flat = saved
    nested = Policy.from_preset('tiny', seed=3, image_size=56)
    nested.model.vision.vision_tower = NestedTower(nested.model.vision.vision_tower)
    assert any(k.startswith(LEVEL) for k in nested.model.state_dict())
    out = nested.save(tmp_path / 'from_nested')
    assert load_file(out / 'model.safetensors').keys() == load_file(
        flat / 'model.safetensors').keys()

    # a canonical checkpoint into the nested model: strict load, same actions
    state = to_model_layout(load_file(flat / 'model.safetensors'), nested.model)
    assert any(k.startswith(LEVEL) for k in state)
    with torch.no_grad():
        for p in nested.model.parameters():
            p.zero_()
    nested.model.load_state_dict(state, strict=True)
    np.testing.assert_array_equal(actions(nested), actions(policy))


def test_canonical_names_leave_other_keys_alone():
    x = torch.zeros(1)
    state = {LEVEL + 'encoder.w': x, FLAT + 'post_layernorm.w': x, 'gemma.vision_model.w': x}
    assert set(canonical_state_dict(state)) == {FLAT + 'encoder.w', FLAT + 'post_layernorm.w',
                                                'gemma.vision_model.w'}
