"""The fastest inference dtype for the device at hand (issue #19). Pure torch, no ROS.

On a CPU, bf16 pays only with native bf16 matrix units: AMX (``amx_bf16``, Sapphire Rapids and
later) or AVX-512 BF16 (``avx512_bf16``). Elsewhere torch emulates it: on this project's
AVX2-only EPYC our model ran 4-5x slower in bf16 than in fp32. So ``auto`` picks bf16 only on
such CPUs, fp32 on every other CPU, and bf16 on a CUDA device (fp16 where the GPU has no bf16).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import torch

BF16_CPU_FLAGS = ('amx_bf16', 'avx512_bf16')
NAMES = {'float32': torch.float32, 'fp32': torch.float32, 'bfloat16': torch.bfloat16,
         'bf16': torch.bfloat16, 'float16': torch.float16, 'fp16': torch.float16}


def cpu_flags(cpuinfo: Path = Path('/proc/cpuinfo')) -> set[str]:
    """The CPU's feature flags (lscpu's "Flags"); empty where /proc/cpuinfo is not readable."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith('flags'):
            return set(line.split(':', 1)[1].split())
    return set()


def fastest_cpu_dtype(flags: Iterable[str] | None = None, capability: str | None = None
                      ) -> torch.dtype:
    """bf16 where the CPU computes it natively, else fp32.

    flags: the CPU's feature flags (default: /proc/cpuinfo); capability: torch's
    ``torch.backends.cpu.get_cpu_capability()`` ('AVX512', 'AVX2', ...; default: asked). Either
    source naming AMX or AVX-512 BF16 counts.
    """
    flags = cpu_flags() if flags is None else set(flags)
    if capability is None:
        capability = torch.backends.cpu.get_cpu_capability()
    native = any(f in flags for f in BF16_CPU_FLAGS) or 'AMX' in capability.upper()
    return torch.bfloat16 if native else torch.float32


def resolve_dtype(dtype: str | torch.dtype | None, device: str | torch.device = 'cpu'
                  ) -> torch.dtype | None:
    """A dtype name, a torch dtype, None (keep the weights' dtype) or 'auto' (the fastest for
    ``device``) -> a torch dtype or None. Unknown names raise ValueError quoting the value."""
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    if dtype == 'auto':
        dev = torch.device(device)
        if dev.type == 'cuda':
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return fastest_cpu_dtype() if dev.type == 'cpu' else torch.float32
    if dtype not in NAMES:
        raise ValueError(f"dtype must be 'auto' or one of {sorted(NAMES)}, got {dtype!r}")
    return NAMES[dtype]
