"""Where things live in a converted dataset: LeRobot v3.0, as LeRobot 0.4.x-0.6.x writes it. Pure.

```
DIR/meta/info.json                       codebase_version "v3.0", fps, features, totals, paths,
                                         robot_type, camera roles (also in each camera's info)
DIR/meta/episodes/chunk-000/file-000.parquet
                                         one row per episode: episode_index, tasks, length,
                                         data/chunk_index, data/file_index, dataset_from_index,
                                         dataset_to_index, videos/<key>/{chunk_index, file_index,
                                         from_timestamp, to_timestamp}, meta/episodes/..., our
                                         success/operator/bag/labels columns, stats/<key>/<stat>
DIR/meta/tasks.parquet                   task (the prompt, pandas index) -> task_index
DIR/meta/stats.json                      mean/std/min/max/count/q01/q10/q50/q90/q99 of every
                                         numeric feature; images per channel (3, 1, 1) in [0, 1]
DIR/meta/modality.json                   GR00T-style map of state/action/cameras/annotations
DIR/meta/conversion.json                 which bags were converted, which were skipped and why
DIR/data/chunk-000/file-000.parquet      the frames of several episodes (no image columns)
DIR/videos/observation.images.<cam>/chunk-000/file-000.mp4
                                         the frames of several episodes, one video frame per
                                         dataset frame (a slower camera repeats frames)
```
A file takes episodes until it holds ``DATA_FILES_SIZE_IN_MB`` (parquet) or
``VIDEO_FILES_SIZE_IN_MB`` (mp4); a chunk holds ``CHUNKS_SIZE`` files. Frame t of an episode is
at ``from_timestamp + t / fps`` in its camera's video file.

Colour (and 8-bit grey) cameras are AV1 (libsvtav1, yuv420p, g=2, crf=30), LeRobot's default:
lossy. 16-bit streams (thermal in centi-Kelvin, depth in mm) are carried losslessly and
LeRobot-readable by :mod:`~pi05_moe_training.dataset.video`: the value split into the R (high
byte) and G (low byte) channels of a lossless H.264 RGB video; each such feature's ``info`` says
so (``carriage``, ``carriage_doc``, ``encoding``, ``unit``). Optional cameras (depth) absent in
a frame are black there and ``image_present.<cam>`` is 0.

Datasets of the older layout (v2.0: ``meta/episodes.jsonl``, PNG files) are refused with one
line saying to re-run ``pi05-moe convert`` (:func:`read_info`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

LEROBOT_VERSIONS = '0.4.4 and 0.6.1'  # the releases whose writers this layout follows
CODEBASE_VERSION = 'v3.0'
CHUNKS_SIZE = 1000  # files per chunk directory
DATA_FILES_SIZE_IN_MB = 100
VIDEO_FILES_SIZE_IN_MB = 200
CHUNK_FILE = 'chunk-{chunk_index:03d}/file-{file_index:03d}'
DATA_PATH = 'data/' + CHUNK_FILE + '.parquet'
VIDEO_PATH = 'videos/{video_key}/' + CHUNK_FILE + '.mp4'
EPISODES_PATH = 'meta/episodes/' + CHUNK_FILE + '.parquet'
INFO = Path('meta/info.json')
TASKS = Path('meta/tasks.parquet')
MODALITY = Path('meta/modality.json')
CONVERSION = Path('meta/conversion.json')
LEGACY_EPISODES = Path('meta/episodes.jsonl')  # v2.0, written before issue #18

STATE = 'observation.state'
ACTION = 'action'
IMAGE_PREFIX = 'observation.images.'
PRESENT_PREFIX = 'image_present.'  # 0/1 per frame for optional cameras


class DatasetVersionError(ValueError):
    """A dataset in a layout this code does not read; the text says what to do."""


def image_key(camera: str) -> str:
    return IMAGE_PREFIX + camera


def present_key(camera: str) -> str:
    return PRESENT_PREFIX + camera


def data_file(chunk_index: int, file_index: int) -> str:
    """A data parquet path, relative to the dataset root."""
    return DATA_PATH.format(chunk_index=chunk_index, file_index=file_index)


def video_file(key: str, chunk_index: int, file_index: int) -> str:
    """A video path, relative to the dataset root."""
    return VIDEO_PATH.format(video_key=key, chunk_index=chunk_index, file_index=file_index)


def episodes_file(chunk_index: int, file_index: int) -> str:
    return EPISODES_PATH.format(chunk_index=chunk_index, file_index=file_index)


def next_file(chunk_index: int, file_index: int) -> tuple[int, int]:
    """The (chunk, file) after this one: ``CHUNKS_SIZE`` files per chunk."""
    if file_index + 1 >= CHUNKS_SIZE:
        return chunk_index + 1, 0
    return chunk_index, file_index + 1


def read_info(root: str | Path) -> dict[str, Any]:
    """``meta/info.json`` of a v3.0 dataset.

    Raises FileNotFoundError (no info.json) or :class:`DatasetVersionError` (another layout).
    """
    root = Path(root)
    path = root / INFO
    if not path.is_file():
        raise FileNotFoundError(f'{path}: not a dataset from `pi05-moe convert`')
    info = read_json(path)
    version = info.get('codebase_version')
    if version != CODEBASE_VERSION:
        raise DatasetVersionError(
            f'{root}: dataset layout {version!r}, this version reads only LeRobot '
            f'{CODEBASE_VERSION!r}: re-run `pi05-moe convert <bags> --out {root} --overwrite`')
    return info


def write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + '\n')


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text())
