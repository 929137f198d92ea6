"""open-loop evaluation of a checkpoint on bags or a dataset: action error, routing, latency.

For each evaluated frame the policy runs on the recorded observation (images, state, prompt)
and its action chunk is compared with the recorded future actions of that frame.

Input: one dataset directory from `pi05-moe convert`, or bags (files, directories, directories
of bags). Bags are converted with the converter (`--convert-config` takes its YAML) at the
checkpoint's control rate into a temporary dataset, or into --convert-out to keep it.
--checkpoint takes what the nodes take (a `Policy.load` directory, shipped:<name>, preset:<name>)
and a `pi05-moe train` output (its `latest`).

Writes into --out:
  metrics.json     setup, action_error (per joint MAE at horizons 1 and 10 and over the whole
                   chunk, in robot units and normalised with the checkpoint's stats), routing
                   (accuracy against the camera labels, confusion, per-expert recall/precision,
                   mean weights), latency_ms (p50/p90/p99/max of Policy.infer, stage means);
                   every key is explained in its "definitions"
  actions.png      predicted (horizon 1) vs recorded action, one subplot per joint
  routing.png      routing weights over the frames, the labelled camera shaded
  latency.png      histogram of the infer wall times
  report.md        a short summary that links the above
  predictions.npz  per-frame predicted and recorded chunks, weights, labels, timings

Noise: the flow's initial noise of a frame is drawn from a generator seeded with
(--seed, episode, frame), so repeated runs, other checkpoints with the same action horizon, and any
--stride/--max-frames subset see the same noise at the same frame and are comparable.
Latency is measured after --warmup untimed calls; pass --num-threads to pin CPU threads.

examples:
  pi05-moe eval datasets/hot_cube --checkpoint runs/sim_small/latest --out eval/sim_small
  pi05-moe eval bags/ --checkpoint runs/sim_small --out eval/bags --stride 5 --device cuda
  pi05-moe eval datasets/hot_cube --checkpoint ckpt --out eval/fast --max-frames 200 \\
      --num-steps 5
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pi05_moe_policy.params import check, param
from pi05_moe_training.config_cli import add_config_arguments, config_from_args
from pi05_moe_training.dataset import layout
from pi05_moe_training.evaluate.metrics import (
    DEFINITIONS,
    EvalRecord,
    action_error_metrics,
    json_ready,
    latency_metrics,
    routing_metrics,
    select_frames,
)

PROG = 'pi05-moe eval'


@dataclass
class EvalConfig:
    """Everything `pi05-moe eval` can be told (positional inputs aside)."""

    checkpoint: str = param('', 'checkpoint directory (Policy.load), shipped:<name>, '
                                'preset:<name> (random weights), or a `pi05-moe train` output '
                                'directory (its latest checkpoint)')
    out: str = param('', 'output directory for metrics.json, the PNGs and report.md')
    device: str = param('cpu', "torch device: 'cpu', 'cuda' or 'cuda:<index>'")
    num_steps: int = param(0, 'Euler steps of the flow (0 = the checkpoint\'s num_steps)')
    max_frames: int = param(0, 'evaluate at most this many frames, spread evenly over the '
                               'data (0 = all)')
    stride: int = param(1, 'evaluate every stride-th frame of each episode')
    seed: int = param(0, 'noise seed: frame (episode, t) always gets the same initial noise')
    warmup: int = param(1, 'untimed Policy.infer calls before timing starts')
    num_threads: int = param(0, 'torch CPU threads (0 = torch\'s default)')
    convert_config: str = param('', 'bag inputs: YAML of ConvertConfig fields for the '
                                    'converter (its fps is set to the checkpoint\'s rate)')
    convert_out: str = param('', 'bag inputs: keep the converted dataset here (default: a '
                                 'temporary directory, deleted afterwards)')
    progress: bool = param(True, 'show a progress bar')

    def __post_init__(self) -> None:
        check(self.device == 'cpu' or self.device == 'cuda' or (
            self.device.startswith('cuda:') and self.device[5:].isdigit()), self, 'device',
            "'cpu', 'cuda' or 'cuda:<index>'")
        for name in ('num_steps', 'max_frames', 'seed', 'warmup', 'num_threads'):
            check(getattr(self, name) >= 0, self, name, 'an int >= 0')
        check(self.stride >= 1, self, 'stride', 'an int >= 1')

    def check_paths(self) -> None:
        check(bool(self.checkpoint), self, 'checkpoint', 'a checkpoint (--checkpoint DIR)')
        check(bool(self.out), self, 'out', 'an output directory (--out DIR)')


class EvalError(Exception):
    """A problem with the inputs, reported as one line and exit code 2."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('inputs', nargs='+', metavar='BAGS_OR_DATASET',
                        help='one dataset directory, or bags / directories of bags')
    add_config_arguments(parser, EvalConfig, required=('checkpoint', 'out'))


