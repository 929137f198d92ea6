"""Episodes -> a LeRobot v3.0 dataset directory (see :mod:`~pi05_moe_training.dataset.layout`).

:class:`DatasetWriter` takes one :class:`~pi05_moe_training.dataset.extract.Episode` at a time.
Each camera's frames on the control-rate grid are encoded into a per-episode segment, written
under ``.segments/`` only when the whole episode encoded (a bad image leaves no trace); the
frame table joins the open data file. :meth:`DatasetWriter.finish` appends the segments into the
chunked video files, then writes the meta files.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pi05_moe_training.dataset import layout
from pi05_moe_training.dataset.extract import Episode, EpisodeError, iter_images
from pi05_moe_training.dataset.labels import EpisodeLabels, episode_labels
from pi05_moe_training.dataset.stats import (
    channel_histogram,
    compute_stats,
    histogram_stats,
    write_stats,
)
from pi05_moe_training.dataset.video import (
    CARRIAGES,
    SIXTEEN_BIT_UNITS,
    SegmentEncoder,
    VideoConcatenator,
    VideoError,
    pack,
    stored_encoding,
)

SEGMENTS = '.segments'


@dataclass
class ConvertReport:
    """The outcome of a conversion."""

    out: Path
    episodes: list[dict] = field(default_factory=list)  # one dict per episode (nested labels)
    skipped: list[dict] = field(default_factory=list)  # {'bag', 'reason'}
    total_frames: int = 0
    replaced: bool = True  # False: nothing converted, an existing --out was left as it was


@dataclass
class _Camera:
    """A camera of the dataset, fixed by the first episode."""

    name: str
    encoding: str  # stored encoding
    size: tuple[int, int]  # (H, W)
    topic: str
    role: str
    required: bool


class _Feed:
    """One camera of one episode: takes the referenced frames in bag order and encodes the grid's
    frames in grid order (frame t shows source message ``source[t]``; -1 = black, absent)."""

    def __init__(self, camera: _Camera, source: np.ndarray, fps: float):
        self.camera, self.source = camera, source
        self.encoder = SegmentEncoder(fps, CARRIAGES[camera.encoding], camera.size)
        self.uses = np.bincount(source[source >= 0], minlength=1)  # source -> frames showing it
        self.last_use = {int(s): int(t) for t, s in enumerate(source) if s >= 0}
        self.pending: dict[int, np.ndarray] = {}
        self.t = 0
        self.hist = np.zeros((3, 256), np.int64)
        missing = int((source < 0).sum())
        self.hist[:, 0] += missing * camera.size[0] * camera.size[1]
        self.black = np.zeros((*camera.size, 3), np.uint8)

    def offer(self, index: int, frame: np.ndarray) -> None:
        if frame.shape[:2] != self.camera.size:
            raise EpisodeError(f'{self.camera.topic}: frame {index} is {frame.shape[:2]}, the '
                               f'dataset\'s {self.camera.name} is {self.camera.size}')
        self.pending[index] = frame
        self.hist += channel_histogram(frame) * int(self.uses[index])
        self._drain()

    def _drain(self) -> None:
        while self.t < self.source.size:
            s = int(self.source[self.t])
            if s >= 0 and s not in self.pending:
                return
            new = self.t == 0 or s != int(self.source[self.t - 1])
            self.encoder.add(self.pending[s] if s >= 0 else self.black, new)
            self.t += 1
            if s >= 0 and self.last_use[s] < self.t:
                del self.pending[s]

    def finish(self) -> bytes:
        self._drain()
        if self.t < self.source.size:
            raise EpisodeError(f'{self.camera.topic}: message {int(self.source[self.t])} '
                               'was not found in the second pass over the bag')
        return self.encoder.finish()


class _DataFiles:
    """Frame tables -> ``data/chunk-*/file-*.parquet``, several episodes a file."""

    def __init__(self, root: Path, max_mb: float):
        self.root, self.max_bytes = root, max_mb * 2 ** 20
        self.chunk, self.file = 0, 0
        self.tables: list = []

    def add(self, table) -> tuple[int, int]:
        if self.tables and sum(t.nbytes for t in self.tables) + table.nbytes >= self.max_bytes:
            self.flush()
            self.chunk, self.file = layout.next_file(self.chunk, self.file)
        self.tables.append(table)
        return self.chunk, self.file

    def flush(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if self.tables:
            path = self.root / layout.data_file(self.chunk, self.file)
            path.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(pa.concat_tables(self.tables), path)
            self.tables = []


class DatasetWriter:
    """Accumulates episodes into a dataset directory; :meth:`finish` writes videos and meta."""

    def __init__(self, out: Path, cfg: Any):
        self.out = out
        self.cfg = cfg
        self.fps = float(cfg.extract.fps)
        self.report = ConvertReport(out)
        self.tasks: dict[str, int] = {}
        self.schema: dict[str, Any] | None = None  # fixed by the first episode
        self.cameras: list[_Camera] = []
        self.features: dict[str, Any] = {}
        self._data = _DataFiles(out, cfg.data_files_size_in_mb)
        self._columns: dict[str, list[np.ndarray]] = {}  # numeric feature -> per episode (T, D)
        self._image_stats: list[dict[str, np.ndarray]] = []  # per episode: key -> (3, 256)

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

    def _cameras_of(self, ep: Episode) -> list[_Camera]:
        if self.cameras:
            return self.cameras
        cameras = []
        for name, refs in sorted(ep.images.items()):
            role = ('base' if name == ep.meta.base_camera else
                    'expert' if name in ep.meta.expert_cameras else 'extra')
            try:
                encoding = stored_encoding(refs.encoding)
            except VideoError as exc:
                raise EpisodeError(f'{ep.bag}: {refs.topic}: {exc}') from None
            cameras.append(_Camera(name, encoding, tuple(refs.shape[:2]), refs.topic, role,
                                   refs.required))
        return cameras

    def add(self, ep: Episode) -> dict:
        """Encode one episode's videos and frame table; returns its report row."""
        self.check_schema(ep)
        index = len(self.report.episodes)
        labels = episode_labels(ep.prompt, ep.action, list(ep.meta.expert_cameras), index,
                                self.cfg.labels)
        task_index = self.tasks.get(ep.prompt, len(self.tasks))
        cameras = self._cameras_of(ep)
        segments, hists, present = self._encode(ep, cameras)
        columns = self._frame_columns(ep, index, task_index, labels, present, cameras)
        written = []
        try:
            for key, data in segments.items():
                path = self.out / SEGMENTS / key / f'episode_{index:06d}.mp4'
                path.parent.mkdir(parents=True, exist_ok=True)
                written.append(path)
                path.write_bytes(data)  # Python's own write: a full disk raises ENOSPC here
        except BaseException:
            for path in written:
                path.unlink(missing_ok=True)
            raise
        if self.schema is None:
            self.schema, self.cameras = self._schema_of(ep), cameras
            self.features = self._features(ep, columns)
        self.tasks[ep.prompt] = task_index
        chunk, file = self._data.add(self._table(columns))
        first = self.report.total_frames
        row = self._row(ep, index, labels, chunk, file, first)
        self._image_stats.append(hists)
        for name, values in columns.items():
            self._columns.setdefault(name, []).append(values.reshape(ep.length, -1))
        self.report.episodes.append(row)
        self.report.total_frames += ep.length
        return row

    def _encode(self, ep: Episode, cameras: list[_Camera]):
        """(segment bytes, (3, 256) histograms, (T,) presence) per camera key."""
        feeds = {}
        for camera in cameras:
            refs = ep.images.get(camera.name)
            source = (refs.source_index if refs is not None
                      else np.full(ep.length, -1, np.int64))
            feeds[camera.name] = _Feed(camera, np.asarray(source, np.int64), self.fps)
        try:
            for name, source, image, encoding in iter_images(ep):
                if name in feeds:
                    feeds[name].offer(source, pack(image, encoding))
            segments = {layout.image_key(n): f.finish() for n, f in feeds.items()}
        except VideoError as exc:
            raise EpisodeError(f'{ep.bag}: {exc}') from None
        hists = {layout.image_key(n): f.hist for n, f in feeds.items()}
        present = {n: (f.source >= 0).astype(np.int64) for n, f in feeds.items()}
        return segments, hists, present

    def _frame_columns(self, ep: Episode, index: int, task_index: int, labels: EpisodeLabels,
                       present: dict[str, np.ndarray],
                       cameras: list[_Camera]) -> dict[str, np.ndarray]:
        T = ep.length
        first = self.report.total_frames
        columns = {
            layout.STATE: ep.state.astype(np.float32),  # (T, D)
            layout.ACTION: ep.action.astype(np.float32),  # (T, A)
            'timestamp': (np.arange(T) / self.fps).astype(np.float32),
            'frame_index': np.arange(T, dtype=np.int64),
            'episode_index': np.full(T, index, dtype=np.int64),
            'index': np.arange(first, first + T, dtype=np.int64),
            'task_index': np.full(T, task_index, dtype=np.int64),
        }
        columns.update(labels.columns(T))
        for camera in cameras:
            if not camera.required:
                columns[layout.present_key(camera.name)] = present[camera.name]
        return columns

    @staticmethod
    def _table(columns: dict[str, np.ndarray]):
        import pyarrow as pa

        arrays = {}
        for name, values in columns.items():
            if values.ndim == 2:  # (T, D) -> fixed-size list column, as LeRobot's Sequence
                arrays[name] = pa.FixedSizeListArray.from_arrays(pa.array(values.ravel()),
                                                                 values.shape[1])
            else:
                arrays[name] = pa.array(values)
        return pa.table(arrays)

    def _row(self, ep: Episode, index: int, labels: EpisodeLabels, chunk: int, file: int,
             first: int) -> dict:
        return {
            'episode_index': index, 'tasks': [ep.prompt], 'length': ep.length,
            'data/chunk_index': chunk, 'data/file_index': file,
            'dataset_from_index': first, 'dataset_to_index': first + ep.length,
            'task': ep.meta.task, 'success': ep.meta.success, 'robot': ep.meta.robot,
            'operator': ep.meta.operator, 'bag': str(ep.bag), 'meta_source': ep.meta_source,
            'action_topic': ep.action_topic,
            'labels': {'active': {e: int(v) for e, v in labels.active.items()},
                       'source': labels.source, 'detail': labels.detail},
            'stale_frames': ep.stale,
            'salvaged': ep.salvaged,
        }

    def _features(self, ep: Episode, columns: dict[str, np.ndarray]) -> dict[str, Any]:
        from pi05_moe_training.dataset.meta import frame_features, video_feature

        features = {layout.image_key(c.name): video_feature(c, self.fps) for c in self.cameras}
        features.update(frame_features(ep, columns))
        return features

    def finish(self) -> ConvertReport:
        """Append the segments into the video files, then write meta/."""
        from pi05_moe_training.dataset.meta import write_meta

        out, report = self.out, self.report
        layout.write_json(out / layout.CONVERSION, {
            'converted': [{'episode_index': e['episode_index'], 'bag': e['bag']}
                          for e in report.episodes],
            'skipped': report.skipped})
        if not report.episodes:
            return report
        self._data.flush()
        self._join_videos()
        stats = {name: compute_stats(np.concatenate(values))
                 for name, values in self._columns.items()}
        for key in self._image_stats[0]:
            hist = sum(h[key] for h in self._image_stats)
            stats[key] = histogram_stats(hist, self.report.total_frames)
        write_stats(out, stats)
        write_meta(self, self._episode_stats())
        return report

    def _join_videos(self) -> None:
        for camera in self.cameras:
            key = layout.image_key(camera.name)
            joiner = VideoConcatenator(self.out, key, self.cfg.video_files_size_in_mb, self.fps)
            try:
                for row in self.report.episodes:
                    path = self.out / SEGMENTS / key / f'episode_{row["episode_index"]:06d}.mp4'
                    row.update(joiner.append(path.read_bytes(), row['length']))
                    path.unlink()
            finally:
                joiner.close()
        shutil.rmtree(self.out / SEGMENTS, ignore_errors=True)

    def _episode_stats(self) -> list[dict[str, dict[str, np.ndarray]]]:
        """Per episode: ``{feature: stats}`` for its ``stats/<feature>/<stat>`` columns."""
        out = []
        for i, hists in enumerate(self._image_stats):
            length = self.report.episodes[i]['length']
            stats = {name: compute_stats(values[i]) for name, values in self._columns.items()}
            stats.update({key: histogram_stats(h, length) for key, h in hists.items()})
            out.append(stats)
        return out


def episode_extras(row: dict) -> dict[str, Any]:
    """Our columns of an episode row, flat (``labels/active/<expert>`` ...), for the parquet."""
    flat = {k: row[k] for k in ('task', 'robot', 'operator', 'bag', 'meta_source',
                                'action_topic')}
    flat['success'] = row['success']
    flat['salvaged'] = row['salvaged']
    flat['labels/source'] = row['labels']['source']
    flat['labels/detail'] = row['labels']['detail']
    for expert, on in row['labels']['active'].items():
        flat[f'labels/active/{expert}'] = int(on)
    flat['stale_frames'] = json.dumps(row['stale_frames'], sort_keys=True)
    return flat


__all__ = ['ConvertReport', 'DatasetWriter', 'SIXTEEN_BIT_UNITS', 'episode_extras']
