"""Dataclass configs <-> flat, dotted parameters (the ROS parameter model). Pure: no rclpy.

Every component has one ``@dataclass`` config. Its fields carry their help text through
:func:`param`, so ROS parameters (``ros_params.declare_config``), YAML files and CLI configs are
all generated from the same class and cannot drift. Validation lives in the dataclass's
``__post_init__``, using :func:`check` so that errors quote the bad value.

Supported field types: bool, int, float, str, list[bool|int|float|str], dict[str, str|float|int]
(keys become ``field.key`` parameters) and nested dataclasses (``field.sub``).
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from typing import Any

SCALARS = (bool, int, float, str)


def param(default: Any, help: str, **metadata: Any) -> Any:  # noqa: A002 - mirrors argparse
    """A dataclass field with help text; mutable defaults are copied per instance."""
    meta = {'help': help, **metadata}
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=meta)
    if dataclasses.is_dataclass(default):
        return dataclasses.field(default_factory=lambda: dataclasses.replace(default),
                                 metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def check(ok: bool, obj: Any, name: str, expected: str) -> None:
    """Raise ``ValueError('<Class>.<name>=<value!r>: expected ...')`` unless ``ok``."""
    if not ok:
        raise ValueError(
            f'{type(obj).__name__}.{name}={getattr(obj, name)!r}: expected {expected}'
        )


def plain_dict(config: Any) -> dict[str, Any]:
    """A config dataclass as JSON-ready data (tuples become lists)."""
    return {k: list(v) if isinstance(v, tuple) else v
            for k, v in dataclasses.asdict(config).items()}


def strict_from_dict(cls: type, data: Any) -> Any:
    """``cls(**data)`` for a dataclass ``cls``, refusing keys it has no field for.

    Unknown keys raise ``ValueError('<Class>: unknown fields [...]; known fields: [...]')``, so a
    typo in a JSON/YAML config never passes silently. Validation is the class's own
    ``__post_init__``.
    """
    if not isinstance(data, dict):
        raise TypeError(f'{cls.__name__}: expected a dict of fields, got {type(data).__name__}')
    known = sorted(f.name for f in dataclasses.fields(cls) if f.init)
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ValueError(f'{cls.__name__}: unknown fields {unknown}; known fields: {known}')
    return cls(**data)


@dataclass(frozen=True)
class ParamSpec:
    """One flat parameter of a config class."""

    name: str  # dotted, e.g. 'cameras' (a dict) or 'limits.max_velocity'
    kind: type  # bool/int/float/str, or list, or dict
    item: type | None  # element type for list/dict
    default: Any
    help: str


def specs(cls: type, prefix: str = '') -> list[ParamSpec]:
    """The flat parameters of dataclass ``cls`` (nested dataclasses are flattened)."""
    hints = typing.get_type_hints(cls)
    out: list[ParamSpec] = []
    defaults = cls()
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        name = prefix + f.name
        tp = hints[f.name]
        default = getattr(defaults, f.name)
        help_text = f.metadata.get('help', '')
        if dataclasses.is_dataclass(tp):
            out.extend(specs(tp, name + '.'))
            continue
        origin = typing.get_origin(tp)
        args = typing.get_args(tp)
        if origin is typing.Union or str(origin) == "<class 'types.UnionType'>":
            raise TypeError(f'{cls.__name__}.{f.name}: optional fields cannot be ROS parameters')
        if origin is list:
            out.append(ParamSpec(name, list, args[0], default, help_text))
        elif origin is dict:
            if args[0] is not str:
                raise TypeError(f'{cls.__name__}.{f.name}: dict keys must be str')
            out.append(ParamSpec(name, dict, args[1], default, help_text))
        elif tp in SCALARS:
            out.append(ParamSpec(name, tp, None, default, help_text))
        else:
            raise TypeError(f'{cls.__name__}.{f.name}: unsupported parameter type {tp}')
    return out


def to_flat(cfg: Any, prefix: str = '') -> dict[str, Any]:
    """``cfg`` as ``{dotted_name: value}``; dict fields are expanded to ``name.key``."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cfg):
        if not f.init:
            continue
        value = getattr(cfg, f.name)
        name = prefix + f.name
        if dataclasses.is_dataclass(value):
            out.update(to_flat(value, name + '.'))
        elif isinstance(value, dict):
            out.update({f'{name}.{k}': v for k, v in value.items()})
        else:
            out[name] = list(value) if isinstance(value, (list, tuple)) else value
    return out


def _coerce(spec: ParamSpec, name: str, value: Any) -> Any:
    """Check ``value`` against the spec's type; ints are accepted for floats."""
    def one(tp: type, v: Any) -> Any:
        if tp is float and isinstance(v, int) and not isinstance(v, bool):
            return float(v)
        if tp is int and isinstance(v, bool) or not isinstance(v, tp):
            raise ValueError(f'parameter {name}={v!r}: expected {tp.__name__}')
        return v

    if spec.kind is list:
        if not isinstance(value, (list, tuple)):
            raise ValueError(f'parameter {name}={value!r}: expected a list of '
                             f'{spec.item.__name__}')
        return [one(spec.item, v) for v in value]
    if spec.kind is dict:
        return one(spec.item, value)
    return one(spec.kind, value)


def from_flat(cls: type, flat: dict[str, Any]) -> Any:
    """Build ``cls`` from ``{dotted_name: value}``; missing names keep their defaults.

    Unknown names raise ``ValueError`` listing the known ones, so typos in YAML do not pass
    silently. The dataclass's own ``__post_init__`` validation runs as usual.
    """
    by_name = {s.name: s for s in specs(cls)}
    dict_specs = {s.name: s for s in by_name.values() if s.kind is dict}
    values: dict[str, Any] = {}
    for name, value in flat.items():
        if name in by_name and by_name[name].kind is not dict:
            values[name] = _coerce(by_name[name], name, value)
            continue
        head, _, key = name.rpartition('.')
        if head in dict_specs and key:
            values.setdefault(head, {})[key] = _coerce(dict_specs[head], name, value)
            continue
        raise ValueError(
            f'{cls.__name__}: unknown parameter {name!r}; known: {", ".join(sorted(by_name))}'
        )
    return _build(cls, values, '')


def _build(cls: type, values: dict[str, Any], prefix: str) -> Any:
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        name = prefix + f.name
        if dataclasses.is_dataclass(hints[f.name]):
            kwargs[f.name] = _build(hints[f.name], values, name + '.')
        elif name in values:
            kwargs[f.name] = values[name]
    return cls(**kwargs)


def nest_dotted(flat: dict[str, Any]) -> dict[str, Any]:
    """``{'a.b': 1, 'c': 2}`` -> ``{'a': {'b': 1}, 'c': 2}``: dotted names as nested maps."""
    nested: dict[str, Any] = {}
    for name, value in flat.items():
        *parents, leaf = name.split('.')
        level = nested
        for part in parents:
            level = level.setdefault(part, {})
        level[leaf] = value
    return nested


def ros_params_document(node_name: str, flat: dict[str, Any]) -> dict[str, Any]:
    """``{node_name: {'ros__parameters': {...}}}`` from flat dotted parameters, nested the way
    a ROS 2 params YAML file writes them."""
    return {node_name: {'ros__parameters': nest_dotted(flat)}}


def to_ros_yaml_dict(node_name: str, cfg: Any) -> dict[str, Any]:
    """``{node_name: {'ros__parameters': {...}}}`` with nested dicts, for a params YAML file."""
    return ros_params_document(node_name, to_flat(cfg))
