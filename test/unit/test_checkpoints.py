"""One checkpoint string for nodes and CLIs: directories, preset:<name>, shipped:<name>."""

import pytest

from pi05_moe_policy.checkpoints import load_policy, resolve_checkpoint, shipped_checkpoint

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
