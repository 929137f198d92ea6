"""Writes small, real episode bags for the converter tests (rosbags, no ROS).

The values encode time so tests can check the alignment exactly:
- joint state j at header time s is ``s + j`` (100 Hz);
- the command at header time s is ``[s, -s, ...]`` (50 Hz), received ``latency`` later, and it
  carries no header stamp (Float64MultiArray);
- every pixel of image k of a camera equals ``k % 251`` (8-bit) or ``30000 + k`` (16-bit).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pi05_moe_training.bags.episode_meta import EpisodeMeta
from pi05_moe_training.bags.typestore import make_typestore
from pi05_moe_training.bags.writer import BagWriter

JOINTS = [f'joint{i}' for i in range(6)] + ['gripper']
ACTION_DIM = 7
CAMERA_RATES = {  # topic -> (Hz, encoding)
    '/l515/color/image_raw': (30.0, 'rgb8'),
    '/wrist/image_raw': (30.0, 'rgb8'),
    '/thermal/image_raw': (9.0, 'mono16'),
    '/l515/depth/image_rect_raw': (30.0, '16UC1'),
}
STATE_HZ, COMMAND_HZ = 100.0, 50.0
SIZE = (24, 32)  # (H, W): small, fast


def image_value(k: int, encoding: str) -> int:
    return 30000 + k if encoding in ('mono16', '16UC1') else k % 251


def _stamp(store, seconds: float):
    sec = int(np.floor(seconds))
    return store.types['builtin_interfaces/msg/Time'](sec=sec, nanosec=int(
        round((seconds - sec) * 1e9)))


def _header(store, seconds: float):
    return store.types['std_msgs/msg/Header'](stamp=_stamp(store, seconds), frame_id='')


def write_episode_bag(path: Path, *, prompt: str = 'lift the hot cube', seconds: float = 2.0,
                      storage: str = 'mcap', with_metadata: bool = True,
                      skip_topics: tuple[str, ...] = (), t0: float = 1000.0,
                      latency: float = 0.004, success: bool | None = True,
                      command_fn=None, gaps: dict[str, tuple[float, float]] | None = None,
                      zero_stamps: bool = False) -> Path:
    """Write one episode bag at ``path`` and return it.

    ``with_metadata=False`` writes what ``ros2 bag record`` would: no custom_data, no
    /episode/metadata, the prompt as a /pi05_moe/prompt message. ``command_fn(s) -> (A,)``
    replaces the default command ``[s, -s, s, -s, ...]``. ``gaps`` maps a topic to a (start,
    stop) interval in seconds from ``t0`` during which it publishes nothing (a dropout).
    ``zero_stamps`` leaves every header stamp at 0, as some drivers do.
    """
    store = make_typestore()
    types = store.types
    writer = BagWriter(path, store, storage=storage)

    def add(topic, msgtype):
        if topic not in skip_topics:
            writer.add_topic(topic, msgtype)
            return True
        return False

    def ns(seconds_: float) -> int:
        return int(round(seconds_ * 1e9))

    def header(s: float):
        return _header(store, 0.0 if zero_stamps else s)

    def silent(topic: str, s: float) -> bool:
        start, stop = (gaps or {}).get(topic, (0.0, 0.0))
        return start <= s - t0 < stop

    if add('/joint_states', 'sensor_msgs/msg/JointState'):
        for k in range(int(seconds * STATE_HZ)):
            s = t0 + k / STATE_HZ
            msg = types['sensor_msgs/msg/JointState'](
                header=header(s), name=list(JOINTS),
                position=np.array([s + j for j in range(len(JOINTS))], dtype=np.float64),
                velocity=np.zeros(0), effort=np.zeros(0))
            writer.write('/joint_states', ns(s + latency), msg)
    if add('/arm_controller/commands', 'std_msgs/msg/Float64MultiArray'):
        layout = types['std_msgs/msg/MultiArrayLayout'](dim=[], data_offset=0)
        for k in range(int(seconds * COMMAND_HZ)):
            s = t0 + k / COMMAND_HZ
            data = (command_fn(s) if command_fn is not None else
                    np.array([s if j % 2 == 0 else -s for j in range(ACTION_DIM)]))
            msg = types['std_msgs/msg/Float64MultiArray'](layout=layout,
                                                          data=np.asarray(data, np.float64))
            writer.write('/arm_controller/commands', ns(s + latency), msg)
    for topic, (hz, encoding) in CAMERA_RATES.items():
        if not add(topic, 'sensor_msgs/msg/Image'):
            continue
        channels, dtype = (3, np.uint8) if encoding == 'rgb8' else (1, np.uint16)
        height, width = SIZE
        for k in range(int(seconds * hz)):
            s = t0 + k / hz
            if silent(topic, s):
                continue
            pixels = np.full((height, width * channels), image_value(k, encoding), dtype=dtype)
            msg = types['sensor_msgs/msg/Image'](
                header=header(s), height=height, width=width, encoding=encoding,
                is_bigendian=0, step=width * channels * pixels.itemsize,
                data=pixels.view(np.uint8).ravel())
            writer.write(topic, ns(s + latency), msg)
    if not with_metadata and add('/pi05_moe/prompt', 'std_msgs/msg/String'):
        writer.write('/pi05_moe/prompt', ns(t0), types['std_msgs/msg/String'](data=prompt))
    if with_metadata:
        writer.set_metadata(EpisodeMeta(prompt=prompt, task='lift_cube', success=success,
                                        robot='testbot', operator='pytest',
                                        joint_names=list(JOINTS)))
    writer.close()
    return path
