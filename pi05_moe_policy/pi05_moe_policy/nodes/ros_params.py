"""Declare a node's ROS parameters from its config dataclass and read them back (needs rclpy).

The dataclass is the single source of truth: names, defaults, types and descriptions all come
from it (see :mod:`pi05_moe_policy.params`). Dict fields (e.g. ``cameras: {wrist: /wrist/...}``)
become one parameter per key, ``cameras.wrist``; keys given in a params file are picked up too.
"""

from __future__ import annotations

from typing import Any

from rcl_interfaces.msg import ParameterDescriptor, ParameterType
from rclpy.exceptions import InvalidParameterTypeException
from rclpy.node import Node
from rclpy.parameter import Parameter

from pi05_moe_policy.params import ParamSpec, from_flat, specs

_SCALAR_TYPES = {
    bool: ParameterType.PARAMETER_BOOL,
    int: ParameterType.PARAMETER_INTEGER,
    float: ParameterType.PARAMETER_DOUBLE,
    str: ParameterType.PARAMETER_STRING,
}
_ARRAY_TYPES = {
    bool: ParameterType.PARAMETER_BOOL_ARRAY,
    int: ParameterType.PARAMETER_INTEGER_ARRAY,
    float: ParameterType.PARAMETER_DOUBLE_ARRAY,
    str: ParameterType.PARAMETER_STRING_ARRAY,
}
_UNSET_TYPES = {
    ParameterType.PARAMETER_BOOL_ARRAY: Parameter.Type.BOOL_ARRAY,
    ParameterType.PARAMETER_INTEGER_ARRAY: Parameter.Type.INTEGER_ARRAY,
    ParameterType.PARAMETER_DOUBLE_ARRAY: Parameter.Type.DOUBLE_ARRAY,
    ParameterType.PARAMETER_STRING_ARRAY: Parameter.Type.STRING_ARRAY,
}


def _declare(node: Node, name: str, default: Any, ptype: int, help_text: str) -> Any:
    descriptor = ParameterDescriptor(name=name, type=ptype, description=help_text)
    value: Any = default
    if isinstance(default, list) and not default:
        value = _UNSET_TYPES[ptype]  # an empty list has no type of its own
    override = getattr(node, '_parameter_overrides', {}).get(name)
    if (ptype == ParameterType.PARAMETER_DOUBLE and override is not None
            and override.type_ == Parameter.Type.INTEGER):
        # YAML writes `1` for 1.0: accept it rather than failing the whole node.
        return node.declare_parameter(name, float(override.value), descriptor,
                                      ignore_override=True).value
    try:
        got = node.declare_parameter(name, value, descriptor).value
    except InvalidParameterTypeException as exc:
        raise ValueError(
            f'{node.get_name()}: parameter {name!r} has the wrong type: {exc}. '
            f'Expected {ParameterType.__name__} {ptype} like the default {default!r}'
        ) from None
    return [] if got is None and isinstance(default, list) else got


def _dict_keys(node: Node, spec: ParamSpec) -> list[str]:
    """Keys of a dict parameter: the defaults plus any given as overrides (params file, CLI)."""
    prefix = spec.name + '.'
    # rclpy keeps the overrides from --params-file/-p here until they are declared.
    overrides = getattr(node, '_parameter_overrides', {})
    given = [n[len(prefix):] for n in overrides if n.startswith(prefix)]
    return list(dict.fromkeys([*spec.default.keys(), *given]))


def declare_config(node: Node, cls: type) -> Any:
    """Declare every field of ``cls`` as a parameter of ``node`` and return the filled config.

    Raises ``ValueError`` (with the bad name and value) when a parameter has the wrong type or the
    config's own validation rejects it. A given parameter that no field declares (a typo in a
    params file) is logged as a warning, since it would otherwise be ignored without a word.
    """
    flat: dict[str, Any] = {}
    for spec in specs(cls):
        if spec.kind is dict:
            for key in _dict_keys(node, spec):
                name = f'{spec.name}.{key}'
                flat[name] = _declare(node, name, spec.default.get(key, spec.item()),
                                      _SCALAR_TYPES[spec.item], spec.help)
        elif spec.kind is list:
            flat[spec.name] = list(_declare(node, spec.name, spec.default,
                                            _ARRAY_TYPES[spec.item], spec.help))
        else:
            flat[spec.name] = _declare(node, spec.name, spec.default, _SCALAR_TYPES[spec.kind],
                                       spec.help)
    unknown = sorted(n for n in getattr(node, '_parameter_overrides', {})
                     if not node.has_parameter(n) and not n.startswith('qos_overrides.'))
    if unknown:
        node.get_logger().warning(
            f'ignoring unknown parameter(s) {unknown}: {cls.__name__} has no such field '
            f'(known: {sorted(flat)})')
    return from_flat(cls, flat)
