"""Full-size PI0.5 (pi05_base, random weights) chunk latency and memory, MoE on and off (#19).

Batch 1, three cameras, a ``--tokens`` prompt, ``--steps`` Euler steps with the prefix KV cache.
Prints per stage (vision, prefix, denoise and per step, total), the weights' size and the peak
memory (CPU: the process's peak RSS; CUDA: torch's peak allocation), for each variant, on
``--device cpu|cuda`` in ``--dtype auto|float32|bfloat16|float16`` (auto: model/precision.py).
The variants are timed interleaved, so other load on the machine hits both alike.

The weights are made without a random-init pass: the model is built on the meta device, cast,
and given storage directly in the target dtype (pi05_base in bf16 never exists in fp32 here).

``--load-check`` also saves a bf16 checkpoint of the first variant to a temporary directory and
loads it with ``Policy.load(dtype='bfloat16')`` in a fresh process: the peak RSS that the load
adds, against the weights' bytes (issue #19's goal: <= 1.3x).

``--lerobot``: when LeRobot's pi05 is importable in this environment, its chunk is timed at the
same dims, alternating with ours; otherwise a line says why it is skipped. (LeRobot >= 0.5 needs
Python >= 3.12; the CPU torch wheel here is cp311, so on this project's machines it is skipped.)

    source env.sh && python bench/bench_full_size.py                 # pi05_base, CPU, auto
    python bench/bench_full_size.py --preset small --iters 3        # a quick look
    python bench/bench_full_size.py --device cuda --dtype bfloat16  # on a GPU

Prints figures; it is not a test. pi05_base needs ~7 GB (bf16) or ~14 GB (fp32) of memory per
variant held; ``--moe on`` or ``off`` holds one.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from pi05_moe_policy.model import Pi05Model
from pi05_moe_policy.model.precision import resolve_dtype
from pi05_moe_policy.policy_config import make_policy_config

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_model_latency import make_batch  # noqa: E402


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # kB -> GB


def build(preset: str, moe: bool, dtype: torch.dtype, device: torch.device) -> Pi05Model:
    """Random weights (normal, std 0.02) made in ``dtype`` on ``device``; no fp32 pass."""
    cfg = make_policy_config(preset, use_camera_moe=moe).model
    with torch.device('meta'):
        model = Pi05Model(cfg)
    model = model.to(dtype).to_empty(device=device)
    gen = torch.Generator(device=device).manual_seed(0)
    with torch.no_grad():
        for name, tensor in [*model.named_parameters(), *model.named_buffers()]:
            if name.endswith('position_ids'):
                tensor.copy_(torch.arange(tensor.shape[-1], device=device).expand_as(tensor))
            elif tensor.is_floating_point():
                tensor.normal_(0.0, 0.02, generator=gen)
    return model.eval()


def time_variants(models: dict, batches: dict, steps: int, iters: int, warmup: int,
                  sync) -> dict[str, dict[str, float]]:
    rows: dict[str, list[dict[str, float]]] = {k: [] for k in models}
    for i in range(warmup + iters):
        for name, model in models.items():
            cfg = model.config
            noise = torch.randn(1, cfg.action_horizon, cfg.action_dim, device=model.device)
            sync()
            t0 = time.perf_counter()
            with torch.inference_mode():
                _, info = model.sample_actions(batches[name], noise=noise, num_steps=steps)
            sync()
            total = (time.perf_counter() - t0) * 1e3
            if i >= warmup:
                rows[name].append(dict(info['timing'], total=total))
    return {name: {k: statistics.median(r[k] for r in rs) for k in rs[0]}
            for name, rs in rows.items()}


def load_check(model: Pi05Model, preset: str, moe: bool) -> None:
    """Save bf16, then measure Policy.load's added peak RSS in a fresh process."""
    from pi05_moe_policy import Policy
    from pi05_moe_policy.transforms.normalize import NormStats
    from pi05_moe_policy.transforms.tokenizer import build_tokenizer

    cfg = make_policy_config(preset, use_camera_moe=moe)
    data = cfg.data
    tok = build_tokenizer('word_hash', cfg.model.vocab_size)
    if data.tokenizer_type != 'word_hash':
        data = data.replace(tokenizer_type='word_hash', tokenizer_path=None)
    policy = Policy(model, data, NormStats.identity(data.robot_state_dim,
                                                    data.robot_action_dim), tok)
    weights_gb = sum(p.numel() for p in model.parameters()) * 2 / 2**30
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        policy.save(d, weights_dtype='bfloat16')
        print(f'\nload check: saved {weights_gb:.2f} GB of bf16 weights in '
              f'{time.perf_counter() - t0:.0f} s')
        code = ('import resource, time, torch; from pi05_moe_policy import Policy; '
                'r0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss; '
                f't = time.perf_counter(); p = Policy.load({d!r}, dtype="bfloat16"); '
                'r1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss; '
                'print((r1 - r0) / 2**20, time.perf_counter() - t, p.dtype)')
        out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                             check=True).stdout.split()
    added, secs = float(out[0]), float(out[1])
    print(f'  Policy.load(dtype=bfloat16) added {added:.2f} GB peak RSS in {secs:.0f} s: '
          f'{added / weights_gb:.2f}x the weights ({out[2]})')


