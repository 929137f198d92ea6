"""One chunk of the shipped checkpoint, stage by stage: today's path against the fast settings.

    source env.sh && python bench/bench_fast_inference.py [--iters 20] [--num-threads 1]

Batch 1, fp32, the shipped checkpoint (``shipped:sim_small``: its three cameras, its prompt
length) on frames rendered by the simulator for "lift the red cube". Variants, timed
interleaved (A, B, C, A, B, C, ...) so other load hits them alike:

- ``baseline``: the code as it was before issue #15's speed work: every prompt padding column
  in the prefix (64 tokens for ~5 real ones), 10 Euler steps, every camera encoded, the prefix
  K/V concatenated with the suffix's and the bool mask converted at every attention call;
- ``trim``: the padding trimmed (the same actions);
- ``trim+N steps``: fewer Euler steps (``policy_node num_steps``); ``+static kv`` (the first
  N only): with the static KV cache (``gemma.StaticKV``: the suffix K/V written in place, the
  mask additive, made once; ``sample_actions``' default on CUDA only);
- ``trim+N steps+sparse T``: and expert cameras whose routing weight is below T not encoded
  (``policy_node sparse_routing_threshold``);
- ``trim+N steps+compile``: a second copy of the model with its denoising step compiled
  (``policy_node torch_compile``; ``--compile N``), its compilation untimed;
- ``candidate N steps+compile`` (``--candidate CKPT``): another checkpoint, e.g. one retrained
  at a smaller shape (``scripts/train_fast_checkpoint.sh``), with the fast settings, timed in
  the same run, so its ratio is to today's shipped checkpoint's baseline.

Stages: decode (sensor_msgs/Image -> numpy, as policy_node does), transform (resize, normalise,
tokenise), vision, prefix (fusion + language + KV cache), denoise (and per step), publish
(building the ActionChunk message). Prints the median of each, the total and its ratio to the
baseline, and the largest action difference to the baseline's chunk (robot units). Prints
figures; it is not a test.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
from builtin_interfaces.msg import Time
from sensor_msgs.msg import Image

from pi05_moe_bringup.sim.config import SimConfig
from pi05_moe_bringup.sim.robot import SimRobot
from pi05_moe_policy.checkpoints import load_policy
from pi05_moe_policy.core.image_codec import numpy_to_image
from pi05_moe_policy.core.observation import decode_image
from pi05_moe_policy.nodes.msg_convert import make_action_chunk


def variants(steps: list[int], threshold: float) -> dict[str, dict]:
    out = {'baseline': dict(trim_prompt=False, num_steps=10, sparse_threshold=0.0,
                            static_kv=False),
           'trim': dict(trim_prompt=True, num_steps=10, sparse_threshold=0.0)}
    for i, n in enumerate(steps):
        if i == 0:  # what the static KV cache adds, at the first step count
            out[f'trim+{n} steps+static kv'] = dict(trim_prompt=True, num_steps=n,
                                                    sparse_threshold=0.0, static_kv=True)
        out[f'trim+{n} steps'] = dict(trim_prompt=True, num_steps=n, sparse_threshold=0.0)
        if threshold > 0:
            out[f'trim+{n} steps+sparse {threshold:g}'] = dict(
                trim_prompt=True, num_steps=n, sparse_threshold=threshold)
    return out


def frames_for(policy, frames: dict) -> dict:
    return {n: frames[n] for n in policy.camera_names}


def compiled_variants(args: argparse.Namespace, frames: dict, state: np.ndarray) -> dict:
    """Copies of the weights with their denoising step compiled (its compilation untimed):
    --checkpoint's at --compile steps, and --candidate's at --candidate-steps."""
    out = {}
    for name, path, steps in ((f'trim+{args.compile} steps+compile', args.checkpoint,
                               args.compile),
                              (f'candidate {args.candidate_steps} steps+compile',
                               args.candidate, args.candidate_steps)):
        if not (path and steps):
            continue
        fast = load_policy(path).set_inference(num_steps=steps, torch_compile=True)
        fast.infer({'images': frames_for(fast, frames), 'state': state,
                    'prompt': 'lift the red cube'})
        out[name] = dict(policy=fast, other_weights=path != args.checkpoint)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--checkpoint', default='shipped:sim_small')
    parser.add_argument('--iters', type=int, default=20, help='timed chunks per variant')
    parser.add_argument('--warmup', type=int, default=3)
    parser.add_argument('--num-threads', type=int, default=1, help='torch threads (1)')
    parser.add_argument('--steps', default='5,4,3', help='Euler step counts to try (5,4,3)')
    parser.add_argument('--sparse', type=float, default=0.3,
                        help='sparse routing threshold to try (0.3; 0: none)')
    parser.add_argument('--compile', type=int, default=5, metavar='STEPS',
                        help='also time a copy with its denoising step compiled (torch_compile), '
                        'at this many steps (5; 0: no)')
    parser.add_argument('--candidate', default='', metavar='CHECKPOINT',
                        help='also time another checkpoint (e.g. a retrained, smaller one) with '
                        'the fast settings and --candidate-steps, against --checkpoint\'s '
                        'baseline in the same run')
    parser.add_argument('--candidate-steps', type=int, default=3,
                        help='Euler steps of --candidate (3)')
    args = parser.parse_args()
    torch.set_num_threads(args.num_threads)
    policy = load_policy(args.checkpoint)
    with SimRobot(SimConfig(layout='slots')) as robot:
        robot.reset(task='lift_red_cube', seed=1000)
        frames = {'l515': robot.l515_rgb(), 'wrist': robot.wrist(), 'thermal': robot.thermal()}
        state = robot.joint_state().position.astype(np.float32)
    encodings = {'l515': 'rgb8', 'wrist': 'rgb8', 'thermal': 'mono16'}
    msgs = {n: numpy_to_image(frames[n], encodings[n], Image()) for n in policy.camera_names}
    kinds = {n: 'thermal' if n in policy.thermal_cameras else 'rgb' for n in msgs}
    noise = np.random.default_rng(0).standard_normal(
        (policy.action_horizon, policy.model_config.action_dim)).astype(np.float32)
    runs = variants([int(s) for s in args.steps.split(',') if s], args.sparse)
    runs.update(compiled_variants(args, frames, state))
    model = policy.model
    rows: dict[str, list[dict[str, float]]] = {k: [] for k in runs}
    actions: dict[str, np.ndarray] = {}
    plain = model.sample_actions
    print(f'{args.checkpoint}: cameras {list(policy.camera_names)}, max_token_len '
          f'{policy.data_config.max_token_len}, {args.num_threads} thread(s), fp32, batch 1; '
          f'{args.iters} chunks per variant after {args.warmup} warm-up, interleaved')
    for i in range(args.warmup + args.iters):
        for name, kw in runs.items():
            runner = kw.get('policy', policy)
            if runner is policy:
                model.sample_actions = (lambda batch, _kw=kw, **k: plain(
                    batch, **{**k, 'num_steps': _kw['num_steps'],
                              'trim_prompt': _kw['trim_prompt'],
                              'sparse_threshold': _kw['sparse_threshold'],
                              'static_kv': _kw.get('static_kv', False)}))
            t0 = time.perf_counter()
            images = {n: decode_image(m, kinds[n], n) for n, m in msgs.items()}
            t1 = time.perf_counter()
            out = runner.infer({'images': images, 'state': state, 'prompt': 'lift the red cube'},
                               noise=noise)
            t2 = time.perf_counter()
            make_action_chunk(Time(), i, list(policy.joint_names or ()), out['actions'],
                              policy.control_period_s, out['timing']['total'], 'p',
                              out['routing'])
            t3 = time.perf_counter()
            if i >= args.warmup:
                timing = out['timing']
                rows[name].append({
                    'decode': (t1 - t0) * 1e3, 'transform': timing['transform'],
                    'vision': timing['vision'], 'prefix': timing['prefix'],
                    'denoise': timing['denoise'], 'per step': timing['denoise_per_step'],
                    'publish': (t3 - t2) * 1e3, 'total': (t3 - t0) * 1e3,
                    'cameras': float(out['cameras_encoded'])})
            actions[name] = out['actions']
    model.sample_actions = plain
    cols = ['decode', 'transform', 'vision', 'prefix', 'denoise', 'per step', 'publish', 'total']
    base = statistics.median(r['total'] for r in rows['baseline'])
    print(f'{"variant":<26}' + ''.join(f'{c:>10}' for c in cols)
          + f'{"x baseline":>12}{"cameras":>9}{"max |da|":>10}')
    for name, rs in rows.items():
        med = {c: statistics.median(r[c] for r in rs) for c in cols}
        diff = ('     other' if runs[name].get('other_weights') else
                f'{float(np.abs(actions[name] - actions["baseline"]).max()):>10.4f}')
        print(f'{name:<26}' + ''.join(f'{med[c]:>10.1f}' for c in cols)
              + f'{base / med["total"]:>11.2f}x{int(rs[0]["cameras"]):>9}{diff}')
    print('ms, medians; "x baseline" = baseline total / this total (higher is faster); '
          'max |da| = the largest action difference to the baseline chunk (robot units: rad, '
          'gripper 0..1), the same noise; "other": --candidate\'s weights)')


if __name__ == '__main__':
    main()