# ---------------------------------------------------------------------------- inputs
def resolve_checkpoint(spec: str) -> str:
    """Every checkpoint form the nodes accept (``pi05_moe_policy.checkpoints``: a directory,
    ``shipped:<name>``, ``preset:<name>``), or a training output whose ``latest`` is used."""
    from pi05_moe_policy.checkpoints import resolve_checkpoint as resolve_spec
    from pi05_moe_training.train.checkpointing import resolve_run_checkpoint

    try:
        spec = resolve_spec(spec)  # shipped:<name> -> its directory
        return spec if spec.startswith('preset:') else str(resolve_run_checkpoint(spec))
    except ValueError as exc:
        raise EvalError(str(exc)) from None


def check_device(device: str) -> None:
    import torch

    if device.startswith('cuda'):
        if not torch.cuda.is_available():
            raise EvalError(f'--device {device}: CUDA is not available (torch '
                            f'{torch.__version__}, CUDA build: {torch.version.cuda})')
        index = int(device[5:] or 0)
        if index >= torch.cuda.device_count():
            raise EvalError(f'--device {device}: only {torch.cuda.device_count()} CUDA '
                            'device(s)')


def is_dataset(path: Path) -> bool:
    return (path / layout.INFO).is_file()


def convert_bags(inputs: list[str], cfg: EvalConfig, fps: float, workdir: Path) -> Path:
    """Convert the bags among ``inputs`` with the converter, at ``fps``; returns the dataset."""
    from pi05_moe_training.bags.reader import find_bags
    from pi05_moe_training.dataset.convert import ConvertError, convert
    from pi05_moe_training.dataset.convert import config_from_args as convert_config

    try:
        bags = find_bags(inputs)
        convert_cfg = convert_config(argparse.Namespace(
            config=cfg.convert_config or None, fps=fps, state_topic=None, action_topics=None,
            only_success=False))
    except (ValueError, FileNotFoundError) as exc:
        raise EvalError(str(exc)) from exc
    if not bags:
        raise EvalError(f'no bags and no dataset in {inputs}')
    out = Path(cfg.convert_out) if cfg.convert_out else workdir / 'dataset'
    try:
        report = convert(bags, out, convert_cfg, progress=cfg.progress)
    except (FileExistsError, ConvertError) as exc:
        raise EvalError(f'--convert-out: {exc}') from exc
    if not report.episodes:
        reasons = '; '.join(f'{s["bag"]}: {s["reason"]}' for s in report.skipped)
        raise EvalError(f'no episode could be converted ({reasons})')
    for item in report.skipped:
        print(f'{PROG}: skipped {item["bag"]}: {item["reason"]}', file=sys.stderr)
    return out


def load_frames(root: Path, policy: Any) -> Any:
    """The dataset's frames with the policy's horizon and cameras, after checking that the
    dataset fits the policy (state/action sizes, control rate)."""
    from pi05_moe_training.train.torch_dataset import TrainDataset

    data = TrainDataset(root)
    data.bind(policy)
    return data.frames


# ---------------------------------------------------------------------------- the run
def frame_noise(seed: int, episode: int, frame: int, shape: tuple[int, int]) -> np.ndarray:
    """The initial flow noise of frame (episode, frame): (H, action_dim) float32."""
    return np.random.default_rng([seed, episode, frame]).standard_normal(shape).astype(
        np.float32)


def observation(item: dict[str, Any]) -> dict[str, Any]:
    return {'images': item['images'], 'state': item['state'], 'prompt': item['prompt']}


def routed_experts(policy: Any) -> list[str]:
    """The expert cameras the policy reports routing weights for ([] without the MoE)."""
    return list(policy.expert_cameras) if policy.model_config.use_camera_moe else []


