"""Every benchmark in bench/ still imports and explains itself after the code moves around.

The benchmarks print figures and are not run by the suite; a moved module or helper breaks them
silently. ``--help`` imports everything a script needs without measuring anything.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / 'bench'
SCRIPTS = sorted(BENCH.glob('*.py'))


def test_there_are_benchmarks():
    assert len(SCRIPTS) >= 5, SCRIPTS


@pytest.mark.parametrize('script', SCRIPTS, ids=lambda p: p.name)
def test_bench_script_answers_help(script: Path):
    done = subprocess.run([sys.executable, str(script), '--help'], capture_output=True,
                          text=True, timeout=120, cwd=BENCH.parent)
    assert done.returncode == 0, done.stderr[-3000:]
    assert 'usage' in done.stdout.lower(), done.stdout[-2000:]
