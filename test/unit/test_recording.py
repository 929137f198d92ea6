"""Bag writing without ROS: BagWriter, EpisodeRecorder sessions, metadata, recorder config."""

import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from pi05_moe_training.bags.episode_meta import (
    METADATA_TOPIC,
    EpisodeMeta,
    from_custom_data,
    from_json,
)
from pi05_moe_training.bags.reader import BagReader
from pi05_moe_training.bags.typestore import make_typestore
from pi05_moe_training.bags.writer import BagWriter, BagWriterError, make_qos
from pi05_moe_training.record.recording import (
    DEFAULT_TOPICS,
    EpisodeRecorder,
    RecorderConfig,
    subscription_qos,
)

CONFIG_DIR = Path(__file__).resolve().parents[2] / 'pi05_moe_training' / 'config'


def string_msg(store, text):
    return store.types['std_msgs/msg/String'](data=text)


def cdr(store, text):
    return bytes(store.serialize_cdr(string_msg(store, text), 'std_msgs/msg/String'))


@pytest.mark.parametrize('storage', ['mcap', 'sqlite3'])
def test_bag_writer_round_trip_with_metadata(tmp_path, storage):
    store = make_typestore()
    writer = BagWriter(tmp_path / 'bag', store, storage=storage)
    writer.add_topic('/chatter', 'std_msgs/msg/String', [make_qos('best_effort')])
    for i in range(50):  # mix raw CDR bytes and message objects
        data = cdr(store, f'm{i}') if i % 2 else string_msg(store, f'm{i}')
        assert writer.write('/chatter', 1_000 + i, data)
    meta = EpisodeMeta(prompt='lift the hot cube', success=True, operator='ana')
    writer.set_metadata(meta)
    summary = writer.close()
    assert summary.counts == {'/chatter': 50, METADATA_TOPIC: 1}
    assert (summary.start_ns, summary.end_ns, summary.dropped) == (1_000, 1_049, 0)

    text = (tmp_path / 'bag' / 'metadata.yaml').read_text()
    custom = yaml.safe_load(text)['rosbag2_bagfile_information']['custom_data']
    assert custom['pi05_moe.prompt'] == 'lift the hot cube'  # readable without our code
    assert from_custom_data(custom) == meta
    with BagReader(tmp_path / 'bag') as bag:
        assert bag.info.storage == storage
        assert [m.data for _, _, m in bag.messages(['/chatter'])] == [f'm{i}' for i in range(50)]
        assert bag.episode_meta() == meta
        (_, stamp, raw), = bag.raw_messages([METADATA_TOPIC])
        assert stamp == 1_000  # stamped at the episode's start, before every other message
        assert from_json(bag.typestore.deserialize_cdr(raw, 'std_msgs/msg/String').data) == meta


def test_bag_writer_rejects_bad_use(tmp_path):
    store = make_typestore()
    writer = BagWriter(tmp_path / 'bag', store)
    with pytest.raises(BagWriterError, match='unknown to the typestore'):
        writer.add_topic('/x', 'no_pkg/msg/Nothing')
    with pytest.raises(BagWriterError, match='before add_topic'):
        writer.write('/y', 0, b'')
    writer.close()
    with pytest.raises(BagWriterError, match='closed'):
        writer.write('/y', 0, b'')
    with pytest.raises(BagWriterError, match='exists'):
        BagWriter(tmp_path / 'bag', store)


def test_full_queue_drops_and_counts_instead_of_blocking(tmp_path):
    store = make_typestore()
    writer = BagWriter(tmp_path / 'bag', store, max_queue_bytes=10_000)
    writer.add_topic('/chatter', 'std_msgs/msg/String')
    payload = cdr(store, 'x' * 4000)
    gate = threading.Event()
    # Hold the worker on a first message object whose serialisation waits for the gate.
    original = store.serialize_cdr

    def slow(msg, typename, *args, **kwargs):
        gate.wait(timeout=10)
        return original(msg, typename, *args, **kwargs)

    store.serialize_cdr = slow
    assert writer.write('/chatter', 0, string_msg(store, 'first'))
    accepted = [writer.write('/chatter', i, payload) for i in range(1, 6)]
    gate.set()
    summary = writer.close()
    assert accepted.count(False) == writer.dropped == summary.dropped >= 3
    assert summary.counts['/chatter'] == 1 + accepted.count(True)


