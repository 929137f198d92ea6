"""`rosdep install --from-paths . --ignore-src` resolves every key on Humble, Jazzy and Kilted.

The keys are checked against test/data/rosdep_keys.txt, written from the official rosdistro
database by scripts/refresh_rosdep_keys.py (no network at test time; its docstring says how to
refresh the list). The script's own rules are checked here on a small fake database.
"""

from __future__ import annotations

import importlib.util
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
KEYS_FILE = ROOT / 'test' / 'data' / 'rosdep_keys.txt'
DISTROS = ('humble', 'jazzy', 'kilted')


def _script():
    spec = importlib.util.spec_from_file_location(
        'refresh_rosdep_keys', ROOT / 'scripts' / 'refresh_rosdep_keys.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def known_keys() -> dict[str, set[str]]:
    """key -> the distros it resolves on, from the file kept in the repo."""
    out = {}
    for line in KEYS_FILE.read_text().splitlines():
        if line.strip() and not line.startswith('#'):
            key, *distros = line.split()
            out[key] = set(distros)
    return out


PACKAGE_XMLS = sorted(ROOT.glob('*/package.xml'))


@pytest.mark.parametrize('xml', PACKAGE_XMLS, ids=lambda p: p.parent.name)
def test_every_package_xml_key_resolves_on_every_distro(xml):
    _, ours = _script().package_keys(ROOT)
    known = known_keys()
    root = ET.parse(xml).getroot()
    used = {e.text.strip() for tag in _script().DEPEND_TAGS for e in root.iter(tag)} - ours
    assert used, xml
    unlisted = sorted(used - set(known))
    assert not unlisted, (f'{xml}: {unlisted} not in {KEYS_FILE.name}; run '
                          'scripts/refresh_rosdep_keys.py (see its docstring)')
    unresolved = {k: sorted(set(DISTROS) - known[k]) for k in used if set(DISTROS) - known[k]}
    assert not unresolved, f'{xml}: no rosdep definition on {unresolved}'


def test_ament_python_is_a_build_type_not_a_dependency():
    """`<buildtool_depend>ament_python</buildtool_depend>` has no rosdep key on any distro;
    ament_python packages declare only `<build_type>` (as ros2/examples' rclpy packages do)."""
    for xml in PACKAGE_XMLS:
        root = ET.parse(xml).getroot()
        assert 'ament_python' not in {e.text.strip() for e in root.iter('buildtool_depend')}
    assert 'ament_python' not in known_keys()


def test_the_list_was_generated_for_these_package_xml_files():
    keys, _ = _script().package_keys(ROOT)
    assert keys == set(known_keys()), 'rerun scripts/refresh_rosdep_keys.py'


def test_the_refresh_script_reads_distributions_and_rules(tmp_path):
    script = _script()
    (tmp_path / 'humble').mkdir()
    (tmp_path / 'humble' / 'distribution.yaml').write_text(
        'repositories:\n'
        '  ament_index: {release: {packages: [ament_index_python], version: 1.4.1-1}}\n'
        '  rclpy: {release: {version: 3.3.1-1}}\n'
        '  unreleased: {source: {type: git}}\n')
    assert script.released_packages(tmp_path / 'humble' / 'distribution.yaml') == {
        'ament_index_python', 'rclpy'}
    assert script.apt_resolves({'ubuntu': ['python3-yaml']}, 'jammy')
    assert script.apt_resolves({'ubuntu': {'*': ['python3-tqdm']}}, 'noble')
    assert script.apt_resolves({'ubuntu': {'jammy': ['a'], 'noble': None}}, 'jammy')
    assert not script.apt_resolves({'ubuntu': {'jammy': ['a'], 'noble': None}}, 'noble')
    assert script.apt_resolves({'ubuntu': {'pip': {'packages': ['x']}}}, 'noble')
    assert not script.apt_resolves({'debian': ['python3-x']}, 'noble')
    assert not script.apt_resolves(None, 'noble')
