"""closed-loop evaluation of a checkpoint in the simulator: success rate and routing accuracy.

Runs the simulated robot and the policy in this process (no ROS, no DDS): for each task (prompt
family) N episodes, each randomised by its own seed, with the policy's chunks executed through
the executor's ensembler and safety filter, configured like ``executor_node`` in the bringup
config (default: sim.yaml). See ``pi05_moe_bringup.sim_tools.closed_loop`` for the timing model: by
default inference takes no simulated time (``--latency-s`` / ``--measure-latency`` change that).

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
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

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
from pi05_moe_policy import checkpoints
from pi05_moe_policy.checkpoints import shipped_checkpoint
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
    parser.add_argument('--max-steps', type=int, default=LoopConfig.max_steps,
                        help=f'control steps before an episode fails ({LoopConfig.max_steps})')
    parser.add_argument('--replan', type=int, default=LoopConfig.replan_steps,
                        help='control steps between inferences '
                        f'({LoopConfig.replan_steps})')
    parser.add_argument('--latency-s', type=float, default=0.0,
                        help='simulated time from an observation to its chunk (default 0)')
    parser.add_argument('--measure-latency', action='store_true',
                        help='add each inference\'s wall-clock time to --latency-s')
    parser.add_argument('--graph', default='sim',
                        help='bringup config whose sim_node and executor_node parameters are '
                        'used (default: the installed sim.yaml)')
    parser.add_argument('--layout', default=None,
                        help="scene layout ('wide' or 'slots'; default: the graph's sim_node)")
    parser.add_argument('--device', default='cpu', help='torch device (cpu, cuda, ...)')
    parser.add_argument('--num-threads', type=int, default=0,
                        help='torch CPU threads; 0 = torch\'s default')
    parser.add_argument('--policy-seed', type=int, default=0,
                        help='seed of the policy\'s noise (and of preset:<name> weights)')
    parser.add_argument('--noise-scale', type=float, default=None,
                        help='sampling temperature (initial noise scale; 0 = deterministic); '
                        'default: the checkpoint\'s noise_scale')
    parser.add_argument('--out', default='sim_eval.json', help='JSON report (sim_eval.json)')
    parser.add_argument('--no-progress', action='store_true', help='no progress bar')


def graph_configs(graph: str) -> tuple[SimConfig, ExecutorNodeConfig]:
    """The sim_node and executor_node configs of a bringup config (a path or an installed name)."""
    path = Path(graph) if Path(graph).is_file() else share_config(graph)
    spec = load_graph(path)
    return (from_flat(SimConfig, spec.node('sim_node').params),
            from_flat(ExecutorNodeConfig, spec.node('executor_node').params))


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
        'arm_travel_rad': round(result.arm_travel_rad, 4),
        'closest_m': None if result.closest_m is None else round(result.closest_m, 4),
        'safety': result.safety,
    }


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
        # how close failures came: the pinch point's closest approach to the target cube
        'median_closest_m': (float(np.median(closest)) if closest else None),
    }
    if label is not None:  # one family: which expert the router prefers on average
        out['labelled_expert'] = label
        out['prefers'] = argmax(mean) if mean else None
        out['prefers_labelled'] = out['prefers'] == label if mean else None
    return out


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
    rows = [('family', 'episodes', 'success', 'closest (median)', 'routing acc inf/ep',
             'mean routing', 'prefers')]
    for name, fam in [*summary['families'].items(), ('overall', summary['overall'])]:
        weights = ' '.join(f'{k}={v:.2f}' for k, v in fam['mean_routing'].items()) or '-'
        prefers = (f'{fam["prefers"]} (label {fam["labelled_expert"]})'
                   if fam.get('prefers') else '-')
        rows.append((name, str(fam['episodes']),
                     f'{_pct(fam["success_rate"])} ({fam["successes"]})',
                     _cm(fam['median_closest_m']),
                     f'{_pct(fam["routing_accuracy_inference"])} / '
                     f'{_pct(fam["routing_accuracy_episode"])}', weights, prefers))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return '\n'.join('  '.join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


# ---------------------------------------------------------------------------- the command

def main(args: argparse.Namespace) -> int:
    tasks = [t for t in args.tasks.split(',') if t]
    unknown = [t for t in tasks if t not in TASKS]
    if not tasks or unknown:
        print(f'sim-eval: unknown task(s) {unknown or args.tasks!r}; registered: {sorted(TASKS)}')
        return 2
    if args.episodes < 1:
        print(f'sim-eval: --episodes must be >= 1, got {args.episodes}')
        return 2
    if args.num_threads > 0:
        import torch

        torch.set_num_threads(args.num_threads)
    sim_cfg, executor_cfg = graph_configs(args.graph)
    if args.layout is not None:
        try:
            sim_cfg = dataclasses.replace(sim_cfg, layout=args.layout)
        except ValueError as exc:
            print(f'sim-eval: {exc}')
            return 2
    loop_cfg = LoopConfig(replan_steps=args.replan, max_steps=args.max_steps,
                          latency_s=args.latency_s, measure_latency=args.measure_latency)
    from pi05_moe_training.progress import progress as tqdm

    started = time.monotonic()
    with SimRobot(sim_cfg, render=args.checkpoint != EXPERT) as robot:
        policy = load_policy(args.checkpoint, robot, args.device, args.policy_seed)
        if args.noise_scale is not None and args.checkpoint != EXPERT:
            policy.set_noise_scale(args.noise_scale)
        loop = ClosedLoop(robot, policy, executor_cfg, loop_cfg)
        if args.measure_latency:  # the first inference is slow (lazy init): keep it out
            policy.infer(loop.observe(robot.task.prompt))
        print(f'sim-eval: {args.checkpoint}: {len(tasks)} task(s) x {args.episodes} episodes, '
              f'max {args.max_steps} steps of {robot.config.control_period_s:g} s, replan every '
              f'{args.replan}, executor {executor_cfg.mode} from {args.graph}, layout '
              f'{sim_cfg.layout}')
        episodes = []
        jobs = [(t, args.seed + k) for t in tasks for k in range(args.episodes)]
        bar = tqdm(jobs, desc='sim-eval', unit='ep', disable=args.no_progress)
        for task, seed in bar:
            episodes.append(summarise_episode(loop.run_episode(task, seed)))
            e = episodes[-1]
            bar.write(f'{task} seed {seed}: success={e["success"]} steps={e["steps"]} closest='
                      f'{_cm(e["closest_m"])} routing: '
                      + (' '.join(f'{k}={v:.2f}' for k, v in e['mean_routing'].items()) or '-'))
            bar.set_postfix(success=f'{np.mean([x["success"] for x in episodes]):.0%}')
    summary = report(episodes, tasks)
    result = {
        'checkpoint': args.checkpoint, 'tasks': tasks, 'episodes_per_task': args.episodes,
        'seed': args.seed, 'graph': args.graph, 'layout': sim_cfg.layout,
        'noise_scale': None if args.checkpoint == EXPERT else policy.model_config.noise_scale,
        'loop': {'replan_steps': args.replan, 'max_steps': args.max_steps,
                 'latency_s': args.latency_s, 'measure_latency': args.measure_latency,
                 'executor_mode': executor_cfg.mode, 'control_period_s': sim_cfg.control_period_s},
        'wall_s': round(time.monotonic() - started, 2),
        **summary, 'episodes': episodes,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(format_table(summary))
    overall = summary['overall']
    verdict = {True: 'met', False: 'NOT met', None: 'n/a (no router)'}
    print(f'goals: success >= {GOALS["success_rate"]:.0%}: '
          f'{verdict[overall["meets_success_goal"]]}; routing accuracy >= '
          f'{GOALS["routing_accuracy"]:.0%}: {verdict[overall["meets_routing_goal"]]}')
    print(f'sim-eval: wrote {out} ({result["wall_s"]:.0f} s)')
    return 0
