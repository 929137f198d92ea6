"""convert never loses a dataset, salvages killed recordings and fails with one clear line.

- ``--overwrite`` builds the new dataset next to the old one and swaps it in only when something
  converted (issue #17 item 10);
- a bag without metadata.yaml whose MCAP file was cut (a recording killed mid-write) converts
  what it holds and says how much it kept (item 11);
- a read-only output, a full disk and ``--action-topic /joint_states`` give one line naming the
  file and the cause, never a traceback (item 12). The read-only and full-disk cases use real
  tmpfs mounts in a private mount namespace (``private_mount.py``: as root, chmod does not stop
  writes); one more case raises the real ENOSPC OSError from ``Path.write_bytes``, the lowest
  file-system call of the video writer (an episode's segment), with monkeypatch.
"""

from __future__ import annotations

import errno
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from bag_factory import write_episode_bag
from private_mount import run_with_tmpfs, unshare_flags

from pi05_moe_bringup import cli
from pi05_moe_training.bags.reader import BagError, BagReader
from pi05_moe_training.dataset.convert import ConvertError, convert
from pi05_moe_training.dataset.episodes import read_episodes
from pi05_moe_training.dataset.extract import ExtractConfig, read_episode

needs_mounts = pytest.mark.skipif(unshare_flags() is None,
                                  reason='no private mount namespace (unshare -m) here')


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob('*'))
            if p.is_file()}


@pytest.fixture(scope='module')
def bags(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp('bags')
    good = write_episode_bag(root / 'good', prompt='lift the hot cube')
    other = write_episode_bag(root / 'other', prompt='lift the red cube', seconds=1.5)
    # A real kill -9 of a process recording 6 s in arrival order (~5 MB, several MCAP chunks)
    child = subprocess.Popen([sys.executable, str(Path(__file__).with_name('killed_recording.py')),
                              str(root / 'killed_dir'), '6'], stdout=subprocess.PIPE, text=True)
    killed = Path(child.stdout.readline().strip())
    assert child.stdout.readline().strip() == 'written'
    child.kill()
    child.wait()
    assert not (killed / 'metadata.yaml').exists()
    bad = root / 'bad'
    bad.mkdir()
    (bad / 'bad.mcap').write_bytes(b'not an mcap file')
    return {'good': good, 'other': other, 'killed': killed, 'bad': bad}


@pytest.fixture
def old_dataset(bags, tmp_path) -> tuple[Path, dict[str, bytes]]:
    out = tmp_path / 'ds'
    assert convert([bags['good']], out, progress=False).episodes
    return out, tree(out)


def test_overwrite_with_nothing_converted_keeps_the_old_dataset(bags, old_dataset, capsys):
    out, before = old_dataset
    code = cli.main(['convert', str(bags['bad']), '--out', str(out), '--overwrite',
                     '--no-progress'])
    assert code == 1
    assert 'left as it was' in capsys.readouterr().out
    assert tree(out) == before
    assert sorted(p.name for p in out.parent.iterdir()) == ['ds']  # no temporary left behind


def test_overwrite_replaces_only_after_success(bags, old_dataset):
    out, before = old_dataset
    report = convert([bags['other']], out, overwrite=True, progress=False)
    assert report.replaced and report.out == out
    info = json.loads((out / 'meta/info.json').read_text())
    assert info['total_episodes'] == 1 and info['total_frames'] == report.total_frames == 67
    assert tree(out) != before and 'conversion.json' in str(list(tree(out)))
    assert sorted(p.name for p in out.parent.iterdir()) == ['ds']


def test_a_write_failure_leaves_the_old_dataset_intact(bags, old_dataset, monkeypatch):
    """ENOSPC raised by Path.write_bytes (the segment writer's file-system call) while the new
    dataset is written: one ConvertError naming the file and the cause; the old one survives."""
    out, before = old_dataset
    real = Path.write_bytes

    def full_disk(self, data):
        if self.suffix == '.mp4' and '.converting-' in str(self):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self))
        return real(self, data)

    monkeypatch.setattr(Path, 'write_bytes', full_disk)
    with pytest.raises(ConvertError) as caught:
        convert([bags['other']], out, overwrite=True, progress=False)
    text = str(caught.value)
    assert f'{out} is unchanged' in text and 'No space left on device' in text
    assert '.mp4' in text and 'disk is full' in text and '\n' not in text
    monkeypatch.undo()
    assert tree(out) == before
    assert sorted(p.name for p in out.parent.iterdir()) == ['ds']


