"""The meta files of a LeRobot v3.0 dataset: info.json features, the episodes and tasks parquet
files, modality.json (see :mod:`~pi05_moe_training.dataset.layout` for the layout)."""

from __future__ import annotations

from typing import Any

import numpy as np

from pi05_moe_training.dataset import layout
from pi05_moe_training.dataset.labels import label_column
from pi05_moe_training.dataset.video import CARRIAGES, SIXTEEN_BIT_UNITS, video_info


def video_feature(camera, fps: float) -> dict[str, Any]:
    """info.json feature of a camera (a ``_Camera`` of the writer)."""
    carriage = CARRIAGES[camera.encoding]
    info = video_info(carriage, camera.size, fps)
    info.update({'encoding': camera.encoding, 'bit_depth': 16 if '16' in camera.encoding else 8,
                 'carriage': carriage.name, 'carriage_doc': carriage.doc,
                 'lossless': carriage.lossless,
                 'key_frame_per_message': carriage.key_on_change and carriage.lossless,
                 'topic': camera.topic, 'role': camera.role,
                 'required': camera.required})
    if camera.encoding in SIXTEEN_BIT_UNITS:
        info['unit'] = SIXTEEN_BIT_UNITS[camera.encoding]
    if not camera.required:
        info['present_column'] = layout.present_key(camera.name)
    return {'dtype': 'video', 'shape': [*camera.size, 3],
            'names': ['height', 'width', 'channels'], 'info': info}


def frame_features(ep, columns: dict[str, np.ndarray]) -> dict[str, Any]:
    """info.json features of the parquet columns, in column order."""
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
    for name, values in columns.items():
        if name in features:
            continue
        feature = {'dtype': str(values.dtype), **scalar}
        if name.startswith('annotation.camera.'):
            camera = name.removeprefix('annotation.camera.').removesuffix('_active')
            feature['info'] = {'values': {'0': 'inactive', '1': 'active'}, 'camera': camera}
        elif name.startswith(layout.PRESENT_PREFIX):
            feature['info'] = {'values': {'0': 'no frame (black)', '1': 'frame'},
                               'camera': name.removeprefix(layout.PRESENT_PREFIX)}
        features[name] = feature
    return features


def _fps(fps: float) -> int | float:
    return int(fps) if float(fps).is_integer() else fps


def _whole(mb: float) -> int:
    """LeRobot's DatasetInfo wants whole, positive MB; a smaller limit (tests) says 1."""
    return max(1, round(mb))


def write_meta(writer, episode_stats: list[dict[str, dict[str, np.ndarray]]]) -> None:
    """info.json, episodes and tasks parquet files, modality.json of a finished writer."""
    import pandas as pd

    out, report, schema = writer.out, writer.report, writer.schema
    n = len(report.episodes)
    robot = next((e['robot'] for e in report.episodes if e['robot']), writer.cfg.robot_type)
    layout.write_json(out / layout.INFO, {
        'codebase_version': layout.CODEBASE_VERSION,
        'robot_type': robot or None,
        'total_episodes': n,
        'total_frames': report.total_frames,
        'total_tasks': len(writer.tasks),
        'chunks_size': layout.CHUNKS_SIZE,
        'data_files_size_in_mb': _whole(writer.cfg.data_files_size_in_mb),
        'video_files_size_in_mb': _whole(writer.cfg.video_files_size_in_mb),
        'fps': _fps(writer.fps),
        'splits': {'train': f'0:{n}'},
        'data_path': layout.DATA_PATH,
        'video_path': layout.VIDEO_PATH,
        'features': writer.features,
        'camera_roles': {'base': schema['base'], 'experts': schema['experts']},
        'label_columns': [label_column(e) for e in schema['experts']],
        'action_convention': 'action[t] = newest commanded joint target issued before '
                             't + 1/fps (header-stamp clock)',
        'first_bag': report.episodes[0]['bag'],
        'written_for': f'LeRobot {layout.LEROBOT_VERSIONS} (pi05-moe convert)',
    })
    _write_episodes(writer, episode_stats)
    tasks = pd.DataFrame({'task_index': list(writer.tasks.values())},
                         index=pd.Index(list(writer.tasks), name='task'))
    tasks.to_parquet(out / layout.TASKS)
    layout.write_json(out / layout.MODALITY, {
        'state': {'joints': {'start': 0, 'end': len(schema['state_names'])}},
        'action': {'joints': {'start': 0, 'end': schema['action_dim']}},
        'video': {k[len(layout.IMAGE_PREFIX):]: {'original_key': k}
                  for k in writer.features if k.startswith(layout.IMAGE_PREFIX)},
        'annotation': {
            'human.task_description': {'original_key': 'task_index'},
            **{f'camera.{e}_active': {'original_key': label_column(e)}
               for e in schema['experts']}},
    })


def _write_episodes(writer, episode_stats: list[dict[str, dict[str, np.ndarray]]]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from pi05_moe_training.dataset.writer import episode_extras

    rows = []
    for row, stats in zip(writer.report.episodes, episode_stats):
        flat = {k: v for k, v in row.items()
                if k not in ('labels', 'stale_frames', 'salvaged', 'success', 'task', 'robot',
                             'operator', 'bag', 'meta_source', 'action_topic')}
        flat.update({'meta/episodes/chunk_index': 0, 'meta/episodes/file_index': 0})
        flat.update(episode_extras(row))
        for feature, values in stats.items():
            for stat, value in values.items():
                flat[f'stats/{feature}/{stat}'] = np.asarray(value).tolist()
        rows.append(flat)
    types = {'success': pa.bool_(), 'salvaged': pa.string(), 'task': pa.string(),
             'robot': pa.string(), 'operator': pa.string(), 'tasks': pa.list_(pa.string())}
    table = pa.table({k: pa.array([r[k] for r in rows], types.get(k)) for k in rows[0]})
    path = writer.out / layout.episodes_file(0, 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)