def episode_lengths(frames: Any) -> list[int]:
    return [len(frames.episode_arrays(e)['state']) for e in range(frames.num_episodes)]


def run_policy(policy: Any, frames: Any, pairs: list[tuple[int, int]], cfg: EvalConfig
               ) -> EvalRecord:
    """Infer at every (episode, frame) of ``pairs`` and collect the results."""
    from pi05_moe_training.progress import progress as tqdm

    starts = np.cumsum([0, *episode_lengths(frames)])  # (episodes + 1,) first dataset index
    shape = (policy.action_horizon, policy.model_config.action_dim)
    experts = routed_experts(policy)
    num_steps = cfg.num_steps or None
    if pairs:  # warm-up: lazy initialisation and CUDA kernels stay out of the timings
        first = frames[int(starts[pairs[0][0]] + pairs[0][1])]
        for _ in range(cfg.warmup):
            policy.infer(observation(first), noise=frame_noise(cfg.seed, *pairs[0], shape),
                         num_steps=num_steps)
    rows: dict[str, list[Any]] = {k: [] for k in (
        'predicted', 'recorded', 'is_pad', 'weights', 'labels', 'episode', 'frame',
        'timestamp', 'latency_ms')}
    stages: dict[str, list[float]] = {}
    previous = None
    for episode, t in tqdm(pairs, desc='eval', unit='frame', disable=not cfg.progress):
        if episode != previous:  # a new episode: a policy with an image history (RT-1) forgets
            policy.reset()
            previous = episode
        item = frames[int(starts[episode] + t)]
        noise = frame_noise(cfg.seed, episode, t, shape)
        t0 = time.perf_counter()
        try:
            out = policy.infer(observation(item), noise=noise, num_steps=num_steps)
        except (ValueError, TypeError) as exc:  # the recorded observation does not fit
            raise EvalError(f'episode {episode} frame {t}: {exc}') from exc
        rows['latency_ms'].append((time.perf_counter() - t0) * 1e3)
        for stage, ms in out['timing'].items():
            stages.setdefault(stage, []).append(ms)
        rows['predicted'].append(out['actions'])
        rows['recorded'].append(item['actions'])
        rows['is_pad'].append(item['action_is_pad'])
        rows['weights'].append([out['routing'][e] for e in experts])
        rows['labels'].append([item['camera_active'].get(e, np.nan) for e in experts])
        rows['episode'].append(episode)
        rows['frame'].append(t)
        rows['timestamp'].append(item['timestamp'])
    n, h, a = len(pairs), policy.action_horizon, policy.robot_action_dim
    return EvalRecord(
        predicted=np.asarray(rows['predicted'], np.float32).reshape(n, h, a),
        recorded=np.asarray(rows['recorded'], np.float32).reshape(n, h, a),
        is_pad=np.asarray(rows['is_pad'], bool).reshape(n, h),
        weights=np.asarray(rows['weights'], np.float32).reshape(n, len(experts)),
        labels=np.asarray(rows['labels'], np.float32).reshape(n, len(experts)),
        episode=np.asarray(rows['episode'], np.int64),
        frame=np.asarray(rows['frame'], np.int64),
        timestamp=np.asarray(rows['timestamp'], np.float64),
        latency_ms=np.asarray(rows['latency_ms'], np.float64),
        stage_ms={k: np.asarray(v, np.float64) for k, v in stages.items()})


def joint_names(policy: Any, frames: Any) -> list[str]:
    """The checkpoint's joint names, else the dataset's action names, else joint_<i>."""
    names = list(policy.joint_names or frames.action_names or [])
    if len(names) != policy.robot_action_dim:
        names = [f'joint_{i}' for i in range(policy.robot_action_dim)]
    return names


def compute_metrics(record: EvalRecord, policy: Any, names: list[str],
                    setup: dict[str, Any]) -> dict[str, Any]:
    return {
        'definitions': DEFINITIONS,
        'setup': setup,
        'action_error': action_error_metrics(record, names, policy.norm_stats.actions.normalize),
        'routing': routing_metrics(record.weights, record.labels, routed_experts(policy)),
        'latency_ms': latency_metrics(record.latency_ms, record.stage_ms),
    }


