"""argparse flags generated from a config dataclass (``pi05_moe_policy.params.specs``).

``batch_size`` becomes ``--batch-size``, a bool ``--progress/--no-progress``, a dict field
``--model-overrides KEY=VALUE ...`` and a list ``--names A B``; help and defaults come from the
field.  The parsed flags go back through ``params.from_flat``, so the dataclass's own validation
runs and errors quote the bad value.
"""

from __future__ import annotations

import argparse
from typing import Any

from pi05_moe_policy.params import from_flat, specs


def flag(name: str) -> str:
    return '--' + name.replace('.', '-').replace('_', '-')


def add_config_arguments(parser: argparse.ArgumentParser, cls: type,
                         required: tuple[str, ...] = ()) -> None:
    """One flag per flat parameter of ``cls``; fields in ``required`` must be given."""
    for spec in specs(cls):
        kw: dict[str, Any] = {'dest': spec.name, 'help': spec.help.replace('%', '%%')}
        if spec.name in required:
            kw['required'] = True
        else:
            kw['help'] += ' (default: %(default)s)'
        if spec.kind is bool:
            kw.update(action=argparse.BooleanOptionalAction, default=spec.default)
        elif spec.kind is dict:
            kw.update(nargs='+', action='extend', metavar='KEY=VALUE', default=[])
            kw['help'] = kw['help'].replace(' (default: %(default)s)', '')
        elif spec.kind is list:
            kw.update(nargs='*', type=spec.item, default=list(spec.default))
        else:
            kw.update(type=spec.kind, default=spec.default)
        parser.add_argument(flag(spec.name), **kw)


def config_from_args(cls: type, args: argparse.Namespace) -> Any:
    """Build ``cls`` from the flags of :func:`add_config_arguments` (validated)."""
    flat: dict[str, Any] = {}
    for spec in specs(cls):
        value = getattr(args, spec.name)
        if spec.kind is not dict:
            flat[spec.name] = value
            continue
        for item in value:
            key, sep, text = item.partition('=')
            if not sep or not key:
                raise ValueError(f'{flag(spec.name)} {item!r}: expected KEY=VALUE')
            flat[f'{spec.name}.{key}'] = text
    return from_flat(cls, flat)
