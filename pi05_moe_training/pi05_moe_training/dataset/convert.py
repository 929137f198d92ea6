"""convert bags into a LeRobot-style dataset with camera labels and quantile stats.

Each bag (one episode; MCAP or sqlite3; ours or `ros2 bag record`'s) becomes one episode:
  data/chunk-000/episode_000000.parquet   observation.state, action, timestamp, frame_index,
                                          episode_index, index, task_index,
                                          observation.images.<cam> (PNG path),
                                          annotation.camera.<expert>_active (0/1)
  images/observation.images.<cam>/...     lossless PNG (16-bit for thermal and depth)
  meta/info.json, episodes.jsonl, tasks.jsonl, stats.json (mean/std/min/max/q01/q99),
  modality.json, conversion.json (what was skipped and why)
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pi05_moe_policy import topics
from pi05_moe_policy.core.image_codec import to_rgb8
from pi05_moe_policy.params import check, from_flat, param
from pi05_moe_training.bags.reader import BagError, find_bags
from pi05_moe_training.dataset import layout
from pi05_moe_training.dataset.extract import (
    Episode,
    EpisodeError,
    ExtractConfig,
    iter_images,
    read_episode,
)
from pi05_moe_training.dataset.labels import (
    EpisodeLabels,
    LabelConfig,
    episode_labels,
    label_column,
)
from pi05_moe_training.dataset.stats import compute_stats, write_stats

COLOUR = ('rgb8', 'bgr8', 'rgba8', 'bgra8', '8UC3')
SIXTEEN_BIT_UNITS = {'mono16': 'centi-Kelvin (deg C = (v - 27315) / 100)', '16UC1': 'mm'}


@dataclass
class ConvertConfig:
    """Everything ``pi05-moe convert`` can be told (``--config`` YAML mirrors it)."""

    extract: ExtractConfig = param(ExtractConfig(), 'how a bag becomes an episode')
    labels: LabelConfig = param(LabelConfig(), 'camera-label heuristics')
    robot_type: str = param('', "info.json robot_type when the bags' metadata names none")
    only_success: bool = param(False, 'skip episodes whose metadata does not say success=true')
    png_compression: int = param(1, 'PNG compression level 0-9 (lossless at every level)')

    def __post_init__(self):
        check(0 <= self.png_compression <= 9, self, 'png_compression', 'in [0, 9]')


@dataclass
class ConvertReport:
    """The outcome of a conversion."""

    out: Path
    episodes: list[dict] = field(default_factory=list)  # episodes.jsonl rows
    skipped: list[dict] = field(default_factory=list)  # {'bag', 'reason'}
    total_frames: int = 0
    replaced: bool = True  # False: nothing converted, an existing --out was left as it was


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


def stored_encoding(encoding: str) -> str:
    """How a camera's frames are stored: colour -> rgb8, 8-bit mono -> mono8, 16-bit as is."""
    if encoding in COLOUR:
        return 'rgb8'
    if encoding in ('mono8', '8UC1'):
        return 'mono8'
    if encoding in SIXTEEN_BIT_UNITS:
        return encoding
    raise EpisodeError(f'image encoding {encoding!r} cannot be stored losslessly as PNG '
                       f'(supported: {COLOUR}, mono8, {tuple(SIXTEEN_BIT_UNITS)})')


def write_png(path: Path, image: np.ndarray, encoding: str, compression: int) -> None:
    """Write one frame losslessly: RGB colour, 8-bit or 16-bit grey."""
    import cv2

    if stored_encoding(encoding) == 'rgb8':
        image = to_rgb8(image, encoding)[..., ::-1]  # (H, W, 3) BGR for OpenCV
    ok, png = cv2.imencode('.png', np.ascontiguousarray(image),
                           [cv2.IMWRITE_PNG_COMPRESSION, compression])
    if not ok:
        raise EpisodeError(f'{path}: OpenCV cannot encode a {image.dtype} {image.shape} PNG')
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png.tobytes())  # Python's own write: a full disk raises ENOSPC here


