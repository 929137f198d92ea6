"""Child process: records an episode like the recorder does, then waits to be killed with -9.

Messages arrive interleaved in time order (joint states 100 Hz, commands 50 Hz, three cameras
30/30/9 Hz at 120x160) through the real :class:`EpisodeRecorder`; the prompt is latched and
written at the episode start. After ``seconds`` of data it prints ``written`` and sleeps: the
parent kills it, so the bag is left as ``kill -9`` leaves it (no metadata.yaml, no MCAP footer,
the chunk being filled lost).

Usage: killed_recording.py OUT_DIR SECONDS
"""

import sys
import time
from pathlib import Path

import numpy as np

from pi05_moe_training.bags.episode_meta import EpisodeMeta
from pi05_moe_training.bags.typestore import make_typestore
from pi05_moe_training.record.recording import EpisodeRecorder

JOINTS = [f'joint{i}' for i in range(6)] + ['gripper']
CAMERAS = {'/l515/color/image_raw': (30, 'rgb8'), '/wrist/image_raw': (30, 'rgb8'),
           '/thermal/image_raw': (9, 'mono16')}
T0 = 1000.0


def main() -> None:
    out, seconds = Path(sys.argv[1]), float(sys.argv[2])
    store = make_typestore()
    types = store.types
    recorder = EpisodeRecorder(out, EpisodeMeta(prompt='lift the red cube'), store)
    recorder.add_topic('/joint_states', 'sensor_msgs/msg/JointState')
    recorder.add_topic('/arm_controller/commands', 'std_msgs/msg/Float64MultiArray')
    recorder.add_topic('/pi05_moe/prompt', 'std_msgs/msg/String', latched=True)
    for topic in CAMERAS:
        recorder.add_topic(topic, 'sensor_msgs/msg/Image')

    def header(s: float):
        sec = int(s)
        return types['std_msgs/msg/Header'](
            stamp=types['builtin_interfaces/msg/Time'](sec=sec, nanosec=round((s - sec) * 1e9)),
            frame_id='')

    events = [(T0 + k / 100, '/joint_states', k) for k in range(int(seconds * 100))]
    events += [(T0 + k / 50, '/arm_controller/commands', k) for k in range(int(seconds * 50))]
    for topic, (hz, _) in CAMERAS.items():
        events += [(T0 + k / hz, topic, k) for k in range(int(seconds * hz))]
    recorder.write('/pi05_moe/prompt', int(T0 * 1e9), types['std_msgs/msg/String'](
        data='lift the red cube'))
    print(recorder.start(int(T0 * 1e9)), flush=True)
    layout = types['std_msgs/msg/MultiArrayLayout'](dim=[], data_offset=0)
    for s, topic, k in sorted(events):
        if topic == '/joint_states':
            msg = types['sensor_msgs/msg/JointState'](
                header=header(s), name=list(JOINTS),
                position=np.array([s + j for j in range(7)]), velocity=np.zeros(0),
                effort=np.zeros(0))
        elif topic == '/arm_controller/commands':
            msg = types['std_msgs/msg/Float64MultiArray'](
                layout=layout, data=np.array([s if j % 2 == 0 else -s for j in range(7)]))
        else:
            _, encoding = CAMERAS[topic]
            channels, dtype = (3, np.uint8) if encoding == 'rgb8' else (1, np.uint16)
            pixels = np.full((120, 160 * channels), k % 251, dtype=dtype)
            msg = types['sensor_msgs/msg/Image'](
                header=header(s), height=120, width=160, encoding=encoding, is_bigendian=0,
                step=160 * channels * pixels.itemsize, data=pixels.view(np.uint8).ravel())
        recorder.write(topic, int(round((s + 0.004) * 1e9)), msg, block=True)
    while recorder.status()['queued_mb'] > 0:  # the writer thread has handed it all to rosbags
        time.sleep(0.05)
    print('written', flush=True)
    time.sleep(600)


if __name__ == '__main__':
    main()
