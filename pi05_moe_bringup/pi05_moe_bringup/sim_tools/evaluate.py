"""closed-loop evaluation of a checkpoint in the simulator: success rate and routing accuracy.

Runs the simulated robot and the policy in this process (no ROS, no DDS): for each task (prompt
family) N episodes, each randomised by its own seed, with the policy's chunks executed through
the executor's ensembler and safety filter, configured like ``executor_node`` in the bringup
config (default: sim.yaml). See ``pi05_moe_bringup.sim_tools.closed_loop`` for the timing model.

The world does not wait for the policy: by default each chunk lands as much simulated time after
its observation as its inference took on the wall clock (times --real-time-factor, the speed the
simulated world is declared to run at; 1 = real time, as sim_node's default), and the executor
runs on meanwhile. --latency-s S fixes the latency instead (0: the world waits, the optimistic
figure); --latency-sweep 0,0.1,0.2,0.4,0.8 runs the evaluation at each fixed latency (`measured`
is a valid entry too) and prints success against latency. Every report states the latency
model and the latencies it used (median and p90 of the measured inference times).

Reports per episode success, steps and mean routing weights; per family the success rate, the
routing accuracy against the task's camera labels (the arg-max routing weight equals the
labelled expert, per inference and per episode by majority vote), the mean weight per expert and
which expert the router prefers. Writes everything to a JSON file and prints a table.

--checkpoint takes a checkpoint directory, preset:<name> (random weights: tests), or `expert`
(the scripted IK expert through the same execution path: the harness's ceiling). The default
is the shipped checkpoint, when present.

examples:
  pi05-moe sim-eval --episodes 20 --out runs/sim_small/sim_eval.json
  pi05-moe sim-eval --checkpoint runs/sim/best --tasks lift_hot_cube --episodes 5 --device cuda
  pi05-moe sim-eval --checkpoint expert --episodes 20        # should succeed nearly always
  pi05-moe sim-eval --latency-sweep 0,0.1,0.2,0.4,0.8 --episodes 20
  pi05-moe sim-eval --latency-s 0.4 --episodes 100 --jobs 8   # 8 processes side by side
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from collections import Counter
from concurrent.futures import as_completed
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from pi05_moe_bringup.description import load_graph, share_config
from pi05_moe_bringup.sim.config import SimConfig
from pi05_moe_bringup.sim.robot import JOINT_NAMES, SimRobot
from pi05_moe_bringup.sim.tasks import TASKS
from pi05_moe_bringup.sim_tools.closed_loop import (
    ClosedLoop,
    EpisodeResult,
    LoopConfig,
    ScriptedPolicy,
)
from pi05_moe_bringup.sim_tools.eval_workers import EpisodePool, check_jobs
from pi05_moe_policy import checkpoints
from pi05_moe_policy.checkpoints import shipped_checkpoint
from pi05_moe_policy.core.rtc import RtcConfig
from pi05_moe_policy.nodes.config import ExecutorNodeConfig
from pi05_moe_policy.params import from_flat

EXPERT = 'expert'
GOALS = {'success_rate': 0.80, 'routing_accuracy': 0.95}  # issue 7's targets


def add_arguments(parser: argparse.ArgumentParser) -> None:
    shipped = shipped_checkpoint()
    parser.add_argument('--checkpoint', default=str(shipped) if shipped else None,
                        required=shipped is None,
                        help='checkpoint directory, preset:<name> or expert (default: the '
                        f'shipped checkpoint{f" {shipped}" if shipped else ", not found"})')
    parser.add_argument('--tasks', default='lift_red_cube,lift_hot_cube',
                        help=f'comma-separated prompt families (registered: {", ".join(TASKS)})')
    parser.add_argument('--episodes', type=int, default=20, help='episodes per task (20)')
    parser.add_argument('--seed', type=int, default=1000,
                        help='episode k of every task uses seed + k (default 1000: away from '
                        'the seeds demonstrations are usually recorded with)')
    parser.add_argument('--like-demo', action='store_true',
                        help='the episodes `pi05-moe demo` runs: episode k is task k mod '
                        '(number of tasks) with seed --seed + k, and --episodes counts them all '
                        '(to compare a live demo with its prediction on the same seeds)')
    parser.add_argument('--max-steps', type=int, default=LoopConfig.max_steps,
                        help=f'control steps before an episode fails ({LoopConfig.max_steps})')
    parser.add_argument('--replan', type=int, default=LoopConfig.replan_steps,
                        help='control steps between inferences '
                        f'({LoopConfig.replan_steps})')
    parser.add_argument('--latency-s', type=float, default=None,
                        help='a fixed simulated time from an observation to its chunk (default: '
                        'measured, each inference\'s wall-clock time x --real-time-factor)')
    parser.add_argument('--real-time-factor', type=float, default=1.0,
                        help='measured latency: simulated seconds per wall second the world is '
                        'declared to run at (1.0, as sim_node\'s real_time_factor)')
    parser.add_argument('--measure-latency', action='store_true',
                        help='the measured latency model (the default; kept for old commands)')
    parser.add_argument('--latency-sweep', default=None, metavar='S,S,...',
                        help='run the evaluation at each of these fixed latencies (s; '
                        '"measured" for the measured model) and print success against latency')
    parser.add_argument('--graph', default='sim',
                        help='bringup config whose sim_node and executor_node parameters are '
                        'used (default: the installed sim.yaml)')
    parser.add_argument('--set', action='append', default=[], metavar='NODE.PARAM=VALUE',
                        help='override a graph parameter as `pi05-moe up --set` does (sim_node, '
                        'executor_node, and policy_node\'s num_steps, '
                        'sparse_routing_threshold and rtc*), e.g. executor_node.mode=rtc '
                        '--set policy_node.rtc=true')
    parser.add_argument('--layout', default=None,
                        help="scene layout ('wide' or 'slots'; default: the graph's sim_node)")
    parser.add_argument('--device', default='cpu', help='torch device (cpu, cuda, ...)')
    parser.add_argument('--num-threads', type=int, default=0,
                        help='torch CPU threads; 0 = torch\'s default')
    parser.add_argument('--jobs', type=int, default=1,
                        help='run episodes in N worker processes side by side (fixed latencies '
                        'only: --latency-s or a --latency-sweep of seconds); each worker takes '
                        '--num-threads threads, else the cores shared out (default 1)')
    parser.add_argument('--policy-seed', type=int, default=0,
                        help='seed of the policy\'s noise (and of preset:<name> weights)')
    parser.add_argument('--noise-scale', type=float, default=None,
                        help='sampling temperature (initial noise scale; 0 = deterministic); '
                        'default: the checkpoint\'s noise_scale')
    parser.add_argument('--out', default='sim_eval.json', help='JSON report (sim_eval.json)')
    parser.add_argument('--no-progress', action='store_true', help='no progress bar')


# policy_node parameters that change how the policy samples: sim-eval applies them as the
# node does (Policy.set_inference), so its figures hold for the live graph's settings.
INFERENCE_PARAMS = ('num_steps', 'sparse_routing_threshold', 'torch_compile', 'rtc',
                    'rtc_latency_window',
                    'rtc_latency_percentile', 'rtc_max_prefix_age_s')


@dataclasses.dataclass(frozen=True)
class GraphConfigs:
    sim: SimConfig
    executor: ExecutorNodeConfig
    inference: dict[str, Any]  # INFERENCE_PARAMS -> value, those the graph's policy_node sets


def graph_configs(graph: str, sets: list[str] | tuple[str, ...] = ()) -> GraphConfigs:
    """The sim_node and executor_node configs and policy_node's inference settings of a bringup
    config (a path or an installed name), with ``--set NODE.PARAM=VALUE`` overrides (YAML
    values).  Raises ValueError on a bad override."""
    path = Path(graph) if Path(graph).is_file() else share_config(graph)
    spec = load_graph(path)
    params = {name: dict(spec.node(name).params)
              for name in ('sim_node', 'executor_node', 'policy_node')}
    for item in sets:
        target, sep, value = item.partition('=')
        node, _, param = target.partition('.')
        if not sep or node not in params or not param:
            raise ValueError(f'--set {item!r}: expected NODE.PARAM=VALUE with NODE one of '
                             f'{sorted(params)}')
        if node == 'policy_node' and param not in INFERENCE_PARAMS:
            raise ValueError(f'--set {item!r}: sim-eval uses only policy_node\'s '
                             f'{", ".join(INFERENCE_PARAMS)}')
        try:
            params[node][param] = yaml.safe_load(value)
        except yaml.YAMLError:
            raise ValueError(f'--set {item!r}: {value!r} is not a YAML value') from None
    return GraphConfigs(from_flat(SimConfig, params['sim_node']),
                        from_flat(ExecutorNodeConfig, params['executor_node']),
                        {k: v for k, v in params['policy_node'].items() if k in INFERENCE_PARAMS})


def load_policy(checkpoint: str, robot: SimRobot, device: str = 'cpu', seed: int = 0) -> Any:
    """The policy ``checkpoint`` names (sized for the sim arm when a preset), or the expert."""
    if checkpoint == EXPERT:
        return ScriptedPolicy(robot)
    return checkpoints.load_policy(checkpoint, device=device, seed=seed, joint_names=JOINT_NAMES)


# ---------------------------------------------------------------------------- metrics (pure)

def labelled_expert(camera_labels: dict[str, int]) -> str | None:
    """The expert camera a task's labels mark as needed (None if not exactly one)."""
    needed = [name for name, label in camera_labels.items() if label]
    return needed[0] if len(needed) == 1 else None