def test_episode_recorder_sessions(tmp_path):
    store = make_typestore()
    rec = EpisodeRecorder(tmp_path, EpisodeMeta(prompt='p1'), store)
    rec.add_topic('/chatter', 'std_msgs/msg/String')
    rec.add_topic('/prompt', 'std_msgs/msg/String', latched=True)
    assert not rec.write('/prompt', 5, cdr(store, 'latched prompt'))  # before any episode
    assert not rec.write('/chatter', 6, cdr(store, 'lost: not recording'))
    first = rec.start(100)
    assert rec.recording and rec.current_path == first
    assert rec.write('/chatter', 101, cdr(store, 'a'))
    rec.update_meta(operator='bob')
    s1 = rec.stop(success=True)
    second = rec.start(200, prompt='p2')
    rec.write('/chatter', 201, cdr(store, 'b'))
    s2 = rec.stop()
    third = rec.start(300)
    rec.stop(discard=True)
    assert rec.stop() is None and not third.exists()
    assert [s.path for s in rec.summaries] == [first, second] and first != second

    with BagReader(s1.path) as bag:
        msgs = {(t, m.data) for t, _, m in bag.messages(['/chatter', '/prompt'])}
        assert msgs == {('/chatter', 'a'), ('/prompt', 'latched prompt')}
        meta = bag.episode_meta()
        assert (meta.prompt, meta.success, meta.operator) == ('p1', True, 'bob')
    with BagReader(s2.path) as bag:
        meta = bag.episode_meta()
        assert (meta.prompt, meta.success, meta.operator) == ('p2', None, 'bob')
        # the latched prompt is written again at the start of every episode
        assert [(t, s) for t, s, _ in bag.raw_messages(['/prompt'])] == [('/prompt', 200)]
    with pytest.raises(BagWriterError, match='already being recorded'):
        rec.start(400)
        rec.start(401)
    rec.stop()


def test_subscription_qos_matches_every_publisher():
    assert subscription_qos([]) == ('reliable', 'volatile')
    assert subscription_qos([('reliable', 'volatile')]) == ('reliable', 'volatile')
    assert subscription_qos([('reliable', 'volatile'), ('best_effort', 'volatile')]) == (
        'best_effort', 'volatile')
    assert subscription_qos([('reliable', 'transient_local')]) == ('reliable', 'transient_local')
    assert subscription_qos([('reliable', 'transient_local'), ('reliable', 'volatile')]) == (
        'reliable', 'volatile')


def test_episode_meta_validation_and_json():
    meta = EpisodeMeta(prompt='héllo', success=False, expert_cameras=['l515', 'thermal'])
    assert from_json(meta.to_json()) == meta
    assert meta.camera_roles == {'base': 'wrist', 'experts': ['l515', 'thermal']}
    with pytest.raises(ValueError, match="base_camera='l515'"):
        EpisodeMeta(base_camera='l515')
    with pytest.raises(ValueError, match="success='yes'"):
        EpisodeMeta(success='yes')
    with pytest.raises(ValueError, match='unknown field'):
        meta.updated(promt='typo')
    with pytest.raises(ValueError, match='not JSON'):
        from_json('{nope')


def test_recorder_config_validates_and_matches_ros2_bag_record_files():
    with pytest.raises(ValueError, match="storage='zip'"):
        RecorderConfig(storage='zip')
    with pytest.raises(ValueError, match='topics'):
        RecorderConfig(topics=['relative/topic'])
    listed = [line.strip() for line in (CONFIG_DIR / 'record_topics.txt').read_text().splitlines()
              if line.strip() and not line.startswith('#')]
    assert listed == [*DEFAULT_TOPICS, METADATA_TOPIC]
    overrides = yaml.safe_load((CONFIG_DIR / 'qos_overrides.yaml').read_text())
    assert set(overrides) == set(listed)
    for qos in overrides.values():
        make_qos(qos['reliability'], qos['durability'], qos['depth'], qos['history'])  # valid
    assert overrides['/pi05_moe/prompt']['durability'] == 'transient_local'


