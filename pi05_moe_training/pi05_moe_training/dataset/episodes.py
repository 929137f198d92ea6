"""Read a converted dataset frame by frame, for training and evaluation. Pure numpy (no torch).

``EpisodeDataset`` is a map-style dataset (``len``, ``[i]``), so ``torch.utils.data.DataLoader``
takes it as is. Item ``i`` is one frame::

    {
      'images': {cam: (H, W, 3) uint8 RGB | (H, W) uint16 thermal centi-K / depth mm},
      'state': (D,) float32,
      'prompt': str,
      'actions': (horizon, A) float32,   # action[t], action[t+1], ... (see extract.py)
      'action_is_pad': (horizon,) bool,  # True beyond the episode's end (last action repeated)
      'camera_active': {expert: int 0/1},
      'episode_index': int, 'frame_index': int, 'timestamp': float (s since episode start),
    }

State and actions are in robot units; normalisation (``load_stats`` -> q01/q99) belongs to the
policy's transforms, which training and inference share.

The dataset is LeRobot v3.0 (:mod:`~pi05_moe_training.dataset.layout`): the frame tables are read
once from the chunked parquet files, images are decoded from the videos with PyAV on demand
(:class:`~pi05_moe_training.dataset.video.FrameReader`: files stay open per process, in-order
reads decode forward without seeking). 16-bit thermal and depth come back bit-exact, colour as
AV1 decodes it. An older dataset (v2.0) raises one line saying to re-run ``pi05-moe convert``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from pi05_moe_training.dataset import layout
from pi05_moe_training.dataset.labels import label_column
from pi05_moe_training.dataset.stats import load_stats
from pi05_moe_training.dataset.video import FrameReader, unpack

__all__ = ['EpisodeDataset', 'load_stats', 'read_episodes', 'read_tasks']


def read_episodes(root: str | Path) -> list[dict[str, Any]]:
    """The rows of ``meta/episodes/*/*.parquet`` (flat columns, without ``stats/``), in
    episode order."""
    import pyarrow.parquet as pq

    rows = []
    for path in sorted(Path(root).glob('meta/episodes/chunk-*/file-*.parquet')):
        schema = pq.read_schema(path)
        columns = [c for c in schema.names if not c.startswith('stats/')]
        rows += pq.read_table(path, columns=columns).to_pylist()
    if not rows:
        raise FileNotFoundError(f'{root}: no meta/episodes/chunk-*/file-*.parquet')
    return sorted(rows, key=lambda r: r['episode_index'])


def read_tasks(root: str | Path) -> dict[int, str]:
    """task_index -> task (the prompt) from ``meta/tasks.parquet``."""
    import pandas as pd

    tasks = pd.read_parquet(Path(root) / layout.TASKS)
    return {int(i): str(task) for task, i in zip(tasks.index, tasks['task_index'])}