def argmax(weights: dict[str, float]) -> str:
    return max(weights, key=weights.get)


def mean_weights(routings: list[dict[str, float]]) -> dict[str, float]:
    """Per-expert mean over a list of routing dicts ({} when there are none)."""
    routings = [r for r in routings if r]
    if not routings:
        return {}
    return {name: float(np.mean([r[name] for r in routings])) for name in routings[0]}


def summarise_episode(result: EpisodeResult) -> dict[str, Any]:
    """One episode as a JSON-ready dict, with its routing statistics."""
    routings = [i.routing for i in result.inferences if i.routing]
    label = labelled_expert(result.camera_labels)
    choices = [argmax(r) for r in routings]
    votes = Counter(choices).most_common()
    mean = mean_weights(routings)
    # majority vote; a tie goes to the expert with the larger mean weight
    choice = max((c for c, n in votes if n == votes[0][1]), key=mean.get) if votes else None
    return {
        'task': result.task, 'prompt': result.prompt, 'seed': result.seed,
        'success': result.success, 'steps': result.steps,
        'sim_time_s': round(result.sim_time_s, 4), 'inferences': len(result.inferences),
        'infer_ms_mean': (float(np.mean([i.wall_ms for i in result.inferences]))
                          if result.inferences else None),
        'mean_routing': mean, 'labelled_expert': label,
        'routing_correct_inferences': sum(c == label for c in choices),
        'routing_accuracy': float(np.mean([c == label for c in choices])) if choices else None,
        'routing_choice': choice, 'routing_choice_correct': (choice == label if choice else None),
        'latency_s_median': (float(np.median([i.latency_s for i in result.inferences]))
                             if result.inferences else None),
        'held_share': result.held_share,
        'arm_travel_rad': round(result.arm_travel_rad, 4),
        'closest_m': None if result.closest_m is None else round(result.closest_m, 4),
        'safety': result.safety,
    }