def test_make_typestore_knows_our_messages():
    store = make_typestore()
    for name in ('pi05_moe_msgs/msg/ActionChunk', 'pi05_moe_msgs/msg/RoutingWeights',
                 'sensor_msgs/msg/Image', 'trajectory_msgs/msg/JointTrajectory'):
        assert name in store.fielddefs
    chunk = store.types['pi05_moe_msgs/msg/ActionChunk']
    assert 'routing_weights' in chunk.__dataclass_fields__
    msg = store.types['pi05_moe_msgs/msg/RoutingWeights'](
        header=store.types['std_msgs/msg/Header'](
            stamp=store.types['builtin_interfaces/msg/Time'](sec=1, nanosec=2), frame_id=''),
        expert_names=['l515', 'thermal'], weights=np.array([0.25, 0.75], np.float32),
        present=np.array([1, 0], np.uint8), base_camera='wrist', chunk_id=7)
    back = store.deserialize_cdr(store.serialize_cdr(msg, 'pi05_moe_msgs/msg/RoutingWeights'),
                                 'pi05_moe_msgs/msg/RoutingWeights')
    assert back.expert_names == ['l515', 'thermal'] and back.chunk_id == 7
    assert json.dumps(back.weights.tolist()) == '[0.25, 0.75]'


def test_worker_failure_is_reported_not_swallowed(tmp_path):
    store = make_typestore()
    rec = EpisodeRecorder(tmp_path, EpisodeMeta(), store)
    rec.add_topic('/chatter', 'std_msgs/msg/String')
    rec.start(0)
    rec.write('/chatter', 1, object())  # not a String: the worker cannot serialise it
    rec.write('/chatter', 2, cdr(store, 'after the failure'))
    deadline = time.monotonic() + 10
    while not rec.status()['error'] and time.monotonic() < deadline:
        time.sleep(0.01)
    assert rec.status()['error']
    with pytest.raises(BagWriterError, match='failed'):
        rec.stop()
    assert not rec.recording


def test_zstd_chunk_compression_round_trip_and_config(tmp_path):
    """compression='zstd': MCAP chunks compressed (issue #18 item 11), same messages back,
    metadata.yaml as rosbag2 writes it for MCAP storage compression; bad values are refused."""
    store = make_typestore()
    sizes = {}
    for compression in ('none', 'zstd'):
        writer = BagWriter(tmp_path / compression, store, compression=compression)
        writer.add_topic('/chatter', 'std_msgs/msg/String')
        for i in range(2000):  # compressible: one repeated text
            writer.write('/chatter', 1_000 + i, cdr(store, f'hello {i % 10} ' * 20))
        writer.close()
        mcap, = (tmp_path / compression).glob('*.mcap')
        sizes[compression] = mcap.stat().st_size
        with BagReader(tmp_path / compression) as bag:
            texts = [m.data for _, _, m in bag.messages(['/chatter'])]
        assert texts == [f'hello {i % 10} ' * 20 for i in range(2000)]
        info = yaml.safe_load((tmp_path / compression / 'metadata.yaml').read_text())
        assert info['rosbag2_bagfile_information']['compression_mode'] == ''
    assert sizes['zstd'] < sizes['none'] / 5, sizes
    assert b'zstd' in next((tmp_path / 'zstd').glob('*.mcap')).read_bytes()
    with pytest.raises(BagWriterError, match="compression='lz5'"):
        BagWriter(tmp_path / 'bad', store, compression='lz5')
    with pytest.raises(BagWriterError, match="needs storage='mcap', not 'sqlite3'"):
        BagWriter(tmp_path / 'bad2', store, storage='sqlite3', compression='zstd')
    with pytest.raises(ValueError, match="compression='gzip'"):
        RecorderConfig(compression='gzip')
    with pytest.raises(ValueError, match="compression='zstd'"):
        RecorderConfig(storage='sqlite3', compression='zstd')
    assert RecorderConfig(compression='zstd').compression == 'zstd'