class EpisodeDataset:
    """Frames of a ``pi05-moe convert`` dataset with future action chunks.

    Args:
        root: the dataset directory (LeRobot v3.0; an older layout raises
            :class:`~pi05_moe_training.dataset.layout.DatasetVersionError`).
        horizon: action chunk length (rows of ``actions``).
        cameras: cameras to load; default: the base and expert cameras (always present).
            Optional cameras (e.g. ``l515_depth``) may be absent in some frames; they are then
            left out of ``images``.
        load_images: False skips the videos (state/action-only uses, fast).
    """

    def __init__(self, root: str | Path, *, horizon: int = 50, cameras: list[str] | None = None,
                 load_images: bool = True):
        import pyarrow as pa
        import pyarrow.parquet as pq

        self.root = Path(root)
        if horizon < 1:
            raise ValueError(f'horizon={horizon!r}: expected >= 1')
        self.info: dict[str, Any] = layout.read_info(self.root)
        self.episodes = read_episodes(self.root)
        self.tasks = read_tasks(self.root)
        self.horizon = horizon
        self.load_images = load_images
        roles = self.info['camera_roles']
        self.experts: list[str] = list(roles['experts'])
        available = [k[len(layout.IMAGE_PREFIX):] for k in self.info['features']
                     if k.startswith(layout.IMAGE_PREFIX)]
        self.cameras = list(cameras) if cameras is not None else [roles['base'], *self.experts]
        unknown = [c for c in self.cameras if c not in available]
        if unknown:
            raise ValueError(f'cameras {unknown} not in {self.root} (available: {available})')
        self._reader = FrameReader()
        files = sorted(self.root.glob('data/chunk-*/file-*.parquet'))
        table = pa.concat_tables([pq.read_table(f) for f in files]).sort_by('index')
        bounds = np.cumsum([0] + [int(e['length']) for e in self.episodes])  # (E + 1,)
        if table.num_rows != bounds[-1]:
            raise ValueError(f'{self.root}: the data files hold {table.num_rows} frames, the '
                             f'episodes {bounds[-1]}')
        state, action = _matrix(table.column(layout.STATE)), _matrix(table.column(layout.ACTION))
        wanted = ['timestamp', 'task_index', *[label_column(e) for e in self.experts],
                  *[layout.present_key(c) for c in self.cameras
                    if layout.present_key(c) in table.column_names]]
        columns = {k: table.column(k).to_numpy() for k in wanted}
        self._state: list[np.ndarray] = []  # per episode (T, D) float32
        self._action: list[np.ndarray] = []  # per episode (T, A) float32
        self._columns: list[dict[str, np.ndarray]] = []  # per episode: other columns
        for a, b in zip(bounds[:-1], bounds[1:]):
            self._state.append(state[a:b])
            self._action.append(action[a:b])
            self._columns.append({k: v[a:b] for k, v in columns.items()})
        lengths = [len(s) for s in self._state]
        # (N, 2): the (episode, frame) of every dataset index
        self._frames = np.array([(e, t) for e, n in enumerate(lengths) for t in range(n)],
                                dtype=np.int64).reshape(-1, 2)

    @property
    def fps(self) -> float:
        return float(self.info['fps'])

    @property
    def state_names(self) -> list[str]:
        return list(self.info['features'][layout.STATE]['names'])

    @property
    def action_names(self) -> list[str]:
        return list(self.info['features'][layout.ACTION]['names'])

    @property
    def num_episodes(self) -> int:
        return len(self.episodes)

    def stats(self) -> dict[str, dict[str, np.ndarray]]:
        return load_stats(self.root)

    def episode_arrays(self, episode: int) -> dict[str, Any]:
        """A whole episode without images: state (T, D), action (T, A), prompt, labels."""
        cols = self._columns[episode]
        return {
            'state': self._state[episode], 'action': self._action[episode],
            'timestamp': cols['timestamp'].astype(np.float32),
            'prompt': self.tasks[int(cols['task_index'][0])],
            'camera_active': {e: int(cols[label_column(e)][0]) for e in self.experts},
        }

    def frame_times(self) -> np.ndarray:
        """(N,) seconds from its episode's first frame to each frame (by frame index)."""
        return self._frames[:, 1] / float(self.fps)

    def __len__(self) -> int:
        return int(self._frames.shape[0])

    def __getitem__(self, i: int) -> dict[str, Any]:
        if not -len(self) <= i < len(self):
            raise IndexError(f'frame {i} out of range for {len(self)} frames')
        episode, t = (int(x) for x in self._frames[i])
        cols = self._columns[episode]
        actions = self._action[episode]  # (T, A)
        rows = np.arange(t, t + self.horizon)  # (horizon,)
        pad = rows >= actions.shape[0]  # (horizon,)
        images = self.frame_images(episode, t) if self.load_images else {}
        return {
            'images': images,
            'state': self._state[episode][t].copy(),
            'prompt': self.tasks[int(cols['task_index'][t])],
            'actions': actions[np.minimum(rows, actions.shape[0] - 1)].copy(),
            'action_is_pad': pad,
            'camera_active': {e: int(cols[label_column(e)][t]) for e in self.experts},
            'episode_index': episode,
            'frame_index': t,
            'timestamp': float(cols['timestamp'][t]),
        }


    def frame_images(self, episode: int, t: int) -> dict[str, np.ndarray]:
        """camera -> frame t of ``episode`` (absent optional cameras left out)."""
        row, cols = self.episodes[episode], self._columns[episode]
        images = {}
        for camera in self.cameras:
            present = cols.get(layout.present_key(camera))
            if present is not None and not present[t]:
                continue
            key = layout.image_key(camera)
            prefix = f'videos/{key}/'
            path = self.root / layout.video_file(key, row[prefix + 'chunk_index'],
                                                 row[prefix + 'file_index'])
            info = self.info['features'][key]['info']
            rgb = self._reader.frame(path, row[prefix + 'from_timestamp'] + t / self.fps,
                                     self.fps, bool(info.get('key_frame_per_message')))
            images[camera] = unpack(rgb, info['encoding'])
        return images


def _matrix(column) -> np.ndarray:
    """A parquet column of equal-length float lists -> (T, D) float32."""
    flat = column.combine_chunks()
    width = flat.type.list_size if hasattr(flat.type, 'list_size') else None
    values = flat.flatten().to_numpy(zero_copy_only=False).astype(np.float32)
    if width is None:
        width = values.size // max(len(flat), 1)
    return values.reshape(len(flat), width)
