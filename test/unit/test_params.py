"""Config dataclasses <-> flat ROS-style parameters (pure, no rclpy)."""

from dataclasses import dataclass

import pytest

from pi05_moe_policy.params import (
    check,
    from_flat,
    nest_dotted,
    param,
    ros_params_document,
    specs,
    to_flat,
    to_ros_yaml_dict,
)


@dataclass
class Limits:
    max_velocity: float = param(1.5, 'rad/s')


@dataclass
class Cfg:
    control_hz: float = param(50.0, 'control rate, Hz')
    mode: str = param('ensemble', 'ensemble | latest')
    enabled: bool = param(False, 'actuate')
    joint_names: list[str] = param(['a', 'b'], 'joint order')
    cameras: dict[str, str] = param({'wrist': '/wrist/image_raw'}, 'camera -> topic')
    limits: Limits = param(Limits(), 'limits')

    def __post_init__(self):
        check(self.control_hz > 0, self, 'control_hz', 'a rate > 0 Hz')
        check(self.mode in ('ensemble', 'latest'), self, 'mode', "'ensemble' or 'latest'")


def test_specs_flatten_nested_and_carry_help():
    by_name = {s.name: s for s in specs(Cfg)}
    assert set(by_name) == {'control_hz', 'mode', 'enabled', 'joint_names', 'cameras',
                            'limits.max_velocity'}
    assert by_name['control_hz'].help == 'control rate, Hz'
    assert by_name['cameras'].kind is dict and by_name['cameras'].item is str


def test_round_trip_through_flat_parameters():
    cfg = Cfg(control_hz=20.0, cameras={'wrist': '/w', 'l515': '/l'}, limits=Limits(2.0))
    flat = to_flat(cfg)
    assert flat['cameras.l515'] == '/l' and flat['limits.max_velocity'] == 2.0
    assert from_flat(Cfg, flat) == cfg


def test_mutable_defaults_are_not_shared():
    a, b = Cfg(), Cfg()
    a.joint_names.append('c')
    a.cameras['x'] = '/x'
    assert b.joint_names == ['a', 'b'] and b.cameras == {'wrist': '/wrist/image_raw'}


def test_ints_are_accepted_for_floats_but_not_strings():
    assert from_flat(Cfg, {'control_hz': 10}).control_hz == 10.0
    with pytest.raises(ValueError, match=r"parameter control_hz='fast': expected float"):
        from_flat(Cfg, {'control_hz': 'fast'})


def test_unknown_parameter_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown parameter 'control_rate'.*control_hz"):
        from_flat(Cfg, {'control_rate': 5.0})


def test_validation_error_quotes_class_field_and_value():
    with pytest.raises(ValueError, match=r"Cfg.mode='fastest': expected 'ensemble' or 'latest'"):
        from_flat(Cfg, {'mode': 'fastest'})


def test_ros_yaml_dict_nests_dotted_names():
    doc = to_ros_yaml_dict('executor_node', Cfg())
    params = doc['executor_node']['ros__parameters']
    assert params['limits'] == {'max_velocity': 1.5}
    assert params['cameras'] == {'wrist': '/wrist/image_raw'}


def test_nest_dotted_is_the_inverse_of_flattening_and_shares_no_state():
    flat = {'a.b.c': 1, 'a.b.d': [2, 3], 'a.e': 'x', 'f': True}
    nested = nest_dotted(flat)
    assert nested == {'a': {'b': {'c': 1, 'd': [2, 3]}, 'e': 'x'}, 'f': True}
    assert flat == {'a.b.c': 1, 'a.b.d': [2, 3], 'a.e': 'x', 'f': True}  # input untouched
    assert ros_params_document('n', flat) == {'n': {'ros__parameters': nested}}
    assert ros_params_document('n', {}) == {'n': {'ros__parameters': {}}}
    # the same nesting serves configs (policy) and parsed graph params (bringup)
    assert to_ros_yaml_dict('x', Cfg()) == ros_params_document('x', to_flat(Cfg()))
