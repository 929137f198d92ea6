"""Where things live in a converted dataset (LeRobot v2 layout, images as PNG files). Pure.

```
DIR/meta/info.json          codebase_version, fps, features, totals, robot_type, camera roles
DIR/meta/episodes.jsonl     one line per episode: index, tasks, length, success, labels, bag ...
DIR/meta/tasks.jsonl        task_index -> task (the prompt)
DIR/meta/stats.json         mean/std/min/max/q01/q99 of observation.state and action
DIR/meta/modality.json      GR00T-style map of state/action/cameras/annotations
DIR/meta/conversion.json    which bags were converted, which were skipped and why
DIR/data/chunk-000/episode_000000.parquet
DIR/images/observation.images.<cam>/episode_000000/frame_000123.png
```
Images are PNG files rather than MP4 video: the thermal camera is 16-bit (centi-Kelvin) and must
stay lossless, and so must depth. The parquet column ``observation.images.<cam>`` holds each
frame's image path relative to DIR (``''`` where an optional camera is absent); consecutive
frames may share a file when the camera is slower than the control rate.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

CODEBASE_VERSION = 'v2.0'
CHUNKS_SIZE = 1000
DATA_PATH = 'data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet'
IMAGE_PATH = ('images/observation.images.{camera}/episode_{episode_index:06d}/'
              'frame_{frame_index:06d}.png')
INFO = Path('meta/info.json')
EPISODES = Path('meta/episodes.jsonl')
TASKS = Path('meta/tasks.jsonl')
MODALITY = Path('meta/modality.json')
CONVERSION = Path('meta/conversion.json')

STATE = 'observation.state'
ACTION = 'action'
IMAGE_PREFIX = 'observation.images.'


def image_key(camera: str) -> str:
    return IMAGE_PREFIX + camera


def data_file(episode_index: int) -> str:
    """Parquet path of an episode, relative to the dataset root."""
    return DATA_PATH.format(episode_chunk=episode_index // CHUNKS_SIZE,
                            episode_index=episode_index)


def image_file(camera: str, episode_index: int, source_index: int) -> str:
    """PNG path of a camera's ``source_index``-th message in an episode, relative to the root."""
    return IMAGE_PATH.format(camera=camera, episode_index=episode_index,
                             frame_index=source_index)


def write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + '\n')


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(''.join(json.dumps(r, ensure_ascii=False) + '\n' for r in rows))


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text())


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
