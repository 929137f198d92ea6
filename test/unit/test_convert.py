"""Bags -> dataset: real bags written with rosbags, converted, and read back.

Covers our MCAP bags with metadata, a sqlite3 bag as `ros2 bag record` writes it (no metadata,
prompt on /pi05_moe/prompt), a truncated bag, a bag without metadata.yaml (salvaged and
converted), a bag with corrupt metadata, and an episode missing a camera topic.
"""

import argparse
import json
import sqlite3
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from bag_factory import ACTION_DIM, CAMERA_RATES, JOINTS, image_value, write_episode_bag

from pi05_moe_bringup import cli
from pi05_moe_training.bags.reader import BagError, BagReader, find_bags
from pi05_moe_training.dataset.convert import (
    add_arguments,
    config_from_args,
    convert,
)
from pi05_moe_training.dataset.episodes import (
    EpisodeDataset,
    load_stats,
    read_episodes,
    read_tasks,
)
from pi05_moe_training.dataset.extract import EpisodeError, ExtractConfig, read_episode

T0 = 1000.0


@pytest.fixture(scope='module')
def bags(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp('bags')
    out = {
        'hot': write_episode_bag(root / 'a_hot', prompt='lift the hot cube'),
        'red_sqlite': write_episode_bag(root / 'b_red', prompt='lift the red cube',
                                        storage='sqlite3', with_metadata=False, t0=2000.0),
        'no_thermal': write_episode_bag(root / 'c_no_thermal',
                                        skip_topics=('/thermal/image_raw',)),
        'truncated': write_episode_bag(root / 'd_truncated'),
        'unclosed': write_episode_bag(root / 'e_unclosed'),
        'bad_yaml': write_episode_bag(root / 'f_bad_yaml'),
        'plain': write_episode_bag(root / 'g_plain', prompt='pick up the cube', seconds=1.5,
                                   success=False),
    }
    # Humble's `ros2 bag record` stores no message definitions in sqlite3 bags
    with sqlite3.connect(out['red_sqlite'] / 'b_red.db3') as db:
        db.execute('DELETE FROM message_definitions')
    mcap = out['truncated'] / 'd_truncated.mcap'
    with mcap.open('r+b') as f:
        f.truncate(mcap.stat().st_size // 2)
    (out['unclosed'] / 'metadata.yaml').unlink()
    (out['bad_yaml'] / 'metadata.yaml').write_text('rosbag2_bagfile_information: [oops')
    return out


@pytest.fixture(scope='module')
def dataset(bags, tmp_path_factory):
    out = tmp_path_factory.mktemp('ds') / 'dataset'
    report = convert(find_bags([bags['hot'].parent]), out, progress=False)
    return out, report


def test_find_bags_expands_directories(bags):
    found = find_bags([bags['hot'].parent])
    assert found == sorted(bags.values())  # the unclosed bag is found too (and reported later)
    assert find_bags([bags['hot']]) == [bags['hot']]
    with pytest.raises(FileNotFoundError):
        find_bags([bags['hot'].parent / 'nope'])


def test_bad_bags_are_skipped_with_a_reason_and_nothing_else_is_lost(bags, dataset):
    out, report = dataset
    reasons = {Path(s['bag']).name: s['reason'] for s in report.skipped}
    assert set(reasons) == {'c_no_thermal', 'd_truncated', 'f_bad_yaml'}
    assert 'missing topics' in reasons['c_no_thermal'] and '/thermal/image_raw' in reasons[
        'c_no_thermal']
    assert 'truncated' in reasons['d_truncated'] or 'unreadable' in reasons['d_truncated']
    assert 'unreadable' in reasons['f_bad_yaml']
    conversion = json.loads((out / 'meta/conversion.json').read_text())
    assert {Path(s['bag']).name for s in conversion['skipped']} == set(reasons)
    converted = [Path(e['bag']).name for e in report.episodes]
    assert converted == ['a_hot', 'b_red', 'e_unclosed', 'g_plain']
    # full length: 2 s (1.5 s) at 50 Hz, cut by the last 9 Hz thermal frame at 17/9 s (12/9 s)
    assert [e['length'] for e in report.episodes] == [95, 95, 95, 67]
    # the bag without metadata.yaml was salvaged whole (its MCAP file was complete)
    salvaged = {Path(e['bag']).name: e['salvaged'] for e in report.episodes}
    assert salvaged['e_unclosed'].startswith('salvaged ') and 'unclosed' in salvaged['e_unclosed']
    assert [n for n, v in salvaged.items() if v] == ['e_unclosed']


def test_meta_files(dataset):
    out, report = dataset
    info = json.loads((out / 'meta/info.json').read_text())
    assert info['codebase_version'] == 'v3.0' and info['fps'] == 50
    assert info['total_episodes'] == 4 and info['total_frames'] == report.total_frames == 352
    assert info['robot_type'] == 'testbot'
    assert info['camera_roles'] == {'base': 'wrist', 'experts': ['l515', 'thermal']}
    feats = info['features']
    assert feats['observation.state']['names'] == JOINTS
    assert feats['action']['shape'] == [ACTION_DIM]
    thermal = feats['observation.images.thermal']
    assert thermal['dtype'] == 'video' and thermal['shape'] == [24, 32, 3]
    assert thermal['info']['bit_depth'] == 16 and thermal['info']['encoding'] == 'mono16'
    assert thermal['info']['carriage'] == 'uint16_split_rg' and thermal['info']['lossless']
    assert thermal['info']['role'] == 'expert' and 'centi-Kelvin' in thermal['info']['unit']
    assert feats['observation.images.l515']['shape'] == [24, 32, 3]
    assert feats['observation.images.l515']['info']['video.codec'] == 'av1'
    assert feats['observation.images.l515_depth']['info']['present_column'] == (
        'image_present.l515_depth')
    assert feats['annotation.camera.thermal_active']['dtype'] == 'int64'
    episodes = read_episodes(out)
    assert [e['tasks'] for e in episodes] == [['lift the hot cube'], ['lift the red cube'],
                                              ['lift the hot cube'], ['pick up the cube']]
    assert [e['meta_source'] for e in episodes] == ['bag', 'defaults', 'bag', 'bag']
    assert [e['success'] for e in episodes] == [True, None, True, False]
    assert [e['labels/source'] for e in episodes] == ['keywords', 'keywords', 'keywords',
                                                       'fallback']
    assert [e['labels/active/thermal'] for e in episodes] == [1, 0, 1, 1]
    assert [e['dataset_from_index'] for e in episodes] == [0, 95, 190, 285]
    assert read_tasks(out) == {0: 'lift the hot cube', 1: 'lift the red cube',
                               2: 'pick up the cube'}
    modality = json.loads((out / 'meta/modality.json').read_text())
    assert modality['annotation']['camera.thermal_active'] == {
        'original_key': 'annotation.camera.thermal_active'}


def test_parquet_alignment_is_exact(dataset):
    out, _ = dataset
    table = pq.read_table(out / 'data/chunk-000/file-000.parquet').to_pandas()
    assert list(table.columns[:7]) == ['observation.state', 'action', 'timestamp', 'frame_index',
                                       'episode_index', 'index', 'task_index']
    table = table[table['episode_index'] == 0]  # several episodes share the file
    state = np.stack(table['observation.state'].to_numpy())  # (T, 7)
    action = np.stack(table['action'].to_numpy())  # (T, 7)
    t = T0 + np.arange(len(table)) / 50.0  # the grid starts when every stream has a sample
    np.testing.assert_allclose(table['timestamp'], t - T0, atol=1e-5)
    # state as of t: the 100 Hz sample at t itself (value s + j)
    np.testing.assert_allclose(state[:, 0], t, atol=1e-3)
    np.testing.assert_allclose(state[:, 3], t + 3, atol=1e-3)
    # action[t]: the newest command issued before t + 1/fps, i.e. the one issued at t
    np.testing.assert_allclose(action[:, 0], t, atol=1e-3)
    np.testing.assert_allclose(action[:, 1], -t, atol=1e-3)
    # video frames as of t: frame k = floor((t - t0) * hz); 16-bit pixels say k exactly
    ds = EpisodeDataset(out, horizon=1, cameras=['l515', 'thermal', 'l515_depth'])
    for camera, topic in (('l515_depth', '/l515/depth/image_rect_raw'),
                          ('thermal', '/thermal/image_raw'), ('l515', '/l515/color/image_raw')):
        hz, encoding = CAMERA_RATES[topic]
        expected = [image_value(k, encoding)
                    for k in np.floor((t - T0) * hz + 1e-6).astype(int)]
        got = [int(ds[i]['images'][camera][0, 0, ...].max()) for i in range(len(table))]
        tolerance = 0 if camera != 'l515' else 1  # AV1 is lossy (flat frames: exact or +-1)
        assert np.abs(np.subtract(got, expected)).max() <= tolerance, camera
    assert table['annotation.camera.thermal_active'].tolist() == [1] * len(table)
    assert table['annotation.camera.l515_active'].tolist() == [0] * len(table)
    assert table['image_present.l515_depth'].tolist() == [1] * len(table)
    assert table['index'].tolist() == list(range(len(table)))


def test_images_are_lossless(dataset):
    out, _ = dataset
    ds = EpisodeDataset(out, horizon=5, cameras=['wrist', 'l515', 'thermal', 'l515_depth'])
    item = ds[40]  # t = 0.8 s
    assert item['images']['l515'].shape == (24, 32, 3) and item['images']['l515'].dtype == np.uint8
    assert (np.abs(item['images']['l515'].astype(int) - image_value(24, 'rgb8')) <= 1).all()
    thermal = item['images']['thermal']
    assert thermal.dtype == np.uint16 and thermal.shape == (24, 32)
    assert (thermal == image_value(7, 'mono16')).all()  # 16 bits survive: 30007
    assert (item['images']['l515_depth'] == image_value(24, '16UC1')).all()


def test_thermal_survives_lerobots_float_frames(dataset):
    """LeRobot decodes a video as rgb24 and divides by 255 (float32): the documented formula
    gives the centi-Kelvin values back exactly."""
    import av

    out, _ = dataset
    info = json.loads((out / 'meta/info.json').read_text())
    episode = read_episodes(out)[2]  # the third episode, mid-file
    key = 'observation.images.thermal'
    path = out / info['video_path'].format(video_key=key,
                                           chunk_index=episode[f'videos/{key}/chunk_index'],
                                           file_index=episode[f'videos/{key}/file_index'])
    target = episode[f'videos/{key}/from_timestamp'] + 40 / info['fps']
    with av.open(str(path)) as video:
        stream = video.streams.video[0]
        frame = next(f for f in video.decode(stream)
                     if abs(float(f.pts * stream.time_base) - target) < 0.01)
        floats = frame.to_ndarray(format='rgb24').astype(np.float32) / 255  # (H, W, 3)
    value = 256 * np.round(255 * floats[..., 0]) + np.round(255 * floats[..., 1])
    assert (value == image_value(7, 'mono16')).all()
    assert 'value = 256 * round(255 * R) + round(255 * G)' in info['features'][key]['info'][
        'carriage_doc']


def test_dataset_reader_chunks_and_pads(dataset):
    out, _ = dataset
    ds = EpisodeDataset(out, horizon=10)
    assert len(ds) == 352 and ds.num_episodes == 4
    assert ds.cameras == ['wrist', 'l515', 'thermal']
    first = ds[0]
    assert first['prompt'] == 'lift the hot cube'
    assert first['state'].dtype == np.float32 and first['state'].shape == (7,)
    assert first['actions'].shape == (10, 7) and not first['action_is_pad'].any()
    np.testing.assert_allclose(first['actions'][:, 0], T0 + np.arange(10) / 50, atol=1e-3)
    assert first['camera_active'] == {'l515': 0, 'thermal': 1}
    last = ds[94]  # final frame of episode 0
    assert (last['episode_index'], last['frame_index']) == (0, 94)
    assert last['action_is_pad'].tolist() == [False] + [True] * 9
    assert (last['actions'] == last['actions'][0]).all()  # padded with the last action
    second = ds[95]
    assert second['episode_index'] == 1 and second['prompt'] == 'lift the red cube'
    assert second['camera_active'] == {'l515': 1, 'thermal': 0}
    assert set(ds[0]['images']) == {'wrist', 'l515', 'thermal'}
    assert EpisodeDataset(out, load_images=False)[0]['images'] == {}
    with pytest.raises(IndexError):
        ds[352]
    with pytest.raises(ValueError, match='not in'):
        EpisodeDataset(out, cameras=['left_wrist'])


def test_stats_match_the_data(dataset):
    out, _ = dataset
    ds = EpisodeDataset(out, load_images=False)
    state = np.concatenate([ds.episode_arrays(e)['state'] for e in range(4)])
    action = np.concatenate([ds.episode_arrays(e)['action'] for e in range(4)])
    stats = load_stats(out)
    for key, values in (('observation.state', state), ('action', action)):
        s = stats[key]
        np.testing.assert_allclose(s['mean'], values.mean(0), rtol=1e-5)
        np.testing.assert_allclose(s['std'], values.std(0), rtol=1e-4)
        np.testing.assert_allclose(s['q01'], np.quantile(values, 0.01, axis=0), rtol=1e-5)
        np.testing.assert_allclose(s['q99'], np.quantile(values, 0.99, axis=0), rtol=1e-5)
        assert (s['min'] <= s['q01']).all() and (s['q99'] <= s['max']).all()
        np.testing.assert_allclose(s['q50'], np.quantile(values, 0.5, axis=0), rtol=1e-5)
        assert s['q10'].shape == s['q90'].shape == s['mean'].shape
    # images: LeRobot's per-channel stats (3, 1, 1) in [0, 1] of the frames as decoded
    thermal = stats['observation.images.thermal']  # R = 30000+k >> 8 = 117, G = low byte, B = 0
    assert thermal['mean'].shape == (3, 1, 1) and int(thermal['count'][0]) == 352
    np.testing.assert_allclose(thermal['mean'][[0, 2], 0, 0], [117 / 255, 0.0], atol=1e-6)
    np.testing.assert_allclose(thermal['max'][0, 0, 0], 117 / 255, atol=1e-6)
    assert thermal['min'][1, 0, 0] >= 48 / 255 and thermal['std'][2, 0, 0] == 0
    wrist = stats['observation.images.wrist']  # frame k is k everywhere: 0..59 in 2 s at 30 Hz
    assert 0 <= wrist['min'].min() and wrist['max'].max() <= 61 / 255
    assert (wrist['q01'] <= wrist['q50']).all() and (wrist['q50'] <= wrist['q99']).all()


def test_an_old_v2_dataset_is_refused_with_one_line(dataset, tmp_path):
    from pi05_moe_training.dataset.layout import DatasetVersionError
    from pi05_moe_training.train.torch_dataset import TrainDataset

    out, _ = dataset
    old = tmp_path / 'old'
    (old / 'meta').mkdir(parents=True)
    info = json.loads((out / 'meta/info.json').read_text())
    (old / 'meta/info.json').write_text(json.dumps({**info, 'codebase_version': 'v2.0'}))
    (old / 'meta/episodes.jsonl').write_text('{"episode_index": 0}\n')
    for reader in (EpisodeDataset, TrainDataset):
        with pytest.raises(DatasetVersionError) as caught:
            reader(old)
        text = str(caught.value)
        assert "'v2.0'" in text and 're-run `pi05-moe convert' in text and '\n' not in text


def test_truncated_bag_is_detected_by_the_reader(bags):
    with pytest.raises(BagError, match='d_truncated'):
        with BagReader(bags['truncated']) as bag:
            list(bag.raw_messages())


def test_stale_or_missing_streams_reject_the_episode(tmp_path):
    # the wrist camera drops out from 0.5 s to 1.5 s: 40% of the frames would show a stale image
    bag = write_episode_bag(tmp_path / 'gap', gaps={'/wrist/image_raw': (0.5, 1.5)})
    with pytest.raises(EpisodeError, match=r'/wrist/image_raw is stale .* in 3\d of 95 frames'):
        read_episode(bag)
    ep = read_episode(bag, ExtractConfig(max_stale_fraction=0.6))  # tolerated, and reported
    assert ep.length == 95 and 35 <= ep.stale['wrist'] <= 45
    assert set(ep.stale) == {'wrist'}
    with pytest.raises(EpisodeError, match=r"missing topics.*/arm_controller/commands"):
        read_episode(write_episode_bag(tmp_path / 'no_cmd',
                                       skip_topics=('/arm_controller/commands',)))
    with pytest.raises(EpisodeError, match='min_frames'):
        read_episode(write_episode_bag(tmp_path / 'short', seconds=0.15))


@pytest.mark.parametrize('latency, zero_stamps', [(3600.0, False), (0.004, True)])
def test_alignment_across_clocks_and_without_stamps(tmp_path, latency, zero_stamps):
    """A recorder on another clock (wall vs sim: receive = stamp + 1 h), or drivers that leave
    header stamps at 0 (receive times are used): observation k still pairs with command k."""
    bag = write_episode_bag(tmp_path / 'bag', latency=latency, zero_stamps=zero_stamps)
    ep = read_episode(bag)
    assert ep.length == 95
    np.testing.assert_allclose(ep.action[:, 0], ep.state[:, 0], atol=1e-3)
    np.testing.assert_allclose(np.diff(ep.state[:, 0]), 0.02, atol=1e-3)


def test_cli_convert_and_refuses_to_overwrite(bags, tmp_path, capsys):
    out = tmp_path / 'ds'
    assert cli.main(['convert', str(bags['hot']), str(bags['truncated']), '--out', str(out),
                     '--no-progress', '--fps', '25']) == 0
    printed = capsys.readouterr().out
    assert '1 episodes' in printed and '1 skipped' in printed and 'd_truncated' in printed
    assert json.loads((out / 'meta/info.json').read_text())['fps'] == 25
    assert cli.main(['convert', str(bags['hot']), '--out', str(out), '--no-progress']) == 2
    assert 'exists' in capsys.readouterr().err
    assert cli.main(['convert', str(bags['hot']), '--out', str(out), '--no-progress',
                     '--overwrite', '--only-success']) == 0
    assert cli.main(['convert', str(bags['plain']), '--out', str(tmp_path / 'none'),
                     '--no-progress', '--only-success']) == 1  # success=False: nothing left


def test_config_yaml_overrides(bags, tmp_path):
    (tmp_path / 'c.yaml').write_text(
        'extract:\n  fps: 10\nlabels:\n  keywords:\n    l515: cube\n    thermal: zzz\n')
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    cfg = config_from_args(parser.parse_args(['x', '--out', 'y', '--config',
                                              str(tmp_path / 'c.yaml')]))
    assert cfg.extract.fps == 10 and cfg.labels.keywords['l515'] == 'cube'
    report = convert([bags['hot']], tmp_path / 'ds', cfg, progress=False)
    assert report.episodes[0]['labels']['active'] == {'l515': 1, 'thermal': 0}
    (tmp_path / 'bad.yaml').write_text('extract:\n  fsp: 10\n')
    with pytest.raises(ValueError, match="unknown parameter 'extract.fsp'"):
        config_from_args(parser.parse_args(['x', '--out', 'y', '--config',
                                            str(tmp_path / 'bad.yaml')]))
    (tmp_path / 'old.yaml').write_text('png_compression: 3\n')  # the PNG layout's option
    with pytest.raises(ValueError, match="unknown parameter 'png_compression'"):
        config_from_args(parser.parse_args(['x', '--out', 'y', '--config',
                                            str(tmp_path / 'old.yaml')]))


def test_files_roll_over_at_their_size_limit(bags, dataset, tmp_path):
    """With tiny file limits every episode opens new data and video files (and chunk indices
    move as in LeRobot); the frames read back are those of the one-file dataset."""
    from pi05_moe_training.dataset.convert import ConvertConfig

    out, _ = dataset
    cfg = ConvertConfig(data_files_size_in_mb=1e-4, video_files_size_in_mb=1e-4)
    small = tmp_path / 'small'
    convert(find_bags([bags['hot'].parent]), small, cfg, progress=False)
    episodes = read_episodes(small)
    assert [e['data/file_index'] for e in episodes] == [0, 1, 2, 3]
    key = 'observation.images.thermal'
    assert [e[f'videos/{key}/file_index'] for e in episodes] == [0, 1, 2, 3]
    assert [e[f'videos/{key}/from_timestamp'] for e in episodes] == [0.0] * 4
    assert len(list(small.glob(f'videos/{key}/chunk-000/file-*.mp4'))) == 4
    assert len(list(small.glob('data/chunk-000/file-*.parquet'))) == 4
    with pytest.raises(ValueError, match='data_files_size_in_mb=0'):
        ConvertConfig(data_files_size_in_mb=0)
    cameras = ['wrist', 'l515', 'thermal', 'l515_depth']
    one, many = (EpisodeDataset(p, horizon=3, cameras=cameras) for p in (out, small))
    assert len(one) == len(many) == 352
    for i in (0, 94, 95, 200, 351):
        a, b = one[i], many[i]
        assert (a['episode_index'], a['frame_index']) == (b['episode_index'], b['frame_index'])
        np.testing.assert_array_equal(a['actions'], b['actions'])
        assert set(a['images']) == set(b['images'])
        for camera in a['images']:
            np.testing.assert_array_equal(a['images'][camera], b['images'][camera])


def test_random_access_reads_the_same_frames_as_in_order(dataset):
    """The reader decodes forward when frames come in order and seeks otherwise; a 16-bit video
    (a key frame per camera message) is read from key frames only. Both give the same pixels."""
    out, _ = dataset
    info = json.loads((out / 'meta/info.json').read_text())['features']
    assert info['observation.images.thermal']['info']['key_frame_per_message'] is True
    assert info['observation.images.l515']['info']['key_frame_per_message'] is False
    cameras = ['wrist', 'l515', 'thermal', 'l515_depth']
    in_order = EpisodeDataset(out, horizon=1, cameras=cameras)
    frames = [in_order[i]['images'] for i in range(len(in_order))]
    shuffled = EpisodeDataset(out, horizon=1, cameras=cameras)
    for i in np.random.default_rng(0).permutation(len(shuffled)):
        images = shuffled[int(i)]['images']
        assert set(images) == set(frames[i])
        for camera, image in images.items():
            np.testing.assert_array_equal(image, frames[i][camera], err_msg=f'{camera} {i}')
    thermal = [int(f['thermal'][0, 0]) for f in frames[:95]]  # 9 Hz: messages 0..16, in order
    assert thermal == sorted(thermal) and thermal[0] == 30000 and thermal[-1] == 30016