class DatasetWriter:
    """Accumulates episodes into a dataset directory; :meth:`finish` writes the meta files."""

    def __init__(self, out: Path, cfg: ConvertConfig):
        self.out = out
        self.cfg = cfg
        self.report = ConvertReport(out)
        self.tasks: dict[str, int] = {}
        self.schema: dict[str, Any] | None = None  # fixed by the first episode
        self.features: dict[str, Any] = {}
        self._states: list[np.ndarray] = []
        self._actions: list[np.ndarray] = []

    def _schema_of(self, ep: Episode) -> dict[str, Any]:
        return {
            'state_names': ep.state_names, 'action_dim': int(ep.action.shape[1]),
            'base': ep.meta.base_camera, 'experts': list(ep.meta.expert_cameras),
            'cameras': sorted(c for c, r in ep.images.items() if r.required),
        }

    def check_schema(self, ep: Episode) -> None:
        """Every episode must match the first one's joints, action size and camera roles."""
        schema = self._schema_of(ep)
        if self.schema is None:
            return
        diff = {k: (v, schema[k]) for k, v in self.schema.items() if schema[k] != v}
        if diff:
            raise EpisodeError(f'{ep.bag}: differs from the dataset (dataset, episode): {diff}')

    def add(self, ep: Episode) -> dict:
        """Write one episode's images and parquet file; returns its episodes.jsonl row."""
        self.check_schema(ep)
        index = len(self.report.episodes)
        labels = episode_labels(ep.prompt, ep.action, list(ep.meta.expert_cameras), index,
                                self.cfg.labels)
        task_index = self.tasks.get(ep.prompt, len(self.tasks))
        try:
            paths = self._write_images(ep, index)
            self._write_parquet(ep, index, task_index, paths, labels)
        except BaseException:  # leave no trace of a half-written episode
            for camera in ep.images:
                shutil.rmtree(self.out / Path(layout.image_file(camera, index, 0)).parent,
                              ignore_errors=True)
            (self.out / layout.data_file(index)).unlink(missing_ok=True)
            raise
        self.tasks[ep.prompt] = task_index
        if self.schema is None:
            self.schema = self._schema_of(ep)
            self.features = self._features(ep)
        self._states.append(ep.state)
        self._actions.append(ep.action)
        row = {
            'episode_index': index, 'tasks': [ep.prompt], 'length': ep.length,
            'task': ep.meta.task, 'success': ep.meta.success, 'robot': ep.meta.robot,
            'operator': ep.meta.operator, 'bag': str(ep.bag), 'meta_source': ep.meta_source,
            'action_topic': ep.action_topic,
            'labels': {'active': {e: int(v) for e, v in labels.active.items()},
                       'source': labels.source, 'detail': labels.detail},
            'stale_frames': ep.stale,
            'salvaged': ep.salvaged,
        }
        self.report.episodes.append(row)
        self.report.total_frames += ep.length
        return row

    def _write_images(self, ep: Episode, index: int) -> dict[str, np.ndarray]:
        """Write the referenced frames; return camera -> (T,) relative paths ('' = none)."""
        for refs in ep.images.values():
            stored_encoding(refs.encoding)  # fail before writing anything
        for camera, source, image, encoding in iter_images(ep):
            write_png(self.out / layout.image_file(camera, index, source), image, encoding,
                      self.cfg.png_compression)
        paths = {}
        for camera, refs in ep.images.items():
            files = np.array([layout.image_file(camera, index, s) if s >= 0 else ''
                              for s in refs.source_index.tolist()], dtype=object)
            paths[camera] = files
        return paths

    def _write_parquet(self, ep: Episode, index: int, task_index: int,
                       paths: dict[str, np.ndarray], labels: EpisodeLabels) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        T = ep.length
        first = self.report.total_frames

        def vectors(values: np.ndarray) -> pa.Array:  # (T, D) -> fixed-size list column
            return pa.FixedSizeListArray.from_arrays(
                pa.array(values.astype(np.float32).ravel()), values.shape[1])

        columns = {
            layout.STATE: vectors(ep.state),
            layout.ACTION: vectors(ep.action),
            'timestamp': pa.array((ep.time_s - ep.time_s[0]).astype(np.float32)),
            'frame_index': pa.array(np.arange(T, dtype=np.int64)),
            'episode_index': pa.array(np.full(T, index, dtype=np.int64)),
            'index': pa.array(np.arange(first, first + T, dtype=np.int64)),
            'task_index': pa.array(np.full(T, task_index, dtype=np.int64)),
        }
        for camera in sorted(paths):
            columns[layout.image_key(camera)] = pa.array(paths[camera].tolist(), pa.string())
        for name, values in labels.columns(T).items():
            columns[name] = pa.array(values)
        path = self.out / layout.data_file(index)
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.table(columns), path)

    def _features(self, ep: Episode) -> dict[str, Any]:
        scalar = {'shape': [1], 'names': None}
        features: dict[str, Any] = {
            layout.STATE: {'dtype': 'float32', 'shape': [len(ep.state_names)],
                           'names': ep.state_names},
            layout.ACTION: {'dtype': 'float32', 'shape': [ep.action.shape[1]],
                            'names': ep.action_names,
                            'info': {'topic': ep.action_topic,
                                     'convention': 'newest command issued before '
                                                   'timestamp + 1/fps'}},
        }
        for camera, refs in sorted(ep.images.items()):
            stored = stored_encoding(refs.encoding)
            channels = 3 if stored == 'rgb8' else 1
            role = ('base' if camera == ep.meta.base_camera else
                    'expert' if camera in ep.meta.expert_cameras else 'extra')
            info = {'file': 'png', 'encoding': stored, 'bit_depth': 16 if '16' in stored else 8,
                    'topic': refs.topic, 'role': role, 'required': refs.required}
            if stored in SIXTEEN_BIT_UNITS:
                info['unit'] = SIXTEEN_BIT_UNITS[stored]
            features[layout.image_key(camera)] = {
                'dtype': 'image', 'shape': [*refs.shape[:2], channels],
                'names': ['height', 'width', 'channel'], 'info': info}
        features['timestamp'] = {'dtype': 'float32', **scalar}
        for name in ('frame_index', 'episode_index', 'index', 'task_index'):
            features[name] = {'dtype': 'int64', **scalar}
        for expert in ep.meta.expert_cameras:
            features[label_column(expert)] = {
                'dtype': 'int64', **scalar,
                'info': {'values': {'0': 'inactive', '1': 'active'}, 'camera': expert}}
        return features

    def finish(self) -> ConvertReport:
        """Write meta/: info, episodes, tasks, stats, modality, conversion report."""
        out, report = self.out, self.report
        layout.write_json(out / layout.CONVERSION, {
            'converted': [{'episode_index': e['episode_index'], 'bag': e['bag']}
                          for e in report.episodes],
            'skipped': report.skipped})
        if not report.episodes:
            return report
        first = report.episodes[0]
        n = len(report.episodes)
        schema = self.schema
        robot = next((e['robot'] for e in report.episodes if e['robot']), self.cfg.robot_type)
        layout.write_json(out / layout.INFO, {
            'codebase_version': layout.CODEBASE_VERSION,
            'robot_type': robot,
            'total_episodes': n,
            'total_frames': report.total_frames,
            'total_tasks': len(self.tasks),
            'total_videos': 0,
            'total_chunks': (n - 1) // layout.CHUNKS_SIZE + 1,
            'chunks_size': layout.CHUNKS_SIZE,
            'fps': self.cfg.extract.fps,
            'splits': {'train': f'0:{n}'},
            'data_path': layout.DATA_PATH,
            'video_path': None,
            'image_path': layout.IMAGE_PATH,
            'features': self.features,
            'camera_roles': {'base': schema['base'], 'experts': schema['experts']},
            'label_columns': [label_column(e) for e in schema['experts']],
            'action_convention': 'action[t] = newest commanded joint target issued before '
                                 't + 1/fps (header-stamp clock)',
            'first_bag': first['bag'],
        })
        layout.write_jsonl(out / layout.EPISODES, report.episodes)
        layout.write_jsonl(out / layout.TASKS, [{'task_index': i, 'task': t}
                                                for t, i in self.tasks.items()])
        write_stats(out, {layout.STATE: compute_stats(np.concatenate(self._states)),
                          layout.ACTION: compute_stats(np.concatenate(self._actions))})
        layout.write_json(out / layout.MODALITY, {
            'state': {'joints': {'start': 0, 'end': len(schema['state_names'])}},
            'action': {'joints': {'start': 0, 'end': schema['action_dim']}},
            'video': {k[len(layout.IMAGE_PREFIX):]: {'original_key': k}
                      for k in self.features if k.startswith(layout.IMAGE_PREFIX)},
            'annotation': {
                'human.task_description': {'original_key': 'task_index'},
                **{f'camera.{e}_active': {'original_key': label_column(e)}
                   for e in schema['experts']}},
        })
        return report


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
