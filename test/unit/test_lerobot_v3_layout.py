"""A dataset converted from real sim bags has LeRobot v3.0's files and fields (issue #18 item 10).

The description is test/data/lerobot_v3_layout.json (LeRobot 0.4.4 and 0.6.1, read from their
source; it says how to refresh it). Nothing imports LeRobot: the checks read the files with
pyarrow, pandas and PyAV as LeRobot does, including its video decoding (rgb24 / 255), through
which the 16-bit thermal frames must come back exactly as the bags hold them.
"""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pi05_moe_bringup.sim.config import SimConfig
from pi05_moe_bringup.sim_tools.record_demos import SimDemoConfig, record_demos
from pi05_moe_training.bags.reader import BagReader
from pi05_moe_training.dataset.convert import convert

SPEC = json.loads((Path(__file__).resolve().parents[1] / 'data' / 'lerobot_v3_layout.json')
                  .read_text())
PY_TYPES = {'str': str, 'int': int, 'dict': dict}


@pytest.fixture(scope='module')
def converted(tmp_path_factory):
    root = tmp_path_factory.mktemp('v3')
    sim = SimConfig(image_width=48, image_height=48, thermal_width=32, thermal_height=24)
    summaries = record_demos(root / 'bags', SimDemoConfig(episodes=2, hold_s=0.1), sim,
                             progress=False)
    report = convert([s.path for s in summaries], root / 'ds', progress=False)
    assert len(report.episodes) == 2 and not report.skipped
    info = json.loads((root / 'ds' / SPEC['paths']['info']).read_text())
    return root / 'ds', info, [s.path for s in summaries]


def _episodes(root: Path) -> pd.DataFrame:
    files = sorted(root.glob('meta/episodes/*/*.parquet'))
    return pd.concat([pd.read_parquet(f) for f in files]).reset_index(drop=True)


def _video_path(root: Path, info: dict, key: str, row) -> Path:
    return root / info['video_path'].format(video_key=key,
                                            chunk_index=row[f'videos/{key}/chunk_index'],
                                            file_index=row[f'videos/{key}/file_index'])


def test_info_json(converted):
    _, info, _ = converted
    assert info['codebase_version'] == SPEC['codebase_version']
    for key, kind in SPEC['info']['required'].items():
        assert isinstance(info[key], PY_TYPES[kind]), (key, info[key])
    for key, value in SPEC['info']['defaults'].items():
        assert info[key] == value
    assert not set(SPEC['info']['v2_only_keys']) & set(info)
    assert info['data_path'] == SPEC['paths']['data']
    assert info['video_path'] == SPEC['paths']['video']
    assert info['splits'] == {'train': f'0:{info["total_episodes"]}'}
    for name, expected in SPEC['features']['default_features'].items():
        assert {k: info['features'][name][k] for k in expected} == expected
    for name, feature in info['features'].items():
        assert all(k in feature for k in SPEC['features']['every_feature_has']), name


def test_files_and_no_legacy_files(converted):
    root, info, _ = converted
    for key in ('info', 'stats', 'tasks'):
        assert (root / SPEC['paths'][key]).is_file(), key
    for name in SPEC['absent_files']:
        assert not (root / name).exists(), name
    episodes = _episodes(root)
    for _, row in episodes.iterrows():
        assert (root / SPEC['paths']['data'].format(chunk_index=row['data/chunk_index'],
                                                    file_index=row['data/file_index'])).is_file()
        assert (root / SPEC['paths']['episodes'].format(
            chunk_index=row['meta/episodes/chunk_index'],
            file_index=row['meta/episodes/file_index'])).is_file()
    assert len({tuple(r) for r in episodes[['data/chunk_index', 'data/file_index']].values}) == 1


def test_data_parquet_columns_are_the_non_video_features(converted):
    root, info, _ = converted
    table = pa.concat_tables([pq.read_table(f) for f in sorted(root.glob('data/*/*.parquet'))])
    features = {k: f for k, f in info['features'].items() if f['dtype'] != 'video'}
    assert set(table.column_names) == set(features)
    for name, feature in features.items():
        column = table.schema.field(name).type
        if feature['shape'] == [1]:
            assert str(column) == feature['dtype'] or (feature['dtype'] == 'float32'
                                                       and str(column) == 'float'), name
        else:
            assert pa.types.is_fixed_size_list(column) and column.list_size == feature['shape'][0]
    assert table.num_rows == info['total_frames']
    assert table.column('index').to_pylist() == list(range(info['total_frames']))


