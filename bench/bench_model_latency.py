"""Chunk latency of the model: camera-MoE fusion vs the concatenation baseline.

Batch 1, every camera present (3 by default), a prompt of exactly ``--tokens`` real tokens,
``--steps`` Euler steps with the prefix KV cache.  Both variants are built and timed in the same
run, in fp32 and bf16, with a breakdown: vision (SigLIP + projector), prefix (MoE fusion,
language embedding and the prefix KV cache) and the denoise steps (total and per step).
``sparse`` is the fused model with sparse routing (``--sparse``: expert cameras below that
routing weight are not encoded), timed in the same run.
Optionally times one training step (forward + backward + AdamW) at ``--train-batch``.

    PYTHONPATH=pi05_moe_policy .venv/bin/python bench/bench_model_latency.py
    PYTHONPATH=pi05_moe_policy .venv/bin/python bench/bench_model_latency.py --preset small \
        --train-batch 8

Prints figures; it is not a test.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from pi05_moe_policy.model import Pi05Model, make_config


def make_batch(cfg, b: int, tokens: int, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    c = 1 + cfg.num_experts  # the base camera and the experts
    s = cfg.image_size
    n = tokens  # the prompt fills the whole token window
    mask = torch.zeros(b, n, dtype=torch.bool)
    mask[:, :tokens] = True
    return {
        'images': torch.rand(b, c, 3, s, s, generator=g) * 2 - 1,
        'image_masks': torch.ones(b, c, dtype=torch.bool),
        'tokens': torch.randint(3, cfg.vocab_size, (b, n), generator=g),
        'token_mask': mask,
        'state': torch.randn(b, cfg.max_state_dim, generator=g),
        'actions': torch.randn(b, cfg.action_horizon, cfg.action_dim, generator=g),
        'camera_active': torch.eye(cfg.num_experts)[torch.arange(b) % cfg.num_experts]
        if cfg.num_experts else torch.zeros(b, 0),
    }


def time_chunks(models: dict[str, Pi05Model], batches: dict[str, dict], steps: int,
                iters: int, warmup: int, sparse: dict[str, float] | None = None
                ) -> dict[str, tuple[dict[str, float], float]]:
    """Time the variants interleaved (fused, concat, fused, ...) so that other load on the
    machine hits both alike; ``sparse``: variant -> sparse routing threshold.  -> per variant:
    median ms per stage (and cameras encoded), and the fastest total."""
    rows: dict[str, list[dict[str, float]]] = {k: [] for k in models}
    for i in range(warmup + iters):
        for name, model in models.items():
            noise = torch.randn(1, model.config.action_horizon, model.config.action_dim)
            t0 = time.perf_counter()
            _, info = model.sample_actions(batches[name], noise=noise, num_steps=steps,
                                           sparse_threshold=(sparse or {}).get(name, 0.0))
            total = (time.perf_counter() - t0) * 1e3
            if i >= warmup:
                rows[name].append(dict(info['timing'], total=total,
                                       cameras=float(info['cameras_encoded'])))
    return {name: ({k: statistics.median(r[k] for r in rs) for k in rs[0]},
                   min(r['total'] for r in rs)) for name, rs in rows.items()}


def count_flops(cfg, tokens: int, steps: int) -> dict[str, float]:
    """Analytic FLOPs (torch's FlopCounterMode on the meta device: no memory, no weights) of
    one chunk at batch 1: vision, prefix (fusion + KV cache) and one denoise step."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device('meta'):
        model = Pi05Model(cfg).eval()
        batch = {k: v.to('meta') for k, v in make_batch(cfg, 1, tokens).items()}
    out = {}
    with torch.no_grad():
        fc = FlopCounterMode(display=False)
        with fc:
            cam = model.encode_images(batch['images'], batch['image_masks'])
        out['vision'] = fc.get_total_flops()
        fc = FlopCounterMode(display=False)
        with fc:
            prefix = model.embed_prefix(batch, cam)
            cache = model.build_prefix_cache(prefix)
        out['prefix'] = fc.get_total_flops()
        rows = model.suffix_rows(prefix, 1, torch.device('meta'))
        x = torch.zeros(1, cfg.action_horizon, cfg.action_dim, device='meta')
        fc = FlopCounterMode(display=False)
        with fc:
            model._velocity_cached(prefix, cache, rows, batch['state'], x,
                                   torch.ones(1, device='meta'))
        out['step'] = fc.get_total_flops()
    out['total'] = out['vision'] + out['prefix'] + steps * out['step']
    return out


def time_train_step(model: Pi05Model, batch, iters: int, warmup: int) -> float:
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    times = []
    for i in range(warmup + iters):
        t0 = time.perf_counter()
        loss, _ = model.compute_loss(batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if i >= warmup:
            times.append((time.perf_counter() - t0) * 1e3)
    model.eval()
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--preset', default='tiny')
    ap.add_argument('--tokens', type=int, default=48)
    ap.add_argument('--steps', type=int, default=10)
    ap.add_argument('--iters', type=int, default=10)
    ap.add_argument('--warmup', type=int, default=3)
    ap.add_argument('--dtypes', default='float32,bfloat16')
    ap.add_argument('--train-batch', type=int, default=0, help='also time a train step')
    ap.add_argument('--sparse', type=float, default=0.5,
                    help='also time the fused model with sparse routing at this threshold '
                    '(policy_node sparse_routing_threshold; 0: no). With two expert cameras '
                    'the weights sum to 1, so 0.5 leaves exactly one expert unencoded')
    ap.add_argument('--threads', type=int, default=0, help='torch threads (0 = default)')
    ap.add_argument('--flops', default='tiny,small,pi05_base',
                    help='presets whose analytic FLOPs to print ("" = none)')
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f'torch {torch.__version__}, {torch.get_num_threads()} threads, preset '
          f'{args.preset!r}, batch 1, {args.tokens}-token prompt, {args.steps} steps, '
          f'median of {args.iters}')
    models, batches = {}, {}
    for variant, moe in (('fused', True), ('concat', False)):
        cfg = make_config(args.preset, use_camera_moe=moe)
        torch.manual_seed(0)
        models[variant] = Pi05Model(cfg).eval()
        batches[variant] = make_batch(cfg, 1, args.tokens)
        params = sum(p.numel() for p in models[variant].parameters())
        prefix_len = (1 if moe else (1 + cfg.num_experts)) * cfg.num_image_tokens + args.tokens
        print(f'{variant}: {params / 1e6:.2f}M params, {(1 + cfg.num_experts)} cameras, '
              f'prefix {prefix_len} tokens')
    sparse = {}
    if args.sparse > 0:  # the fused weights, expert cameras below the threshold not encoded
        models['sparse'], batches['sparse'] = models['fused'], batches['fused']
        sparse['sparse'] = args.sparse
    results = {}
    for dt_name in args.dtypes.split(','):
        for model in models.values():
            model.to(getattr(torch, dt_name))
        timed = time_chunks(models, batches, args.steps, args.iters, args.warmup, sparse)
        print(f'\n{dt_name}:')
        for variant, (r, best) in timed.items():
            results[(variant, dt_name)] = r
            print(f'  {variant:6s} total {r["total"]:7.1f} ms (min {best:6.1f}) | vision '
                  f'{r["vision"]:6.1f} | prefix {r["prefix"]:6.1f} | denoise {r["denoise"]:6.1f} '
                  f'({r["denoise_per_step"]:.2f}/step) | {1e3 / r["total"]:.1f} chunks/s | '
                  f'{r["cameras"]:.0f} cameras encoded')
    if args.train_batch:
        print(f'\ntrain step (fp32, batch {args.train_batch}, fwd + bwd + AdamW, median of 3):')
        for variant, model in models.items():
            if variant == 'sparse':  # the fused model's weights: its train step is fused's
                continue
            model.to(torch.float32)
            tb = make_batch(model.config, args.train_batch, args.tokens)
            print(f'  {variant:6s} {time_train_step(model, tb, iters=3, warmup=1):.0f} ms')
    for variant in [v for v in ('fused', 'sparse') if v in models]:
        print_ratios(results, variant, args.dtypes.split(','))
    if args.flops:
        print_flops(args, [p for p in args.flops.split(',') if p])


def print_ratios(results: dict, variant: str, dtypes: list[str]) -> None:
    print(f'\n{variant} / concat:')
    for dt_name in dtypes:
        f, c = results[(variant, dt_name)], results[('concat', dt_name)]
        no_vision_f = f['total'] - f['vision']
        no_vision_c = c['total'] - c['vision']
        print(f'  {dt_name:9s} chunk {f["total"] / c["total"]:.2f}x | without vision '
              f'{no_vision_f / no_vision_c:.2f}x | prefix {f["prefix"] / c["prefix"]:.2f}x | '
              f'denoise step {f["denoise_per_step"] / c["denoise_per_step"]:.2f}x')


def print_flops(args: argparse.Namespace, presets: list[str]) -> None:
    if presets:
        print(f'\nanalytic GFLOPs per chunk (batch 1, {args.tokens}-token prompt, '
              f'{args.steps} steps):')
    for preset in presets:
        f = count_flops(make_config(preset, use_camera_moe=True),
                        args.tokens, args.steps)
        c = count_flops(make_config(preset, use_camera_moe=False),
                        args.tokens, args.steps)
        print(f'  {preset:9s} fused {f["total"] / 1e9:8.1f} (vision {f["vision"] / 1e9:.1f}, '
              f'prefix {f["prefix"] / 1e9:.1f}, step {f["step"] / 1e9:.2f}) | concat '
              f'{c["total"] / 1e9:8.1f} (prefix {c["prefix"] / 1e9:.1f}, step '
              f'{c["step"] / 1e9:.2f}) | ratio {f["total"] / c["total"]:.2f}x')


if __name__ == '__main__':
    main()
