"""convert bags into a LeRobot v3.0 dataset with camera labels and quantile stats.

Each bag (one episode; MCAP or sqlite3; ours or `ros2 bag record`'s) becomes one episode of a
dataset that LeRobot 0.4.x-0.6.x loads as it is (layout: pi05_moe_training.dataset.layout):
  data/chunk-000/file-000.parquet        observation.state, action, timestamp, frame_index,
                                         episode_index, index, task_index,
                                         annotation.camera.<expert>_active (0/1), several
                                         episodes a file
  videos/observation.images.<cam>/chunk-000/file-000.mp4
                                         colour: AV1 as LeRobot writes it; 16-bit thermal
                                         (centi-K) and depth (mm): lossless, split into the R and
                                         G bytes of a lossless H.264 video (info.json says how)
  meta/info.json, episodes/chunk-000/file-000.parquet, tasks.parquet, stats.json (incl. image
  stats), modality.json, conversion.json (what was skipped and why)
Streams are aligned as-of by header stamp onto the control-rate grid; action[t] is the newest
command issued before t + 1/fps. Corrupt or truncated bags and episodes missing a required topic
are skipped with the reason (and listed in meta/conversion.json); nothing is padded. A bag left
without metadata.yaml (a killed recording) is salvaged up to its cut, and the report says how
much was kept. Camera labels come from prompt keywords, arm motion (bimanual), or a balanced
fallback.

The dataset is written into a temporary directory next to ``--out`` and moved into place only
when at least one episode converted, so ``--overwrite`` never loses the old dataset to a failed
or empty conversion. A full disk or a read-only output ends the conversion with one line naming
the file and the cause (:class:`ConvertError`).

Examples:
  pi05-moe convert bags/ --out datasets/hot_cube
  pi05-moe convert robot_bags/*/ --out ds --fps 30 --action-topic /arm_controller/joint_trajectory
  pi05-moe convert bags/ --out ds --config convert.yaml   # any field, e.g. labels.keywords.thermal
"""

from __future__ import annotations

import argparse
import errno
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pi05_moe_policy import topics
from pi05_moe_policy.params import check, from_flat, param
from pi05_moe_training.bags.reader import BagError, find_bags
from pi05_moe_training.dataset import layout
from pi05_moe_training.dataset.extract import EpisodeError, ExtractConfig, read_episode
from pi05_moe_training.dataset.labels import LabelConfig
from pi05_moe_training.dataset.writer import ConvertReport, DatasetWriter

__all__ = ['ConvertConfig', 'ConvertError', 'ConvertReport', 'convert', 'main']


@dataclass
class ConvertConfig:
    """Everything ``pi05-moe convert`` can be told (``--config`` YAML mirrors it)."""

    extract: ExtractConfig = param(ExtractConfig(), 'how a bag becomes an episode')
    labels: LabelConfig = param(LabelConfig(), 'camera-label heuristics')
    robot_type: str = param('', "info.json robot_type when the bags' metadata names none")
    only_success: bool = param(False, 'skip episodes whose metadata does not say success=true')
    data_files_size_in_mb: float = param(float(layout.DATA_FILES_SIZE_IN_MB),
                                         'a data parquet file takes episodes up to this size')
    video_files_size_in_mb: float = param(float(layout.VIDEO_FILES_SIZE_IN_MB),
                                          'a video file takes episodes up to this size')

    def __post_init__(self):
        check(self.data_files_size_in_mb > 0, self, 'data_files_size_in_mb', '> 0')
        check(self.video_files_size_in_mb > 0, self, 'video_files_size_in_mb', '> 0')


class ConvertError(Exception):
    """The dataset could not be written (full disk, read-only output); the text names the file
    and the cause."""


def describe_os_error(exc: OSError, fallback: Path) -> str:
    """``'<file>: <cause>'`` for an OSError, with a hint for the common causes."""
    where = exc.filename or fallback
    cause = exc.strerror or str(exc) or type(exc).__name__
    hint = {errno.ENOSPC: ' (the disk is full: free space or choose another --out)',
            errno.EROFS: ' (the output is on a read-only file system: choose another --out)',
            errno.EACCES: ' (no permission to write there: choose another --out)'}
    return f'{where}: {cause}{hint.get(exc.errno, "")}'


def convert(bags: list[Path], out: str | Path, cfg: ConvertConfig | None = None, *,
            overwrite: bool = False, progress: bool = True) -> ConvertReport:
    """Convert ``bags`` into a dataset at ``out``; see the module docstring.

    ``out`` must be absent or empty unless ``overwrite`` (then it is replaced, but only once at
    least one episode converted). Bad bags and episodes are skipped and listed in the report with
    their reason. Raises :class:`ConvertError` when the dataset cannot be written.
    """
    cfg = cfg or ConvertConfig()
    out = Path(out)
    exists = out.exists() and any(out.iterdir())
    if exists and not overwrite:
        raise FileExistsError(f'{out} exists and is not empty (use --overwrite to replace)')
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f'.{out.name}.converting-', dir=out.parent))
    except OSError as exc:
        raise ConvertError(f'cannot create the dataset: {describe_os_error(exc, out)}') from None
    try:
        report = _convert_into(tmp, bags, cfg, progress)
        report.out = out
        report.replaced = bool(report.episodes) or not exists
        if report.replaced:
            _swap_in(tmp, out)
    except OSError as exc:
        raise ConvertError(f'writing the dataset failed, {out} is unchanged: '
                           f'{describe_os_error(exc, tmp)}') from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return report


