"""The house rules of ARCHITECTURE.md, checked on the source: one-way arrows between units, every
import declared in package.xml, and no rclpy below the nodes.

Imports are read with ``ast`` (nothing is imported), including the lazy ones inside functions.
"""

from __future__ import annotations

import ast
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ('pi05_moe_policy', 'pi05_moe_training', 'pi05_moe_bringup')
OURS = (*PACKAGES, 'pi05_moe_msgs')
# Python import name -> rosdep key, for everything that comes from apt on a robot.
ROSDEP_KEYS = {
    'numpy': 'python3-numpy', 'yaml': 'python3-yaml', 'cv2': 'python3-opencv',
    'tqdm': 'python3-tqdm', 'matplotlib': 'python3-matplotlib', 'pandas': 'python3-pandas',
}
# Units that must stay ROS-free (DESIGN.md: model core, transforms, ensembler, sync, labels...).
ROS_FREE = (
    'pi05_moe_policy.model', 'pi05_moe_policy.transforms', 'pi05_moe_policy.core',
    'pi05_moe_policy.params', 'pi05_moe_policy.topics', 'pi05_moe_policy.policy',
    'pi05_moe_policy.policy_config',
    'pi05_moe_policy.checkpoints', 'pi05_moe_bringup.sim',
    'pi05_moe_training.bags', 'pi05_moe_training.dataset', 'pi05_moe_training.train',
    'pi05_moe_training.evaluate', 'pi05_moe_training.config_cli', 'pi05_moe_training.pretrained',
)
ROS_MODULES = ('rclpy', 'launch', 'launch_ros')


def _unit(module: str) -> str | None:
    """The unit a dotted module belongs to: ``pkg.sub`` for a subpackage or top module."""
    parts = module.split('.')
    if parts[0] == 'pi05_moe_msgs':
        return 'pi05_moe_msgs'
    if parts[0] not in PACKAGES:
        return None
    base = ROOT / parts[0] / parts[0]
    if len(parts) > 1 and ((base / parts[1]).is_dir() or (base / f'{parts[1]}.py').is_file()):
        return f'{parts[0]}.{parts[1]}'
    # The package root only re-exports Policy (pi05_moe_policy/__init__.py).
    return 'pi05_moe_policy.policy' if parts[0] == 'pi05_moe_policy' else parts[0]


def _modules() -> list[tuple[str, Path]]:
    out = []
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg / pkg).rglob('*.py')):
            dotted = path.relative_to(ROOT / pkg).with_suffix('').as_posix().replace('/', '.')
            out.append((dotted.removesuffix('.__init__'), path))
    return out