def latency_report(loop: LoopConfig, results: list[EpisodeResult]) -> dict[str, Any]:
    """The latency model of a run and the latencies it used (sim s) and measured (wall ms)."""
    used = [i.latency_s for r in results for i in r.inferences]
    wall = [i.wall_ms for r in results for i in r.inferences]

    def pct(values: list[float], q: float) -> float | None:
        return float(np.percentile(values, q)) if values else None

    return {'model': 'measured' if loop.measured else 'fixed', 'description': loop.describe(),
            'fixed_s': loop.latency_s,
            'real_time_factor': loop.real_time_factor if loop.measured else None,
            'inferences': len(used), 'median_s': pct(used, 50), 'p90_s': pct(used, 90),
            'max_s': max(used) if used else None,
            'infer_ms_median': pct(wall, 50), 'infer_ms_p90': pct(wall, 90)}


def format_latency(latency: dict[str, Any]) -> str:
    """One line: the latency model and the latencies used."""
    def ms(value: float | None) -> str:
        return '-' if value is None else f'{value:.0f} ms'

    wall = (f'inference wall-clock median {ms(latency["infer_ms_median"])}, p90 '
            f'{ms(latency["infer_ms_p90"])}')
    if latency['model'] == 'fixed':
        return f'latency: {latency["description"]} of sim time per chunk ({wall})'
    if latency['median_s'] is None:
        return f'latency: {latency["description"]}: no inference ran'
    return (f'latency: {latency["description"]}: median {latency["median_s"]:.3f} s, p90 '
            f'{latency["p90_s"]:.3f} s of sim time over {latency["inferences"]} inferences '
            f'({wall})')


