"""Run a command with a real read-only or size-limited tmpfs mounted over a directory.

As root (CI, this machine), ``chmod 555`` does not stop writes, so the read-only and full-disk
cases mount a real tmpfs inside a private mount namespace (``unshare -m``, or ``unshare -rm``
where only user namespaces are allowed): the kernel itself answers EROFS or ENOSPC. The mount
lives only as long as the command, and nothing outside the namespace sees it.
"""

from __future__ import annotations

import functools
import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path


def _unshare(flags: str, script: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(['unshare', flags, 'sh', '-c', script], capture_output=True,
                          text=True, **kwargs)


@functools.cache
def unshare_flags() -> str | None:
    """The ``unshare`` flags under which a read-only tmpfs really refuses writes, else None."""
    if not shutil.which('unshare'):
        return None
    with tempfile.TemporaryDirectory() as tmp:
        d = shlex.quote(tmp)
        for flags in ('-m', '-rm'):
            probe = _unshare(flags, f'mount -t tmpfs -o ro tmpfs {d} && ! touch {d}/x 2>/dev/null',
                             timeout=20)
            if probe.returncode == 0:
                return flags
    return None


def run_with_tmpfs(directory: Path, options: str, command: str, *, before: str = '',
                   timeout: float = 120) -> subprocess.CompletedProcess:
    """``before`` (with the mount read-write), then ``command`` in a shell in which
    ``directory`` is a tmpfs mounted with ``options`` (e.g. ``'ro'`` or ``'size=64k'``)."""
    flags = unshare_flags()
    assert flags is not None, 'no private mount namespace on this machine'
    d = shlex.quote(str(directory))
    if 'ro' in options.split(','):
        rw = ','.join(o for o in options.split(',') if o != 'ro') or 'defaults'
        mount = f'mount -t tmpfs -o {rw} tmpfs {d} && {before or ":"} && mount -o remount,ro {d}'
    else:
        mount = f'mount -t tmpfs -o {options} tmpfs {d} && {before or ":"}'
    return _unshare(flags, f'{mount} && {command}', timeout=timeout)
