#!/usr/bin/env python3
"""Rewrite test/data/rosdep_keys.txt from a checkout of the official rosdistro database.

    git clone --depth 1 https://github.com/ros/rosdistro /tmp/rosdistro
    python3 scripts/refresh_rosdep_keys.py /tmp/rosdistro

For every key that a package.xml of this repo names (the other packages of this repo aside), the
file lists the distros on which ``rosdep install --from-paths . --ignore-src`` resolves it:

- a ROS package resolves on a distro when that distro's ``distribution.yaml`` releases it;
- a system key (``python3-*``, ...) resolves when ``rosdep/base.yaml`` or ``rosdep/python.yaml``
  gives an apt package for the distro's Ubuntu release (``DISTROS`` below).

test/unit/test_rosdep_keys.py checks every package.xml key against that file without network
access. Run this script after adding a dependency, and commit the file it writes.
"""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / 'test' / 'data' / 'rosdep_keys.txt'
DISTROS = {'humble': 'jammy', 'jazzy': 'noble', 'kilted': 'noble'}  # ROS distro -> Ubuntu
DEPEND_TAGS = ('depend', 'build_depend', 'build_export_depend', 'buildtool_depend',
               'buildtool_export_depend', 'exec_depend', 'test_depend', 'doc_depend')


def package_keys(root: Path = ROOT) -> tuple[set[str], set[str]]:
    """(every dependency key of the repo's package.xml files, the repo's own package names)."""
    keys, ours = set(), set()
    for xml in sorted(root.glob('*/package.xml')):
        tree = ET.parse(xml).getroot()
        ours.add(tree.findtext('name').strip())
        keys.update(e.text.strip() for tag in DEPEND_TAGS for e in tree.iter(tag))
    return keys - ours, ours


def released_packages(distribution: Path) -> set[str]:
    """Every package a ``<distro>/distribution.yaml`` releases."""
    repos = yaml.safe_load(distribution.read_text())['repositories']
    out = set()
    for name, repo in repos.items():
        release = repo.get('release') or {}
        if 'version' in release:  # released, not just source/doc entries
            out.update(release.get('packages') or [name])
    return out


def apt_resolves(rule, codename: str) -> bool:
    """Whether a rosdep rule gives an Ubuntu ``codename`` package (rules are lists or dicts)."""
    ubuntu = (rule or {}).get('ubuntu') if isinstance(rule, dict) else None
    if isinstance(ubuntu, list):
        return bool(ubuntu)
    if isinstance(ubuntu, dict):
        if 'apt' in ubuntu or 'pip' in ubuntu:  # {apt: {packages: [...]}} without codenames
            return True
        value = ubuntu.get(codename, ubuntu.get('*'))
        if isinstance(value, dict):
            return bool(value.get('packages') or value.get('apt') or value.get('pip'))
        return bool(value)
    return False


def main(argv: list[str]) -> int:
    if len(argv) != 1 or not (Path(argv[0]) / 'rosdep' / 'python.yaml').is_file():
        print(__doc__, file=sys.stderr)
        return 2
    rosdistro = Path(argv[0])
    keys, _ = package_keys()
    rules = {}
    for name in ('base.yaml', 'python.yaml'):
        rules.update(yaml.safe_load((rosdistro / 'rosdep' / name).read_text()))
    released = {d: released_packages(rosdistro / d / 'distribution.yaml') for d in DISTROS}
    commit = subprocess.run(['git', '-C', str(rosdistro), 'log', '-1', '--format=%H %cs'],
                            capture_output=True, text=True).stdout.strip() or 'unknown commit'
    lines = [
        "# rosdep keys of this repo's package.xml files and the ROS distros each resolves on.",
        f'# From github.com/ros/rosdistro at {commit}.',
        '# Regenerate with scripts/refresh_rosdep_keys.py (its docstring says how).',
        '# A ROS package: released in <distro>/distribution.yaml; a system key: an apt rule',
        "# for the distro's Ubuntu release in rosdep/base.yaml or rosdep/python.yaml.",
    ]
    for key in sorted(keys):
        ok = [d for d, codename in DISTROS.items()
              if key in released[d] or apt_resolves(rules.get(key), codename)]
        lines.append(f'{key} {" ".join(ok)}'.rstrip())
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text('\n'.join(lines) + '\n')
    print(f'wrote {OUT} ({len(keys)} keys)')
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