def _imports(path: Path) -> set[str]:
    """Every absolute module an import in the file names (``from a import b`` gives a.b too)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f'{path}: relative import; use absolute imports'
            if node.module not in OURS:  # `from pkg import sub`: the unit is pkg.sub
                names.add(node.module)
            names.update(f'{node.module}.{a.name}' for a in node.names)
    return names


def _allowed_arrows() -> dict[str, set[str]]:
    text = (ROOT / 'ARCHITECTURE.md').read_text()
    block = re.search(r'```arrows\n(.*?)```', text, re.S)
    assert block, 'ARCHITECTURE.md has no ```arrows block'
    arrows: dict[str, set[str]] = {}
    for line in block.group(1).splitlines():
        src, _, dsts = line.partition('->')
        arrows[src.strip()] = set(dsts.split())
    return arrows


def _unit_imports() -> dict[str, dict[str, set[str]]]:
    """unit -> imported unit -> the files that import it."""
    out: dict[str, dict[str, set[str]]] = {}
    for dotted, path in _modules():
        src = _unit(dotted)
        if dotted == src.split('.')[0]:
            continue  # a package's __init__ (only the lazy Policy re-export)
        for name in _imports(path):
            dst = _unit(name)
            if dst is not None and dst != src:
                out.setdefault(src, {}).setdefault(dst, set()).add(path.name)
    return out


def test_architecture_md_is_short_and_covers_every_unit():
    lines = (ROOT / 'ARCHITECTURE.md').read_text().splitlines()
    assert len(lines) <= 60, f'ARCHITECTURE.md has {len(lines)} lines (goal: <= 60)'
    arrows = _allowed_arrows()
    units = {_unit(d) for d, _ in _modules()} - set(PACKAGES)
    missing = sorted(units - set(arrows))
    assert not missing, f'units missing from the ARCHITECTURE.md arrows block: {missing}'


def test_imports_follow_the_arrows():
    arrows = _allowed_arrows()
    bad = []
    for src, dsts in _unit_imports().items():
        for dst, files in dsts.items():
            if dst not in arrows.get(src, set()):
                bad.append(f'{src} -> {dst} ({", ".join(sorted(files))})')
    assert not bad, 'imports that ARCHITECTURE.md does not allow:\n' + '\n'.join(sorted(bad))


def test_arrows_run_one_way():
    """The allowed arrows themselves form no cycle (so no import can close one)."""
    arrows = _allowed_arrows()
    seen: dict[str, int] = {}

    def visit(node: str, stack: list[str]) -> None:
        if seen.get(node) == 1:
            pytest.fail(f'cycle: {" -> ".join([*stack, node])}')
        if seen.get(node) == 2:
            return
        seen[node] = 1
        for nxt in arrows.get(node, ()):
            visit(nxt, [*stack, node])
        seen[node] = 2

    for unit in arrows:
        visit(unit, [])
    package_of = {u: u.split('.')[0] for u in arrows}
    order = {p: i for i, p in enumerate(('pi05_moe_msgs', *PACKAGES))}
    for src, dsts in arrows.items():
        for dst in dsts:
            assert order[dst.split('.')[0]] <= order[package_of[src]], f'{src} -> {dst} points up'


def test_ros_free_units_never_import_ros():
    bad = []
    for dotted, path in _modules():
        if _unit(dotted) in ROS_FREE:
            ros = {n for n in _imports(path) if n.split('.')[0] in ROS_MODULES}
            if ros:
                bad.append(f'{path.relative_to(ROOT)}: {sorted(ros)}')
    assert not bad, 'ROS imported below the nodes:\n' + '\n'.join(bad)


def _declared(pkg: str) -> tuple[set[str], set[str]]:
    """(rosdep keys of exec_depend/depend, names in the package.xml's pip-only comment)."""
    text = (ROOT / pkg / 'package.xml').read_text()
    root = ET.fromstring(text.split('?>', 2)[-1] if text.startswith('<?xml') else text)
    keys = {e.text.strip() for e in root if e.tag in ('exec_depend', 'depend')}
    pip = re.search(r'pip-only[^:]*:([^>]*)-->', text)
    pip_names = set(re.findall(r'[\w-]+', pip.group(1))) if pip else set()
    return keys, pip_names


@pytest.mark.parametrize('pkg', PACKAGES)
def test_package_xml_declares_every_import(pkg):
    keys, pip_names = _declared(pkg)
    requirements = (ROOT / 'requirements/python.txt').read_text().lower()
    stdlib = set(sys.stdlib_module_names)
    missing = set()
    for _, path in _modules():
        if not path.is_relative_to(ROOT / pkg / pkg):
            continue
        for name in _imports(path):
            top = name.split('.')[0]
            if top in stdlib or top == pkg or top == '__future__':
                continue
            key = ROSDEP_KEYS.get(top, top)
            if key in keys:
                continue
            if top in pip_names:
                assert top.lower() in requirements, f'{top}: pip-only in {pkg} but not in ' \
                    'requirements/python.txt'
                continue
            missing.add(f'{top} ({path.relative_to(ROOT)})')
    assert not missing, (f'{pkg}/package.xml declares neither an exec_depend nor a pip-only '
                         f'entry for: {sorted(missing)}')
