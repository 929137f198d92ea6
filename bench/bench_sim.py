"""Benchmark the simulated robot: physics step, per-camera render and publish-equivalent cost,
and the real-time factor of a node-like loop (all streams at their configured rates).

Usage: MUJOCO_GL=egl python bench/bench_sim.py [--seconds 5] [--reps 50]
"Publish-equivalent" = numpy -> sensor_msgs/Image via the shared codec, then CDR serialisation
(what rclpy does before handing bytes to DDS); it needs rclpy importable, not rclpy.init().
"""

import argparse
import time

import numpy as np
from rclpy.serialization import serialize_message
from sensor_msgs.msg import Image

from pi05_moe_bringup.sim.config import SimConfig
from pi05_moe_bringup.sim.expert import ScriptedExpert
from pi05_moe_bringup.sim.robot import SimRobot
from pi05_moe_bringup.sim.schedule import RateSchedule
from pi05_moe_policy.core.image_codec import numpy_to_image


def publish_equivalent(array: np.ndarray, encoding: str) -> None:
    serialize_message(numpy_to_image(array, encoding, Image()))


def ms_per_call(fn, reps: int) -> float:
    fn()  # warm-up (first renders allocate GL buffers)
    start = time.perf_counter()
    for _ in range(reps):
        fn()
    return (time.perf_counter() - start) / reps * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--seconds', type=float, default=5.0, help='sim seconds for the RTF loop')
    parser.add_argument('--reps', type=int, default=50, help='repetitions per timing')
    args = parser.parse_args()
    cfg = SimConfig()
    with SimRobot(cfg) as robot:
        expert = ScriptedExpert(robot.scene)
        expert.reset(robot.task.target)
        robot.set_action(expert.act(0.0))
        step_ms = ms_per_call(robot.step, args.reps * 10)
        (rgb, depth), wrist, thermal = robot.l515(), robot.wrist(), robot.thermal()
        rows = [
            ('l515 rgb+depth', ms_per_call(robot.l515, args.reps),
             ms_per_call(lambda: (publish_equivalent(rgb, 'rgb8'),
                                  publish_equivalent(depth, '16UC1')), args.reps)),
            ('wrist rgb', ms_per_call(robot.wrist, args.reps),
             ms_per_call(lambda: publish_equivalent(wrist, 'rgb8'), args.reps)),
            ('thermal mono16', ms_per_call(robot.thermal, args.reps),
             ms_per_call(lambda: publish_equivalent(thermal, 'mono16'), args.reps)),
        ]
        print(f'control step (physics, {robot.substeps} substeps): {step_ms:.3f} ms')
        print(f'{"camera":<16}{"render ms":>10}{"publish ms":>12}')
        for name, render_ms, pub_ms in rows:
            print(f'{name:<16}{render_ms:>10.2f}{pub_ms:>12.2f}')

        # Node-like loop, as fast as it goes: action + step every tick, cameras when due.
        robot.reset(seed=1)
        expert.reset(robot.task.target)
        schedules = {'l515': RateSchedule(cfg.l515_hz), 'wrist': RateSchedule(cfg.wrist_hz),
                     'thermal': RateSchedule(cfg.thermal_hz)}
        ticks = int(round(args.seconds / cfg.control_period_s))
        start = time.perf_counter()
        for _ in range(ticks):
            robot.set_action(expert.act(robot.time))
            robot.step()
            if schedules['l515'].due(robot.time):
                rgb, depth = robot.l515()
                publish_equivalent(rgb, 'rgb8')
                publish_equivalent(depth, '16UC1')
            if schedules['wrist'].due(robot.time):
                publish_equivalent(robot.wrist(), 'rgb8')
            if schedules['thermal'].due(robot.time):
                publish_equivalent(robot.thermal(), 'mono16')
        wall = time.perf_counter() - start
        sim = ticks * cfg.control_period_s
        print(f'node-like loop ({cfg.l515_hz:g}/{cfg.wrist_hz:g}/{cfg.thermal_hz:g} Hz '
              f'l515/wrist/thermal, expert IK each tick): {sim:.1f} sim s in {wall:.2f} wall s '
              f'-> max real-time factor {sim / wall:.1f}')


if __name__ == '__main__':
    main()
