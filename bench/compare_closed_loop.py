"""Side-by-side closed-loop comparison of checkpoints in the simulator (e.g. PI0.5 vs RT-1, #20).

    source env.sh && python bench/compare_closed_loop.py \
        --run "PI0.5 (shipped)=shipped:sim_small" --run "RT-1 routed=runs/sim_small/rt1_routed" \
        --training "PI0.5 (shipped)=18000 steps, ~3 h 20 min" --seed 8000 --episodes 20

Each ``--run NAME=CHECKPOINT`` goes through ``pi05-moe sim-eval`` in its own process, one after
the other on the same (task, seed) episodes, with the same latency model (sim-eval's default:
the world moves on for each inference's measured wall-clock time), the same graph settings and
``--num-threads`` torch threads. Then one table: success per family, routing accuracy (per
inference / per episode), the inference time per policy call (p50 / p90, wall ms) and the
simulated latency it caused, the parameters, and the training budget given with ``--training``.
The load average is printed before and after. Writes ``<out-dir>/<name>.json`` (sim-eval's
reports) and ``<out-dir>/table.md``.

Prints figures; it is not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path


def pairs(values: list[str], flag: str) -> dict[str, str]:
    out = {}
    for value in values:
        name, sep, rest = value.partition('=')
        if not sep or not name or not rest:
            raise SystemExit(f'{flag} takes NAME=VALUE, got {value!r}')
        out[name] = rest
    return out


def slug(name: str) -> str:
    return re.sub(r'[^A-Za-z0-9]+', '_', name).strip('_').lower() or 'run'


def parameters(checkpoint: str) -> int:
    from pi05_moe_policy.checkpoints import load_policy

    policy = load_policy(checkpoint)
    return sum(p.numel() for p in policy.model.parameters())


def pct(value: float | None) -> str:
    return '-' if value is None else f'{value:.0%}'


def row(name: str, report: dict, params: int, training: str) -> str:
    fams = report['families']
    success = ' | '.join(f'{f["successes"]}/{f["episodes"]} ({pct(f["success_rate"])})'
                         for f in fams.values())
    overall = report['overall']
    routing = (f'{pct(overall["routing_accuracy_inference"])} / '
               f'{pct(overall["routing_accuracy_episode"])}'
               if overall['routing_accuracy_inference'] is not None else 'no router')
    lat = report['latency']
    infer = f'{lat["infer_ms_median"]:.0f} / {lat["infer_ms_p90"]:.0f} ms'
    used = f'{lat["median_s"]:.3f} s' if lat['median_s'] is not None else '-'
    replan = report.get('loop', {}).get('replan_steps')
    name = f'{name} (replan {replan})' if replan and 'replan' not in name else name
    return (f'| {name} | {success} | {overall["successes"]}/{overall["episodes"]} | {routing} | '
            f'{infer} | {used} | {pct(overall["held_share"])} | {params / 1e6:.1f}M | '
            f'{training or "-"} |')


def table(reports: dict[str, dict], params: dict[str, int], training: dict[str, str]) -> str:
    first = next(iter(reports.values()))
    fams = ' | '.join(first['families'])
    head = (f'| policy | {fams} | overall | routing accuracy (inference / episode) | inference '
            f'p50 / p90 | latency used (median) | arm held | parameters | training |')
    sep = '|' + '---|' * (head.count('|') - 1)
    return '\n'.join([head, sep, *(row(n, r, params[n], training.get(n, ''))
                                    for n, r in reports.items())])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split('\n\n', 1)[1])
    parser.add_argument('--run', action='append', default=[], metavar='NAME=CHECKPOINT',
                        help='a checkpoint to evaluate (directory or shipped:<name>)')
    parser.add_argument('--training', action='append', default=[], metavar='NAME=TEXT',
                        help="the run's training budget, shown in the table")
    parser.add_argument('--episodes', type=int, default=20, help='episodes per family (20)')
    parser.add_argument('--seed', type=int, default=8000,
                        help='first episode seed (8000: never used for tuning)')
    parser.add_argument('--num-threads', type=int, default=1, help='torch threads (1)')
    parser.add_argument('--out-dir', default='runs/compare_closed_loop')
    parser.add_argument('--sim-eval-arg', action='append', default=[], metavar='ARG',
                        help='passed on to every sim-eval (e.g. --sim-eval-arg=--latency-s=0.2)')
    parser.add_argument('--run-args', action='append', default=[], metavar='NAME=ARGS',
                        help="more sim-eval arguments for one run, split at spaces (e.g. "
                        "'RT-1=--replan 5')")
    args = parser.parse_args()
    runs, training = pairs(args.run, '--run'), pairs(args.training, '--training')
    extra = {name: value.split() for name, value in pairs(args.run_args, '--run-args').items()}
    unknown = sorted(set(training) - set(runs)) + sorted(set(extra) - set(runs))
    if unknown:
        parser.error(f'--training/--run-args name no --run: {unknown}')
    if len(runs) < 1:
        parser.error('give at least one --run NAME=CHECKPOINT')
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    print(f'load average before: {os.getloadavg()}', flush=True)
    reports, params = {}, {}
    for name, checkpoint in runs.items():
        out = out_dir / f'{slug(name)}.json'
        cmd = ['pi05-moe', 'sim-eval', '--checkpoint', checkpoint, '--episodes',
               str(args.episodes), '--seed', str(args.seed), '--num-threads',
               str(args.num_threads), '--out', str(out), '--no-progress', *args.sim_eval_arg,
               *extra.get(name, [])]
        print('$ ' + ' '.join(cmd), flush=True)
        started = time.monotonic()
        if subprocess.run(cmd).returncode != 0:
            print(f'compare: sim-eval of {name} failed', file=sys.stderr)
            return 1
        print(f'{name}: {time.monotonic() - started:.0f} s, load average {os.getloadavg()}',
              flush=True)
        reports[name] = json.loads(out.read_text())
        params[name] = parameters(checkpoint)
    text = table(reports, params, training)
    (out_dir / 'table.md').write_text(text + '\n')
    print(text)
    print(f'load average after: {os.getloadavg()}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