def test_a_killed_recording_is_salvaged_and_says_how_much_was_kept(bags, tmp_path, capsys):
    with pytest.raises(BagError, match='no metadata.yaml'):
        BagReader(bags['killed']).open()  # without salvage: refused as before
    with BagReader(bags['killed'], salvage=True) as bag:
        kept = sum(bag.info.counts.values())
        span = (bag.info.end_ns - bag.info.start_ns) * 1e-9
        assert 0 < kept < 6 * (100 + 50 + 30 + 30 + 9) and 1.0 < span < 5.99
        assert bag.salvaged.startswith(f'salvaged {kept} messages ({span:.3f} s)')
        assert f'{bags["killed"].name}.mcap ends at byte' in bag.salvaged
    out = tmp_path / 'ds'
    assert cli.main(['convert', str(bags['killed']), '--out', str(out), '--no-progress']) == 0
    printed = capsys.readouterr().out
    assert f'salvaged {bags["killed"]}: salvaged {kept} messages' in printed
    episode, = read_episodes(out)
    assert episode['salvaged'].startswith(f'salvaged {kept} messages')
    assert episode['tasks'] == ['lift the red cube']  # from the prompt topic: no metadata left
    assert 50 < episode['length'] <= 295  # at most the 6 s recorded (the 9 Hz camera ends it)


def test_action_topic_joint_states_converts(bags, tmp_path, capsys):
    """--action-topic /joint_states: the action is the measured position one period later
    (before: an IndexError traceback)."""
    ep = read_episode(bags['good'], ExtractConfig(action_topics=['/joint_states']))
    assert ep.action_topic == '/joint_states' and ep.length == 95
    # joint j at header time s is s + j; the newest state before t + 1/fps is at t + 0.01
    np.testing.assert_allclose(ep.action - ep.state, 0.01, atol=1e-3)
    assert cli.main(['convert', str(bags['good']), '--out', str(tmp_path / 'ds'),
                     '--no-progress', '--action-topic', '/joint_states']) == 0
    assert 'Traceback' not in capsys.readouterr().err


def _convert_cmd(bag: Path, out: Path, *extra: str) -> str:
    args = [sys.executable, '-m', 'pi05_moe_bringup.cli', 'convert', str(bag), '--out', str(out),
            '--no-progress', *extra]
    return ' '.join(shlex.quote(a) for a in args)


def _one_line(proc: subprocess.CompletedProcess) -> str:
    err = proc.stderr.strip()
    assert 'Traceback' not in err and len(err.splitlines()) == 1, err
    return err


@needs_mounts
def test_read_only_output_is_one_line(bags, tmp_path):
    mount = tmp_path / 'ro'
    mount.mkdir()
    proc = run_with_tmpfs(mount, 'ro', _convert_cmd(bags['good'], mount / 'ds'))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    err = _one_line(proc)
    assert err.startswith('pi05-moe convert: cannot create the dataset: ')
    assert str(mount) in err and 'Read-only file system' in err


@needs_mounts
def test_full_disk_is_one_line_and_keeps_the_old_dataset(bags, old_dataset, tmp_path):
    old, before = old_dataset
    mount = tmp_path / 'small'
    mount.mkdir()
    pages = sum(-(-max(len(v), 1) // 4096) for v in before.values())  # tmpfs: 4 KiB pages
    size = (pages + pages // 2) * 4096  # the old dataset and half as much: no new copy fits
    proc = run_with_tmpfs(
        mount, f'size={size}',
        f'{_convert_cmd(bags["good"], mount / "ds", "--overwrite")}; rc=$?; '
        f'cd {shlex.quote(str(mount / "ds"))} && find . -type f | sort && ls -a .. && exit $rc',
        before=f'cp -r {shlex.quote(str(old))} {shlex.quote(str(mount / "ds"))}')
    assert proc.returncode == 2, proc.stdout + proc.stderr
    err = _one_line(proc)
    assert err.startswith(f'pi05-moe convert: writing the dataset failed, {mount / "ds"} is '
                          'unchanged: ')
    assert 'No space left on device' in err and str(mount) in err
    listed = proc.stdout.split()
    assert sorted(f'./{name}' for name in before) == [x for x in listed if x.startswith('./')]
    assert not [x for x in listed if '.converting-' in x]  # the temporary was removed