def summarise(episodes: list[dict[str, Any]]) -> dict[str, Any]:
    """Success rate and routing accuracy over episodes (a family, or all of them)."""
    routed = [e for e in episodes if e['routing_choice'] is not None]
    inferences = sum(e['inferences'] for e in routed)
    mean = mean_weights([e['mean_routing'] for e in routed])
    labels = {e['labelled_expert'] for e in episodes}
    label = labels.pop() if len(labels) == 1 else None
    closest = [e['closest_m'] for e in episodes if e['closest_m'] is not None]
    out = {
        'episodes': len(episodes),
        'successes': sum(e['success'] for e in episodes),
        'success_rate': float(np.mean([e['success'] for e in episodes])) if episodes else None,
        'routing_accuracy_inference': (sum(e['routing_correct_inferences'] for e in routed)
                                       / inferences if inferences else None),
        'routing_accuracy_episode': (float(np.mean([e['routing_choice_correct'] for e in routed]))
                                     if routed else None),
        'mean_routing': mean,
        'mean_steps': float(np.mean([e['steps'] for e in episodes])) if episodes else None,
        # the share of control ticks the executor held the arm (no chunk covered now, or stale)
        'held_share': _held_share(episodes),
        # how close failures came: the pinch point's closest approach to the target cube
        'median_closest_m': (float(np.median(closest)) if closest else None),
    }
    if label is not None:  # one family: which expert the router prefers on average
        out['labelled_expert'] = label
        out['prefers'] = argmax(mean) if mean else None
        out['prefers_labelled'] = out['prefers'] == label if mean else None
    return out


def _held_share(episodes: list[dict[str, Any]]) -> float | None:
    holds = sum(v for e in episodes for k, v in e['safety'].items() if k.startswith('hold'))
    ticks = holds + sum(e['safety'].get('executed', 0) for e in episodes)
    return holds / ticks if ticks else None


def report(episodes: list[dict[str, Any]], tasks: list[str]) -> dict[str, Any]:
    """Families and overall figures, with the issue's goals checked."""
    families = {t: summarise([e for e in episodes if e['task'] == t]) for t in tasks}
    overall = summarise(episodes)
    accuracy = overall['routing_accuracy_inference']
    overall['goals'] = GOALS
    overall['meets_success_goal'] = overall['success_rate'] >= GOALS['success_rate']
    overall['meets_routing_goal'] = (accuracy >= GOALS['routing_accuracy']
                                     if accuracy is not None else None)
    return {'families': families, 'overall': overall}


def _pct(value: float | None) -> str:
    return '-' if value is None else f'{value:.0%}'


def _cm(metres: float | None) -> str:
    return '-' if metres is None else f'{metres * 100:.1f} cm'


def format_table(summary: dict[str, Any]) -> str:
    """The per-family table printed at the end."""
    rows = [('family', 'episodes', 'success', 'held', 'closest (median)', 'routing acc inf/ep',
             'mean routing', 'prefers')]
    for name, fam in [*summary['families'].items(), ('overall', summary['overall'])]:
        weights = ' '.join(f'{k}={v:.2f}' for k, v in fam['mean_routing'].items()) or '-'
        prefers = (f'{fam["prefers"]} (label {fam["labelled_expert"]})'
                   if fam.get('prefers') else '-')
        rows.append((name, str(fam['episodes']),
                     f'{_pct(fam["success_rate"])} ({fam["successes"]})',
                     _pct(fam['held_share']), _cm(fam['median_closest_m']),
                     f'{_pct(fam["routing_accuracy_inference"])} / '
                     f'{_pct(fam["routing_accuracy_episode"])}', weights, prefers))
    return _columns(rows)


