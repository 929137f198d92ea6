"""Reading what is left of a cut MCAP bag: the same messages as rosbags, up to the cut."""

import shutil

import numpy as np
import pytest
from rosbags.highlevel import AnyReader
from rosbags.rosbag2 import CompressionFormat, CompressionMode, StoragePlugin, Writer

from pi05_moe_training.bags.mcap_salvage import SalvagedMcap, SalvageError
from pi05_moe_training.bags.typestore import make_typestore
from pi05_moe_training.bags.writer import make_qos

S = 1_000_000_000
STORE = make_typestore()


def write_mcap(path, n=100, compress=False):
    """n 58 KB images (~17 per 1 MiB chunk) interleaved with small strings."""
    Header, Time = STORE.types['std_msgs/msg/Header'], STORE.types['builtin_interfaces/msg/Time']
    writer = Writer(path, version=9, storage_plugin=StoragePlugin.MCAP)
    if compress:
        writer.set_compression(CompressionMode.STORAGE, CompressionFormat.ZSTD)
    with writer:
        img = writer.add_connection('/cam', 'sensor_msgs/msg/Image', typestore=STORE,
                                    offered_qos_profiles=[make_qos('best_effort')])
        txt = writer.add_connection('/txt', 'std_msgs/msg/String', typestore=STORE)
        rng = np.random.default_rng(0)  # noise, so that compression keeps the size
        for i in range(n):
            t = 100 * S + i * S // 30
            msg = STORE.types['sensor_msgs/msg/Image'](
                Header(Time(100, i), 'cam'), 120, 160, 'rgb8', 0, 480,
                rng.integers(0, 255, 57600, dtype=np.uint8))
            writer.write(img, t, bytes(STORE.serialize_cdr(msg, 'sensor_msgs/msg/Image')))
            writer.write(txt, t + 1, bytes(STORE.serialize_cdr(
                STORE.types['std_msgs/msg/String'](f'm{i}'), 'std_msgs/msg/String')))
    return path


def reference(path):
    with AnyReader([path]) as reader:
        return [(c.topic, t, raw) for c, t, raw in reader.messages()]


@pytest.mark.parametrize('compress', [False, True])
def test_a_complete_bag_reads_like_rosbags(tmp_path, compress):
    bag = write_mcap(tmp_path / 'bag', compress=compress)
    salvaged = SalvagedMcap(bag)
    assert salvaged.stopped is None
    assert list(salvaged.messages()) == reference(bag)
    by_topic = {c.topic: c for c in salvaged.connections}
    assert by_topic['/cam'].msgtype == 'sensor_msgs/msg/Image' and by_topic['/cam'].msgcount == 100
    assert by_topic['/cam'].ext.offered_qos_profiles[0].reliability.name == 'BEST_EFFORT'
    assert (salvaged.start_ns, salvaged.end_ns) == (100 * S, 100 * S + 99 * S // 30 + 2)
    assert [m[0] for m in salvaged.messages({'/txt'})] == ['/txt'] * 100


@pytest.mark.parametrize('fraction', [0.3, 0.6, 0.9])
def test_a_cut_bag_yields_everything_before_the_cut(tmp_path, fraction):
    bag = write_mcap(tmp_path / 'bag', compress=True)
    full = reference(bag)
    mcap = bag / 'bag.mcap'
    data = mcap.read_bytes()
    mcap.write_bytes(data[:int(len(data) * fraction)])
    salvaged = SalvagedMcap(bag)
    got = list(salvaged.messages())
    assert 0 < len(got) < len(full) and got == full[:len(got)]
    assert salvaged.message_count == len(got)
    assert f'is cut at byte {int(len(data) * fraction)}' in salvaged.stopped


def test_split_files_are_read_in_order_until_the_cut(tmp_path):
    first, second = write_mcap(tmp_path / 'a', n=40), write_mcap(tmp_path / 'b', n=40)
    split = tmp_path / 'split'
    split.mkdir()
    shutil.copy(first / 'a.mcap', split / 'split_2.mcap')
    data = (second / 'b.mcap').read_bytes()
    (split / 'split_10.mcap').write_bytes(data[:len(data) // 2])
    got = list(SalvagedMcap(split).messages())
    assert got[:80] == reference(first)  # split_2 before split_10
    assert got[80:] == reference(second)[:len(got) - 80] and len(got) > 80


def test_not_an_mcap_file(tmp_path):
    (tmp_path / 'x.mcap').write_bytes(b'not an mcap file at all')
    with pytest.raises(SalvageError, match='bad magic'):
        SalvagedMcap(tmp_path)
    (tmp_path / 'empty').mkdir()
    with pytest.raises(SalvageError, match='no .mcap file'):
        SalvagedMcap(tmp_path / 'empty')