def _swap_in(tmp: Path, out: Path) -> None:
    """Replace ``out`` (absent, empty or an old dataset) by the finished ``tmp``."""
    old = None
    if out.exists():
        old = out.with_name(f'.{out.name}.old-{os.getpid()}')
        shutil.rmtree(old, ignore_errors=True)
        os.replace(out, old)
    try:
        os.replace(tmp, out)
    except OSError:
        if old is not None:
            os.replace(old, out)  # put the old dataset back
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _convert_into(tmp: Path, bags: list[Path], cfg: ConvertConfig,
                  progress: bool) -> ConvertReport:
    from pi05_moe_training.progress import progress as tqdm

    writer = DatasetWriter(tmp, cfg)
    bar = tqdm(bags, desc='convert', unit='bag', disable=not progress)
    for bag in bar:
        try:
            ep = read_episode(bag, cfg.extract)
            if cfg.only_success and ep.meta.success is not True:
                raise EpisodeError(f'{bag}: success={ep.meta.success} (--only-success)')
            writer.add(ep)
            if ep.salvaged:
                bar.write(f'{bag}: {ep.salvaged}', file=sys.stderr)
        except (BagError, EpisodeError) as exc:
            writer.report.skipped.append({'bag': str(bag), 'reason': str(exc)})
            bar.write(f'skipped: {exc}', file=sys.stderr)
        bar.set_postfix(episodes=len(writer.report.episodes),
                        skipped=len(writer.report.skipped))
    return writer.finish()


def _flatten(data: dict, prefix: str = '') -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f'{prefix}{key}'
        if isinstance(value, dict):
            out.update(_flatten(value, name + '.'))
        else:
            out[name] = value
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('bags', nargs='+', help='bag directories/files, or directories of bags')
    parser.add_argument('--out', required=True, help='dataset directory to create')
    parser.add_argument('--overwrite', action='store_true', help='replace an existing --out')
    parser.add_argument('--config', help='YAML with ConvertConfig fields (nested or dotted)')
    parser.add_argument('--fps', type=float, help='control rate of the dataset (default 50)')
    parser.add_argument('--state-topic',
                        help=f'JointState topic (default {topics.JOINT_STATES})')
    parser.add_argument('--action-topic', action='append', dest='action_topics',
                        help='command topic, repeatable, first present wins (default: '
                             f'{topics.COMMANDS}, {topics.JOINT_TRAJECTORY}, '
                             f'{topics.COMMAND_PREVIEW})')
    parser.add_argument('--only-success', action='store_true',
                        help='skip episodes not marked success=true')
    parser.add_argument('--no-progress', action='store_true', help='no progress bar')


def config_from_args(args: argparse.Namespace) -> ConvertConfig:
    """ConvertConfig from --config YAML, then the explicit flags (ValueError on bad values)."""
    import yaml

    flat: dict[str, Any] = {}
    if args.config:
        data = yaml.safe_load(Path(args.config).read_text()) or {}
        if not isinstance(data, dict):
            raise ValueError(f'{args.config}: expected a mapping of ConvertConfig fields')
        flat.update(_flatten(data))
    for name, value in (('extract.fps', args.fps), ('extract.state_topic', args.state_topic),
                        ('extract.action_topics', args.action_topics)):
        if value is not None:
            flat[name] = value
    if args.only_success:
        flat['only_success'] = True
    return from_flat(ConvertConfig, flat)


def main(args: argparse.Namespace) -> int:
    try:
        cfg = config_from_args(args)
        bags = find_bags(args.bags)
    except (ValueError, FileNotFoundError) as exc:
        print(f'pi05-moe convert: {exc}', file=sys.stderr)
        return 2
    if not bags:
        print(f'pi05-moe convert: no bags found in {args.bags}', file=sys.stderr)
        return 2
    try:
        report = convert(bags, args.out, cfg, overwrite=args.overwrite,
                         progress=not args.no_progress)
    except (FileExistsError, ConvertError) as exc:
        print(f'pi05-moe convert: {exc}', file=sys.stderr)
        return 2
    print(f'{report.out}: {len(report.episodes)} episodes, {report.total_frames} frames '
          f'from {len(bags)} bags; {len(report.skipped)} skipped')
    for item in report.episodes:
        if item['salvaged']:
            print(f'  salvaged {item["bag"]}: {item["salvaged"]}')
    for item in report.skipped:
        print(f'  skipped {item["bag"]}: {item["reason"]}')
    if not report.replaced:
        print(f'  nothing converted: {report.out} was left as it was')
    return 0 if report.episodes else 1