def _columns(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return '\n'.join('  '.join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


def format_sweep(runs: list[dict[str, Any]], tasks: list[str]) -> str:
    """Success against latency: one row per run of a sweep."""
    rows = [('latency', *tasks, 'overall', 'held', 'latency used (median / p90)')]
    for run in runs:
        lat = run['latency']
        label = 'measured' if lat['model'] == 'measured' else f'{lat["fixed_s"]:g} s'
        used = ('-' if lat['median_s'] is None
                else f'{lat["median_s"]:.3f} / {lat["p90_s"]:.3f} s')
        fams = [f'{_pct(run["families"][t]["success_rate"])} '
                f'({run["families"][t]["successes"]}/{run["families"][t]["episodes"]})'
                for t in tasks]
        overall = run['overall']
        rows.append((label, *fams, f'{_pct(overall["success_rate"])} ({overall["successes"]}/'
                     f'{overall["episodes"]})', _pct(overall['held_share']), used))
    return _columns(rows)


# ---------------------------------------------------------------------------- the command

def loop_configs(args: argparse.Namespace) -> list[LoopConfig]:
    """One loop config per run: the --latency-sweep entries, else the one latency model.
    Raises ValueError (with the bad value) for a bad combination or value."""
    if args.latency_s is not None and (args.measure_latency or args.latency_sweep):
        raise ValueError(f'--latency-s {args.latency_s:g} fixes the latency: it does not go '
                         'with --measure-latency or --latency-sweep')
    latencies: list[float | None] = [args.latency_s]
    if args.latency_sweep is not None:
        entries = [e.strip() for e in args.latency_sweep.split(',') if e.strip()]
        try:
            latencies = [None if e == 'measured' else float(e) for e in entries]
        except ValueError:
            raise ValueError(f'--latency-sweep {args.latency_sweep!r}: expected seconds or '
                             '"measured", comma-separated') from None
        if not latencies:
            raise ValueError(f'--latency-sweep {args.latency_sweep!r} names no latency')
    return [LoopConfig(replan_steps=args.replan, max_steps=args.max_steps, latency_s=latency,
                       real_time_factor=args.real_time_factor) for latency in latencies]


def run_episodes(loop: ClosedLoop, tasks: list[str], args: argparse.Namespace,
                 pool: EpisodePool | None = None) -> dict[str, Any]:
    """Every task x --episodes episode with ``loop``'s config, here or on ``pool``'s workers
    (reported in the same order either way): the report of one run."""
    from pi05_moe_training.progress import progress as tqdm

    if args.like_demo:  # episode k: task k mod T, seed + k (pi05-moe demo's order)
        jobs = [(tasks[k % len(tasks)], args.seed + k) for k in range(args.episodes)]
    else:
        jobs = [(t, args.seed + k) for t in tasks for k in range(args.episodes)]
    if pool is None:
        done = ((i, loop.run_episode(task, seed)) for i, (task, seed) in enumerate(jobs))
    else:
        futures = {pool.submit(task, seed, loop.config): i for i, (task, seed) in enumerate(jobs)}
        done = ((futures[f], f.result()) for f in as_completed(futures))
    results: dict[int, EpisodeResult] = {}
    summaries: dict[int, dict[str, Any]] = {}
    bar = tqdm(done, total=len(jobs), desc='sim-eval', unit='ep', disable=args.no_progress)
    for i, result in bar:
        results[i] = result
        e = summaries[i] = summarise_episode(result)
        bar.write(f'{result.task} seed {result.seed}: success={e["success"]} steps={e["steps"]} '
                  f'closest={_cm(e["closest_m"])} routing: '
                  + (' '.join(f'{k}={v:.2f}' for k, v in e['mean_routing'].items()) or '-')
                  + f' (held {_pct(e["held_share"])} of the ticks)')
        bar.set_postfix(success=f'{np.mean([r.success for r in results.values()]):.0%}')
    order = range(len(jobs))
    episodes = [summaries[i] for i in order]
    return {'latency': latency_report(loop.config, [results[i] for i in order]),
            **report(episodes, tasks),
            'episodes': episodes}


def open_loop(args: argparse.Namespace, sim_cfg: SimConfig, executor_cfg: ExecutorNodeConfig,
              config: LoopConfig, inference: dict[str, Any] | None, stack: ExitStack
              ) -> tuple[ClosedLoop, Any]:
    """The simulated robot (closed with ``stack``), the policy with the graph's inference
    settings, and the closed loop around them: (loop, policy). Workers build theirs alike."""
    robot = stack.enter_context(SimRobot(sim_cfg, render=args.checkpoint != EXPERT))
    policy = load_policy(args.checkpoint, robot, args.device, args.policy_seed)
    if args.noise_scale is not None and args.checkpoint != EXPERT:
        policy.set_noise_scale(args.noise_scale)
    if args.checkpoint != EXPERT:
        inference = inference or {}
        try:  # e.g. a sparse threshold for a checkpoint without the camera MoE
            policy.set_inference(inference.get('num_steps', 0),
                                 inference.get('sparse_routing_threshold', 0.0),
                                 bool(inference.get('torch_compile', False)),
                                 1.0 / (args.replan * robot.config.control_period_s))
        except ValueError as exc:
            raise SystemExit(f'sim-eval: policy_node settings: {exc}') from None
    rtc = from_flat(RtcConfig, {k: v for k, v in (inference or {}).items()
                                if k.startswith('rtc')})
    if rtc.rtc and args.checkpoint == EXPERT:
        raise SystemExit('sim-eval: policy_node.rtc needs a learned policy, not the expert')
    return ClosedLoop(robot, policy, executor_cfg, config, rtc=rtc), policy


def evaluate(args: argparse.Namespace, tasks: list[str], sim_cfg: SimConfig,
             executor_cfg: ExecutorNodeConfig, configs: list[LoopConfig],
             inference: dict[str, Any] | None = None
             ) -> tuple[list[dict[str, Any]], float | None]:
    """Load the policy and run every loop config; (the runs' reports, the noise scale)."""
    with ExitStack() as stack:
        loop, policy = open_loop(args, sim_cfg, executor_cfg, configs[0], inference, stack)
        if any(c.measured for c in configs):  # the first inference is slow (lazy init)
            policy.infer(loop.observe(loop.robot.task.prompt))
        pool = None
        if args.jobs > 1:
            pool = EpisodePool(args, sim_cfg, executor_cfg, configs[0], inference)
            stack.callback(pool.close)
        print(f'sim-eval: {args.checkpoint}: {len(tasks)} task(s) x {args.episodes} episodes, '
              f'max {args.max_steps} steps of {sim_cfg.control_period_s:g} s, replan every '
              f'{args.replan}, executor {executor_cfg.mode} from {args.graph}, layout '
              f'{sim_cfg.layout}, policy {inference or "as saved"}, latency '
              + ', '.join(c.describe() for c in configs)
              + (f', {args.jobs} worker processes' if pool else ''), flush=True)
        runs = []
        for config in configs:
            loop.config = config
            runs.append(run_episodes(loop, tasks, args, pool))
            print(format_latency(runs[-1]['latency']), flush=True)
    noise = None if args.checkpoint == EXPERT else policy.model_config.noise_scale
    return runs, noise


def main(args: argparse.Namespace) -> int:
    tasks = [t for t in args.tasks.split(',') if t]
    unknown = [t for t in tasks if t not in TASKS]
    if not tasks or unknown:
        print(f'sim-eval: unknown task(s) {unknown or args.tasks!r}; registered: {sorted(TASKS)}')
        return 2
    if args.episodes < 1:
        print(f'sim-eval: --episodes must be >= 1, got {args.episodes}')
        return 2
    try:
        graph = graph_configs(args.graph, args.set)
        sim_cfg, executor_cfg = graph.sim, graph.executor
        configs = loop_configs(args)
        check_jobs(args, configs)
        if args.layout is not None:
            sim_cfg = dataclasses.replace(sim_cfg, layout=args.layout)
    except ValueError as exc:
        print(f'sim-eval: {exc}')
        return 2
    if args.num_threads > 0:
        import torch

        torch.set_num_threads(args.num_threads)
    started = time.monotonic()
    runs, noise_scale = evaluate(args, tasks, sim_cfg, executor_cfg, configs, graph.inference)
    result = {
        'checkpoint': args.checkpoint, 'tasks': tasks, 'episodes_per_task': args.episodes,
        'seed': args.seed, 'graph': args.graph, 'layout': sim_cfg.layout,
        'noise_scale': noise_scale, 'policy_inference': graph.inference,
        'executor': dataclasses.asdict(executor_cfg), 'sets': list(args.set),
        'loop': {'replan_steps': args.replan, 'max_steps': args.max_steps,
                 'executor_mode': executor_cfg.mode, 'control_period_s': sim_cfg.control_period_s},
        'wall_s': round(time.monotonic() - started, 2),
        **({'sweep': runs} if args.latency_sweep is not None else runs[0]),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    if args.latency_sweep is not None:
        print('success against latency:\n' + format_sweep(runs, tasks))
    else:
        print_summary(runs[0])
    print(f'sim-eval: wrote {out} ({result["wall_s"]:.0f} s)')
    return 0


def print_summary(run: dict[str, Any]) -> None:
    """The family table, the latency line and the goals of one run."""
    print(format_table(run))
    print(format_latency(run['latency']))
    overall = run['overall']
    verdict = {True: 'met', False: 'NOT met', None: 'n/a (no router)'}
    print(f'goals: success >= {GOALS["success_rate"]:.0%}: '
          f'{verdict[overall["meets_success_goal"]]}; routing accuracy >= '
          f'{GOALS["routing_accuracy"]:.0%}: {verdict[overall["meets_routing_goal"]]} '
          f'(at latency {run["latency"]["description"]})')