def lerobot_line() -> str | None:
    try:
        import lerobot.policies.pi05  # noqa: F401
    except ImportError as exc:
        return (f'LeRobot comparison skipped: lerobot.policies.pi05 is not importable here '
                f'({exc}); LeRobot >= 0.5 needs Python >= 3.12, this is '
                f'{sys.version.split()[0]}')
    return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--preset', default='pi05_base')
    ap.add_argument('--device', default='cpu', help='cpu or cuda[:N]')
    ap.add_argument('--dtype', default='auto', help='auto, float32, bfloat16 or float16')
    ap.add_argument('--moe', default='on,off', help='variants: on, off or on,off')
    ap.add_argument('--tokens', type=int, default=48, help='prompt tokens')
    ap.add_argument('--steps', type=int, default=10)
    ap.add_argument('--iters', type=int, default=1, help='timed chunks per variant (0: none)')
    ap.add_argument('--warmup', type=int, default=1, help='untimed chunks first (the first '
                    'chunk is also printed: the warm-up time a node pays at start)')
    ap.add_argument('--threads', type=int, default=0, help='torch threads (0 = default)')
    ap.add_argument('--load-check', action='store_true')
    ap.add_argument('--lerobot', action='store_true', help='compare with LeRobot if importable')
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    dtype = resolve_dtype(args.dtype, device)
    cuda = device.type == 'cuda'
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    print(f'torch {torch.__version__}, {args.device}, {str(dtype).removeprefix("torch.")}, '
          f'{torch.get_num_threads()} threads, preset {args.preset!r}, batch 1, '
          f'{args.tokens}-token prompt, {args.steps} steps, 3 cameras')
    models, batches = {}, {}
    for variant in args.moe.split(','):
        t0 = time.perf_counter()
        model = build(args.preset, variant == 'on', dtype, device)
        models[f'moe {variant}'] = model
        batch = make_batch(model.config, 1, args.tokens)
        batches[f'moe {variant}'] = {k: v.to(device) for k, v in batch.items()}
        n = sum(p.numel() for p in model.parameters())
        print(f'moe {variant}: {n / 1e9:.3f} B params, {n * dtype.itemsize / 2**30:.2f} GB '
              f'weights, built in {time.perf_counter() - t0:.0f} s; peak RSS so far '
              f'{peak_rss_gb():.1f} GB')
    if args.iters <= 0:  # --iters 0: build (and --load-check) only
        if args.load_check:
            name = next(iter(models))
            load_check(models[name].to('cpu'), args.preset, name == 'moe on')
        return
    t0 = time.perf_counter()
    first = time_variants(models, batches, args.steps, 1, 0, sync)
    print(f'first chunk (warm-up) of each: {time.perf_counter() - t0:.1f} s in all; '
          + ', '.join(f'{k} {r["total"] / 1e3:.2f} s' for k, r in first.items()))
    timed = time_variants(models, batches, args.steps, args.iters, max(0, args.warmup - 1), sync)
    for name, r in timed.items():
        print(f'  {name:7s} total {r["total"]:9.1f} ms | vision {r["vision"]:8.1f} | prefix '
              f'{r["prefix"]:8.1f} | denoise {r["denoise"]:8.1f} '
              f'({r["denoise_per_step"]:.1f}/step)')
    if cuda:
        print(f'peak CUDA memory {torch.cuda.max_memory_allocated() / 2**30:.2f} GB')
    print(f'peak RSS {peak_rss_gb():.1f} GB')
    if len(timed) == 2:
        on, off = timed['moe on'], timed['moe off']
        print(f'moe on / off: chunk {on["total"] / off["total"]:.2f}x')
    if args.lerobot:
        line = lerobot_line()
        print(line if line else 'LeRobot is importable: its timing is not wired in yet')
    if args.load_check:
        name = next(iter(models))
        load_check(models[name].to('cpu'), args.preset, name == 'moe on')


if __name__ == '__main__':
    main()
