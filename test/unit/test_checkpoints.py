"""One checkpoint string for nodes and CLIs: directories, preset:<name>, shipped:<name>."""

import json
import re
import shutil

import pytest

from pi05_moe_policy.checkpoints import (
    CheckpointError,
    load_policy,
    resolve_checkpoint,
    shipped_checkpoint,
)

SIM_JOINTS = ('waist', 'shoulder', 'elbow', 'forearm_roll', 'wrist_pitch', 'wrist_roll',
              'gripper')


def test_directories_and_presets_pass_through():
    assert resolve_checkpoint('/some/dir') == '/some/dir'
    assert resolve_checkpoint('preset:tiny') == 'preset:tiny'


@pytest.mark.parametrize(('spec', 'match'), [('', 'checkpoint is empty'),
                                             ('shipped:nope', "no shipped checkpoint 'nope'")])
def test_bad_specs_say_what_is_wrong(spec, match):
    with pytest.raises(ValueError, match=match):
        resolve_checkpoint(spec)


def test_preset_is_sized_for_the_given_joints():
    policy = load_policy('preset:tiny', joint_names=SIM_JOINTS)
    assert policy.robot_state_dim == policy.robot_action_dim == 7
    assert tuple(policy.joint_names) == SIM_JOINTS


def test_the_shipped_sim_checkpoint_is_installed_and_fits_the_sim_arm():
    path = shipped_checkpoint()
    assert path is not None and resolve_checkpoint('shipped:sim_small') == str(path)
    size_mb = sum(f.stat().st_size for f in path.iterdir()) / 1e6
    assert size_mb <= 50.0
    policy = load_policy('shipped:sim_small')
    assert tuple(policy.joint_names) == SIM_JOINTS
    assert policy.model_config.preset == 'small' and policy.model_config.use_camera_moe
    assert (policy.base_camera, tuple(policy.expert_cameras)) == ('wrist', ('l515', 'thermal'))


def test_the_shipped_rt1_checkpoint_is_installed_and_routes_like_the_pi05_one():
    """shipped:sim_rt1, the README's RT-1 baseline (#20): an rt1 network on the same arm and
    cameras, routed, small enough to ship."""
    from pi05_moe_policy.model.rt1 import RT1Model

    path = shipped_checkpoint('sim_rt1')
    assert path is not None and resolve_checkpoint('shipped:sim_rt1') == str(path)
    assert sum(f.stat().st_size for f in path.iterdir()) / 1e6 <= 50.0
    policy = load_policy('shipped:sim_rt1')
    assert isinstance(policy.model, RT1Model) and policy.model_config.use_camera_moe
    assert tuple(policy.joint_names) == SIM_JOINTS
    assert (policy.base_camera, tuple(policy.expert_cameras)) == ('wrist', ('l515', 'thermal'))


@pytest.fixture(scope='module')
def saved_tiny(tmp_path_factory):
    from pi05_moe_policy import Policy

    return Policy.from_preset('tiny').save(tmp_path_factory.mktemp('tiny') / 'ckpt')


def _broken_copy(saved, tmp_path, name, damage):
    d = tmp_path / 'broken'
    shutil.copytree(saved, d)
    damage(d / name)
    return d


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])


@pytest.mark.parametrize(('name', 'damage', 'cause'), [
    ('model.safetensors', _truncate, r'not a valid safetensors file \(truncated\?\)'),
    ('tokenizer_spec.json', lambda p: p.unlink(), 'missing'),
    ('config.json', _truncate, r'not valid JSON \(truncated\?\)'),
    ('norm_stats.json', lambda p: p.write_bytes(b'\xff\xfe'), 'cannot be read'),
])
def test_a_broken_checkpoint_is_one_line_naming_the_file(saved_tiny, tmp_path, name, damage,
                                                         cause):
    d = _broken_copy(saved_tiny, tmp_path, name, damage)
    with pytest.raises(CheckpointError) as info:
        load_policy(str(d))
    text = str(info.value)
    assert text.startswith(str(d / name) + ': ') and '\n' not in text, text
    assert re.search(cause, text), text
    assert isinstance(info.value, ValueError)  # run_node prints ValueErrors as one fatal line


def test_contents_that_do_not_fit_name_the_checkpoint(saved_tiny, tmp_path):
    def wrong_format(path):
        meta = json.loads(path.read_text())
        path.write_text(json.dumps({**meta, 'format': 'other'}))

    d = _broken_copy(saved_tiny, tmp_path, 'config.json', wrong_format)
    with pytest.raises(CheckpointError, match=f'checkpoint {d}: .*format'):
        load_policy(str(d))
    assert load_policy(str(saved_tiny)).robot_state_dim > 0
