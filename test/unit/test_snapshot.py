"""SnapshotBuffer: freshness, skew, optional streams and clock jumps on header stamps."""

from __future__ import annotations

import re
import threading

import pytest

from pi05_moe_policy.core.snapshot import Skip, Snapshot, SnapshotBuffer, SnapshotConfig

REQUIRED = {'wrist': '/wrist/image_raw', 'joint_states': '/joint_states'}
OPTIONAL = {'l515': '/l515/color/image_raw', 'thermal': '/thermal/image_raw'}


def make(**cfg) -> SnapshotBuffer:
    return SnapshotBuffer(SnapshotConfig(**{'max_age': 0.5, 'max_skew': 0.1, **cfg}), REQUIRED,
                          OPTIONAL)


def fill(buf: SnapshotBuffer, t: float, streams=('wrist', 'joint_states', 'l515', 'thermal')):
    for s in streams:
        buf.put(s, t, f'{s}@{t}')


def test_fresh_streams_give_a_snapshot_stamped_with_the_newest_required_stamp():
    buf = make()
    fill(buf, 100.0)
    buf.put('joint_states', 100.05, 'joints')
    snap = buf.build(now=100.2)
    assert isinstance(snap, Snapshot)
    assert (snap.stamp, snap.newest) == (100.05, 'joint_states')
    assert snap.values == {'wrist': 'wrist@100.0', 'joint_states': 'joints',
                           'l515': 'l515@100.0', 'thermal': 'thermal@100.0'}
    assert snap.left_out == {}


def test_latest_message_wins():
    buf = make()
    fill(buf, 10.0)
    buf.put('wrist', 10.02, 'newer')
    assert buf.build(now=10.1).values['wrist'] == 'newer'


@pytest.mark.parametrize('stream', list(REQUIRED))
def test_missing_required_stream_skips_naming_its_topic(stream):
    buf = make()
    fill(buf, 5.0, [s for s in (*REQUIRED, *OPTIONAL) if s != stream])
    skip = buf.build(now=5.1)
    assert isinstance(skip, Skip)
    assert (skip.stream, skip.reason) == (stream, 'missing')
    assert REQUIRED[stream] in skip.text


def test_stale_required_stream_skips_with_its_age():
    buf = make()
    fill(buf, 10.0)
    buf.put('joint_states', 10.55, 'j')
    skip = buf.build(now=10.6)  # wrist is 0.6 s old > max_age 0.5
    assert (skip.stream, skip.reason) == ('wrist', 'stale')
    assert '/wrist/image_raw' in skip.text and '0.600 s old' in skip.text


def test_unstamped_messages_are_named_as_such():
    buf = make()
    fill(buf, 1000.0)
    buf.put('wrist', 0.0, 'no header stamp')
    skip = buf.build(now=1000.1)
    assert skip.reason == 'stale' and 'header stamp is zero' in skip.text


def test_age_exactly_max_age_is_still_fresh():
    buf = make(max_age=0.5, max_skew=1.0)
    fill(buf, 10.0)
    assert isinstance(buf.build(now=10.5), Snapshot)


def test_per_stream_max_age_override():
    buf = make(max_age=0.2, max_skew=1.0, stream_max_age={'wrist': 1.0})
    fill(buf, 10.0, ['wrist'])
    buf.put('joint_states', 10.6, 'j')
    assert isinstance(buf.build(now=10.7), Snapshot)  # wrist 0.7 s old, allowed 1.0 s
    buf.put('joint_states', 10.8, 'j')
    skip = buf.build(now=11.1)  # wrist 1.1 s old
    assert (skip.stream, skip.reason) == ('wrist', 'stale')


def test_stream_max_age_for_an_unknown_stream_is_an_error():
    with pytest.raises(ValueError, match='wirst'):
        make(stream_max_age={'wirst': 1.0})


def test_required_stamps_too_far_apart_skip_naming_both_topics():
    buf = make(max_skew=0.1)
    buf.put('wrist', 10.0, 'w')
    buf.put('joint_states', 10.25, 'j')
    skip = buf.build(now=10.3)
    assert (skip.stream, skip.reason) == ('wrist', 'skew')
    assert '/wrist/image_raw' in skip.text and '/joint_states' in skip.text
    assert '0.250 s' in skip.text


def test_a_stamp_from_the_future_is_a_clock_mismatch():
    buf = make()
    fill(buf, 1_700_000_000.0)  # wall-clock stamps while the node runs on sim time
    skip = buf.build(now=12.0)
    assert skip.reason == 'future' and 'use_sim_time' in skip.text


@pytest.mark.parametrize('problem', ['missing', 'stale', 'skew', 'future'])
def test_an_unusable_optional_camera_is_left_out_not_fatal(problem):
    buf = make(max_age=0.5, max_skew=0.1)
    fill(buf, 20.0, ['wrist', 'joint_states', 'thermal'])
    t_l515 = {'stale': 19.4, 'skew': 19.85, 'future': 20.5}.get(problem)
    if t_l515 is not None:
        buf.put('l515', t_l515, 'old')
    snap = buf.build(now=20.1)
    assert isinstance(snap, Snapshot)
    assert set(snap.values) == {'wrist', 'joint_states', 'thermal'}
    assert '/l515/color/image_raw' in snap.left_out['l515']
    assert 'l515' not in snap.stamps


def test_nothing_new_returns_none_and_news_builds_again():
    buf = make()
    fill(buf, 1.0)
    assert isinstance(buf.build(now=1.05), Snapshot)
    assert buf.build(now=1.1) is None  # same required stamps: no new observation
    buf.put('l515', 1.08, 'only an optional stream moved')
    assert buf.build(now=1.12) is None
    buf.put('joint_states', 1.09, 'j')
    assert buf.build(now=1.12).stamp == 1.09


def test_clock_jumping_back_drops_everything():
    buf = make()
    fill(buf, 50.0)
    assert isinstance(buf.build(now=50.1), Snapshot)
    skip = buf.build(now=3.0)  # bag restarted
    assert skip.reason == 'clock_jump' and '50.100' in skip.text
    assert buf.build(now=3.1).reason == 'missing'  # the old messages are gone
    fill(buf, 3.05)
    assert buf.build(now=3.1).stamp == 3.05  # and the observation time can go back


def test_streams_must_be_known_and_not_both_required_and_optional():
    buf = make()
    with pytest.raises(KeyError):
        buf.put('depth', 1.0, 'x')
    with pytest.raises(ValueError, match='wrist'):
        SnapshotBuffer(SnapshotConfig(), REQUIRED, {'wrist': '/w'})


@pytest.mark.parametrize('field, value', [('max_age', 0.0), ('max_skew', -0.1),
                                          ('stream_max_age', {'wrist': 0.0})])
def test_config_rejects_bad_values_quoting_them(field, value):
    with pytest.raises(ValueError, match=re.escape(f'SnapshotConfig.{field}={value!r}')):
        SnapshotConfig(**{field: value})


def test_put_and_build_from_several_threads():
    """Callbacks put from the executor thread while the worker builds: no torn reads."""
    buf = make(max_age=1e9, max_skew=1e9)
    stop = threading.Event()

    def writer():
        t = 0.0
        while not stop.is_set():
            t += 0.001
            for s in ('wrist', 'joint_states'):
                buf.put(s, t, (s, t))

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        built = 0
        while built < 50:
            snap = buf.build(now=5.0)
            if isinstance(snap, Snapshot):
                assert snap.values['wrist'] == ('wrist', snap.stamps['wrist'])
                built += 1
    finally:
        stop.set()
        thread.join()