def test_episode_rows(converted):
    root, info, _ = converted
    episodes = _episodes(root)
    video_keys = [k for k, f in info['features'].items() if f['dtype'] == 'video']
    columns = list(SPEC['episodes']['required_columns']) + [
        c.format(video_key=k) for k in video_keys for c in SPEC['episodes']['video_columns']]
    assert set(columns) <= set(episodes.columns)
    assert any(c.startswith('stats/observation.state/') for c in episodes.columns)
    assert episodes['episode_index'].tolist() == list(range(info['total_episodes']))
    ends = episodes['dataset_to_index'].tolist()
    assert episodes['dataset_from_index'].tolist() == [0, *ends[:-1]]
    assert (episodes['dataset_to_index'] - episodes['dataset_from_index']
            == episodes['length']).all()
    fps = info['fps']
    for key in video_keys:
        start = episodes[f'videos/{key}/from_timestamp']
        end = episodes[f'videos/{key}/to_timestamp']
        np.testing.assert_allclose(end - start, episodes['length'] / fps)
        np.testing.assert_allclose(start[1:], end[:-1])  # one file, episodes back to back


def test_videos_match_their_feature_info(converted):
    root, info, _ = converted
    spec = SPEC['features']['video']
    episodes = _episodes(root)
    for key, feature in info['features'].items():
        if feature['dtype'] != 'video':
            continue
        assert feature['names'] == spec['shape_names']
        assert all(k in feature['info'] for k in spec['info_keys'] + spec['depth_flag_keys'])
        if not feature['info']['lossless']:
            default = spec['default_encoder']
            assert (feature['info']['video.codec'], feature['info']['video.pix_fmt']) == (
                default['info_codec'], default['pix_fmt'])
            assert feature['info']['video.g'] == default['g']
        with av.open(str(_video_path(root, info, key, episodes.iloc[0]))) as video:
            stream = video.streams.video[0]
            codec = {'libdav1d': 'av1'}.get(stream.codec_context.name, stream.codec_context.name)
            assert codec == feature['info']['video.codec']
            assert stream.pix_fmt == feature['info']['video.pix_fmt']
            assert [stream.height, stream.width, 3] == feature['shape']
            times = [float(f.pts * stream.time_base) for f in video.decode(stream)]
        np.testing.assert_allclose(times, np.arange(info['total_frames']) / info['fps'],
                                   atol=1e-4)


def test_tasks_and_stats(converted):
    root, info, _ = converted
    tasks = pd.read_parquet(root / SPEC['paths']['tasks'])
    assert tasks.index.name == SPEC['tasks']['index_name']
    assert list(tasks.columns) == SPEC['tasks']['columns']
    prompts = [t for ts in _episodes(root)['tasks'] for t in ts]
    assert sorted(tasks.index) == sorted(set(prompts)) and len(tasks) == info['total_tasks'] == 2
    assert [tasks.loc[p, 'task_index'] for p in prompts] == [0, 1]  # LeRobot's lookup
    stats = json.loads((root / SPEC['paths']['stats']).read_text())
    numeric = [k for k, f in info['features'].items() if f['dtype'] != 'string']
    assert set(stats) == set(numeric)
    low, high = SPEC['stats']['image_range']
    for name, values in stats.items():
        assert set(values) == set(SPEC['stats']['keys']), name
        if info['features'][name]['dtype'] == 'video':
            for key in ('mean', 'std', 'min', 'max', 'q01', 'q50', 'q99'):
                array = np.asarray(values[key])
                assert array.shape == tuple(SPEC['stats']['image_shape']), (name, key)
                assert (low <= array).all() and (array <= high).all(), (name, key)


def test_thermal_frames_survive_lerobots_decoding_exactly(converted):
    """Every thermal frame as LeRobot decodes it (rgb24 / 255, float32), put back together by the
    formula in its feature info, is one of the bag's mono16 messages, bit for bit, in order."""
    root, info, bags = converted
    key = 'observation.images.thermal'
    assert 'round(255 * R)' in info['features'][key]['info']['carriage_doc']
    episodes = _episodes(root)
    for (_, row), bag_path in zip(episodes.iterrows(), bags):
        with BagReader(bag_path) as bag:
            originals = [np.frombuffer(bytes(m.data), '<u2').reshape(m.height, m.width)
                         for _, _, m in bag.messages(['/thermal/image_raw'])]
        index = {o.tobytes(): i for i, o in enumerate(originals)}
        start, end = row[f'videos/{key}/from_timestamp'], row[f'videos/{key}/to_timestamp']
        shown = []
        with av.open(str(_video_path(root, info, key, row))) as video:
            stream = video.streams.video[0]
            for frame in video.decode(stream):
                if not start - 1e-6 <= frame.pts * stream.time_base < end - 1e-6:
                    continue
                floats = frame.to_ndarray(format='rgb24').astype(np.float32) / 255  # LeRobot
                value = (256 * np.round(255 * floats[..., 0])
                         + np.round(255 * floats[..., 1])).astype(np.uint16)  # (H, W)
                assert value.tobytes() in index, 'a decoded frame matches no bag message'
                shown.append(index[value.tobytes()])
        assert len(shown) == row['length'] and shown == sorted(shown)
        assert len(set(shown)) >= len(originals) - 2  # 9 Hz: nearly every message is shown
        assert originals[shown[0]].min() > 27315  # real temperatures, above 0 deg C
