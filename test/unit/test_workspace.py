"""The workspace is installed: ament index, share files, executables, lint."""

import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from ament_index_python.packages import get_package_prefix, get_package_share_directory

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ['pi05_moe_msgs', 'pi05_moe_policy', 'pi05_moe_bringup', 'pi05_moe_training']
EXECUTABLES = {
    'pi05_moe_policy': ['policy_node', 'executor_node'],
    'pi05_moe_bringup': ['sim_node', 'uvc_camera_node', 'thermal_camera_node',
                         'l515_camera_node', 'pi05-moe'],
    'pi05_moe_training': ['recorder_node'],
}


@pytest.mark.parametrize('package', PACKAGES)
def test_ament_index_finds_package_and_share_files(package):
    share = Path(get_package_share_directory(package))
    assert (share / 'package.xml').is_file()
    index = Path(get_package_prefix(package)) / 'share/ament_index/resource_index/packages'
    assert (index / package).exists()


@pytest.mark.parametrize('folder', ['launch', 'config', 'rqt'])
def test_bringup_installs_its_folders(folder):
    share = Path(get_package_share_directory('pi05_moe_bringup'))
    assert (share / folder).is_dir()
    src = sorted(p.name for p in (ROOT / 'pi05_moe_bringup' / folder).iterdir())
    assert sorted(p.name for p in (share / folder).iterdir()) == src


def test_msgs_share_holds_interface_definitions():
    share = Path(get_package_share_directory('pi05_moe_msgs'))
    assert (share / 'msg/ActionChunk.msg').is_file()
    assert (share / 'msg/RoutingWeights.msg').is_file()


@pytest.mark.parametrize('package', PACKAGES)
def test_package_xml_is_format3_and_complete(package):
    root = ET.parse(ROOT / package / 'package.xml').getroot()
    assert root.tag == 'package' and root.get('format') == '3'
    for tag in ('name', 'version', 'description', 'maintainer', 'license'):
        assert root.find(tag) is not None and root.find(tag).text.strip(), tag
    assert root.find('name').text == package
    build_type = root.find('export/build_type').text
    assert build_type == ('ament_cmake' if package == 'pi05_moe_msgs' else 'ament_python')


@pytest.mark.parametrize(('package', 'exe'),
                         [(p, e) for p, exes in EXECUTABLES.items() for e in exes])
def test_console_scripts_are_installed_and_on_path(package, exe):
    path = Path(get_package_prefix(package)) / 'lib' / package / exe
    assert path.is_file(), path
    assert shutil.which(exe) == str(path)


def test_pi05_moe_cli_help_lists_every_subcommand():
    out = subprocess.run(['pi05-moe', '--help'], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    for sub in ('up', 'record', 'sim-demos', 'convert', 'check-labels', 'train', 'eval',
                'replay', 'plot-routing'):
        assert sub in out.stdout


def test_pi05_moe_version_is_the_package_version():
    out = subprocess.run(['pi05-moe', '--version'], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    version = ET.parse(ROOT / 'pi05_moe_bringup' / 'package.xml').getroot().findtext('version')
    assert out.stdout.strip() == f'pi05-moe {version}'


def test_ruff_lint_whole_repo():
    out = subprocess.run(['ruff', 'check', '--no-cache', str(ROOT)], capture_output=True,
                         text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr


def test_env_sh_can_be_sourced_by_a_strict_script():
    """The repo's scripts run under `set -euo pipefail` and then `source env.sh`; ROS's and
    colcon's setup scripts read unset variables, so env.sh turns nounset off while it runs and
    restores it after."""
    script = ('set -euo pipefail; source env.sh; [[ $- == *u* ]] || exit 3; '
              'command -v pi05-moe >/dev/null || exit 4; echo sourced')
    done = subprocess.run(['bash', '-c', script], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == 'sourced', done.stderr[-2000:]
