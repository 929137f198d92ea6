"""model/precision.py: the fastest inference dtype per device, and bf16 against fp32 (#19)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from test_policy_api import obs

from pi05_moe_policy import Policy
from pi05_moe_policy.model.precision import (
    NAMES,
    cpu_flags,
    fastest_cpu_dtype,
    resolve_dtype,
)
from pi05_moe_policy.nodes.config import DTYPE_NAMES, PolicyNodeConfig

EPYC = {'fpu', 'sse2', 'avx', 'avx2', 'fma'}  # this project's AVX2-only development CPU
SAPPHIRE = EPYC | {'avx512f', 'avx512_bf16', 'amx_bf16', 'amx_tile'}


@pytest.mark.parametrize('flags, capability, want', [
    (EPYC, 'AVX2', torch.float32),
    (EPYC | {'avx512f'}, 'AVX512', torch.float32),  # AVX-512 without BF16: emulated
    (EPYC | {'avx512f', 'avx512_bf16'}, 'AVX512', torch.bfloat16),
    (SAPPHIRE, 'AMX', torch.bfloat16),
    (set(), 'AMX', torch.bfloat16),  # torch's own probe is enough
    (set(), 'DEFAULT', torch.float32),
])
def test_bf16_only_where_the_cpu_computes_it_natively(flags, capability, want):
    assert fastest_cpu_dtype(flags, capability) is want


def test_this_machine_gets_what_its_flags_say():
    native = bool(cpu_flags() & {'amx_bf16', 'avx512_bf16'}) or \
        'AMX' in torch.backends.cpu.get_cpu_capability()
    assert resolve_dtype('auto', 'cpu') is (torch.bfloat16 if native else torch.float32)


def test_cpu_flags_reads_the_flags_line(tmp_path: Path):
    info = tmp_path / 'cpuinfo'
    info.write_text('processor\t: 0\nflags\t\t: fpu avx2 amx_bf16\nbugs\t\t: none\n')
    assert cpu_flags(info) == {'fpu', 'avx2', 'amx_bf16'}
    assert cpu_flags(tmp_path / 'missing') == set()


def test_resolve_dtype_names_and_errors():
    assert resolve_dtype(None) is None and resolve_dtype(torch.float16) is torch.float16
    assert resolve_dtype('bf16') is torch.bfloat16 and resolve_dtype('float32') is torch.float32
    with pytest.raises(ValueError, match="got 'fp64'"):
        resolve_dtype('fp64')


def test_the_node_configs_names_are_the_models():
    assert set(DTYPE_NAMES) == set(NAMES)
    assert PolicyNodeConfig(checkpoint='preset:tiny').dtype == 'auto'
    with pytest.raises(ValueError, match="dtype='double'"):
        PolicyNodeConfig(checkpoint='preset:tiny', dtype='double')


def test_bf16_actions_stay_close_to_fp32():
    """The same weights, inputs and noise in bf16 and fp32: actions within 1% of the actions'
    range (measured: 0.05%; bf16 keeps 8 bits of mantissa, norms run in fp32)."""
    noise = np.random.default_rng(0).standard_normal((50, 32)).astype(np.float32)
    fp32 = Policy.from_preset('tiny', seed=0, num_steps=4)
    bf16 = Policy.from_preset('tiny', seed=0, num_steps=4, dtype='auto').to(dtype='bf16')
    assert bf16.dtype is torch.bfloat16
    a = fp32.infer(obs(), noise=noise)['actions']
    b = bf16.infer(obs(), noise=noise)['actions']
    assert b.dtype == np.float32 and np.isfinite(b).all()
    span = float(np.ptp(a))
    err = float(np.abs(a - b).max())
    assert err <= 0.01 * span, f'bf16 vs fp32: max |diff| {err:.4f} against a range of {span:.4f}'
    assert err > 0.0  # it really ran in bf16