def evaluate(inputs: list[str], cfg: EvalConfig) -> dict[str, Any]:
    """Run the evaluation and write every output into ``cfg.out``; returns the metrics."""
    import torch

    from pi05_moe_policy.checkpoints import load_policy
    from pi05_moe_training.evaluate.plots import plot_all
    from pi05_moe_training.evaluate.report import write_report

    check_device(cfg.device)
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    checkpoint = resolve_checkpoint(cfg.checkpoint)
    try:
        policy = load_policy(checkpoint, device=cfg.device)
    except ValueError as exc:
        raise EvalError(str(exc)) from exc
    paths = [Path(p) for p in inputs]
    with ExitStack() as stack:
        if len(paths) == 1 and is_dataset(paths[0]):
            root, converted = paths[0], False
        elif any(is_dataset(p) for p in paths):
            raise EvalError(f'give one dataset, or bags; got {inputs}')
        else:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(
                prefix='pi05_moe_eval_')))
            root = convert_bags(inputs, cfg, 1.0 / policy.control_period_s, workdir)
            converted = True
        if checkpoint.startswith('preset:'):  # random weights, sized for the data's joints
            from pi05_moe_training.dataset.episodes import EpisodeDataset

            policy = load_policy(checkpoint, device=cfg.device,
                                 joint_names=EpisodeDataset(root).action_names)
        try:
            frames = load_frames(root, policy)
        except (ValueError, FileNotFoundError) as exc:
            raise EvalError(str(exc)) from exc
        pairs = select_frames(episode_lengths(frames), cfg.stride, cfg.max_frames)
        if not pairs:
            raise EvalError(f'{root}: no frames to evaluate')
        record = run_policy(policy, frames, pairs, cfg)
        names = joint_names(policy, frames)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    setup = {
        'checkpoint': str(checkpoint), 'data': ', '.join(inputs),
        'converted_from_bags': converted,
        'dataset': None if converted and not cfg.convert_out else str(root),
        'frames': len(pairs),
        'episodes': len({e for e, _ in pairs}), 'stride': cfg.stride,
        'max_frames': cfg.max_frames, 'noise_seed': cfg.seed,
        'num_steps': cfg.num_steps or policy.model_config.num_steps, 'device': cfg.device,
        'warmup_calls': cfg.warmup, 'torch_threads': torch.get_num_threads(),
        'joint_names': names, 'experts': routed_experts(policy),
        'action_horizon': policy.action_horizon,
        'control_period_s': policy.control_period_s, 'config': asdict(cfg),
    }
    metrics = json_ready(compute_metrics(record, policy, names, setup))
    record.save(out / 'predictions.npz')
    (out / 'metrics.json').write_text(json.dumps(metrics, indent=2, allow_nan=False) + '\n')
    images = plot_all(out, record, names, metrics['routing']['experts'])
    write_report(out / 'report.md', metrics, images)
    return metrics


def summary(metrics: dict[str, Any]) -> str:
    """A few lines for the terminal: mean MAEs, routing accuracy, latency percentiles."""
    def maes(errors: dict[str, Any]) -> str:
        return ', '.join(f'{k} ' + ('n/a' if v['mean'] is None else f'{v["mean"]:.4g}')
                         for k, v in errors.items())

    err = metrics['action_error']
    lines = [f'{metrics["setup"]["frames"]} frames: MAE {maes(err["robot_units"])} (robot '
             f'units), {maes(err["normalized"])} (normalised)']
    routing = metrics['routing']
    if routing['available'] and routing['accuracy'] is not None:
        lines.append(f'routing accuracy {100 * routing["accuracy"]:.1f} % over '
                     f'{routing["frames"]["labelled"]} labelled frames')
    lat = metrics['latency_ms']
    lines.append(f'latency p50 {lat["p50"]:.1f} ms, p90 {lat["p90"]:.1f} ms, '
                 f'p99 {lat["p99"]:.1f} ms, max {lat["max"]:.1f} ms')
    return '\n'.join(lines)


def main(args: argparse.Namespace) -> int:
    try:
        try:
            cfg = config_from_args(EvalConfig, args)
            cfg.check_paths()
        except ValueError as exc:
            raise EvalError(str(exc)) from exc
        metrics = evaluate(args.inputs, cfg)
    except EvalError as exc:
        print(f'{PROG}: {exc}', file=sys.stderr)
        return 2
    print(summary(metrics))
    print(f'wrote {Path(cfg.out) / "report.md"}')
    return 0
