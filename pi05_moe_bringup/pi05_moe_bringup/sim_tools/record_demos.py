"""record scripted-expert demonstrations from the simulated robot (in-process, no DDS).

Runs the MuJoCo robot (pi05_moe_bringup.sim) and its scripted IK expert in this process and
writes one bag per episode through the same bag writer as `pi05-moe record`, with the topics,
types, encodings and rates sim_node publishes:
  /joint_states every control step, /l515/color/image_raw + /l515/depth/image_rect_raw and
  /wrist/image_raw at 30 Hz, /thermal/image_raw (mono16 centi-K) at 9 Hz, /pi05_moe/prompt,
  and the expert's joint targets on /arm_controller/commands (Float64MultiArray) = the actions.
Stamps and bag times are sim time plus the wall-clock second the episode started (so
`ros2 bag info` and Foxglove show the recording date; the notes say sim_time_offset_s;
--sim-stamps keeps raw sim time, which starts at 0 and shows as 1970).
Each control step k observes the robot at t_k, then commands the expert's target for the next
period at t_k, so the converter pairs observation k with command k. The metadata holds the
prompt, task, success (the sim's own test), the operator "scripted_expert" and the camera
roles. Tasks alternate; episode i uses seed --seed + i. With --action-noise the robot runs the
expert's targets plus a smooth random offset (sim/action_noise.py) while the bag keeps the clean
targets as the actions (DART-style data: off-path states labelled with the way back).

Example:
  pi05-moe sim-demos --out bags/sim --episodes 20
  pi05-moe sim-demos --out bags/dart --episodes 20 --action-noise 0.02 --seed 20000
  pi05-moe convert bags/sim --out datasets/sim --only-success
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pi05_moe_policy import topics
from pi05_moe_policy.core.image_codec import numpy_to_image
from pi05_moe_policy.core.stamps import sec_nanosec, sec_to_ns
from pi05_moe_policy.params import check, param
from pi05_moe_training.bags.episode_meta import EpisodeMeta
from pi05_moe_training.bags.typestore import make_typestore
from pi05_moe_training.bags.writer import BagSummary, make_qos
from pi05_moe_training.record.recording import EpisodeRecorder

COMMANDS_TOPIC = topics.COMMANDS
PROMPT_TOPIC = topics.PROMPT
STATE_TOPIC = topics.JOINT_STATES
SENSOR_QOS = make_qos('best_effort', 'volatile', 5)  # what sim_node offers (qos.SENSOR)
COMMAND_QOS = make_qos('reliable', 'volatile', 10)  # qos.COMMAND, as executor_node offers
PROMPT_QOS = make_qos('reliable', 'transient_local', 1)  # qos.PROMPT
IMAGES = {'l515': topics.L515_COLOR, 'wrist': topics.WRIST_IMAGE, 'thermal': topics.THERMAL_IMAGE}


@dataclass
class SimDemoConfig:
    """What `pi05-moe sim-demos` records."""

    tasks: list[str] = param(['lift_red_cube', 'lift_hot_cube'], 'tasks, used in turn')
    episodes: int = param(10, 'number of episodes (bags)')
    seed: int = param(0, 'seed of episode 0; episode i uses seed + i')
    hold_s: float = param(0.5, 'seconds recorded after the expert\'s plan ends')
    depth: bool = param(True, 'also record /l515/depth/image_rect_raw (16UC1 mm)')
    storage: str = param('mcap', "'mcap' or 'sqlite3'")
    compression: str = param('none', "'zstd': compress MCAP chunks (smaller bags, a little CPU)")
    action_noise_rad: float = param(0.0, 'DART: std (rad) of a smooth random offset added to '
                                    'the arm targets the robot executes, while the bag keeps '
                                    "the expert's clean targets as the actions (0: off)")
    noise_tau_s: float = param(0.3, 'correlation time (s) of that offset')
    wall_stamps: bool = param(True, 'stamp each episode at sim time + the wall-clock second it '
                              'started (tools show the recording date, not 1970); the notes '
                              'say the offset (sim_time_offset_s)')

    def __post_init__(self):
        check(bool(self.tasks), self, 'tasks', 'at least one task')
        check(self.episodes >= 1, self, 'episodes', '>= 1')
        check(self.seed >= 0, self, 'seed', '>= 0')
        check(self.hold_s >= 0, self, 'hold_s', '>= 0')
        check(0 <= self.action_noise_rad <= 0.2, self, 'action_noise_rad', 'in [0, 0.2] rad')
        check(self.noise_tau_s > 0, self, 'noise_tau_s', '> 0')
        check(self.compression in ('none', 'zstd'), self, 'compression', "'none' or 'zstd'")
        check(self.compression == 'none' or self.storage == 'mcap', self, 'compression',
              "'none' with storage='sqlite3' (zstd compresses MCAP chunks: storage='mcap')")


class _Messages:
    """rosbags message objects of the sim's topics, built from numpy arrays."""

    def __init__(self, store):
        self.t = store.types

    def header(self, seconds: float, frame_id: str = ''):
        sec, nanosec = sec_nanosec(seconds)
        stamp = self.t['builtin_interfaces/msg/Time'](sec=sec, nanosec=nanosec)
        return self.t['std_msgs/msg/Header'](stamp=stamp, frame_id=frame_id)

    def joint_state(self, header, names, position, velocity):
        return self.t['sensor_msgs/msg/JointState'](
            header=header, name=list(names), position=np.asarray(position, np.float64),
            velocity=np.asarray(velocity, np.float64), effort=np.zeros(0))

    def image(self, header, array: np.ndarray, encoding: str, topic: str):
        msg = self.t['sensor_msgs/msg/Image'](header=header, height=0, width=0, encoding='',
                                              is_bigendian=0, step=0,
                                              data=np.zeros(0, np.uint8))
        return numpy_to_image(array, encoding, msg, topic)

    def command(self, values: np.ndarray):
        layout = self.t['std_msgs/msg/MultiArrayLayout'](dim=[], data_offset=0)
        return self.t['std_msgs/msg/Float64MultiArray'](layout=layout,
                                                        data=np.asarray(values, np.float64))

    def string(self, text: str):
        return self.t['std_msgs/msg/String'](data=text)


def record_demos(out_dir: str | Path, cfg: SimDemoConfig | None = None, sim_config: Any = None,
                 progress: bool = True) -> list[BagSummary]:
    """Record ``cfg.episodes`` scripted episodes into ``out_dir``; return the bags' summaries.

    ``sim_config`` is a ``pi05_moe_bringup.sim.config.SimConfig`` (image sizes, rates, scene
    layout); its task and seed do not matter, episode i runs ``cfg``'s task i and seed + i.
    """
    from pi05_moe_bringup.sim.action_noise import OUNoise
    from pi05_moe_bringup.sim.config import SimConfig
    from pi05_moe_bringup.sim.expert import ScriptedExpert
    from pi05_moe_bringup.sim.robot import JOINT_NAMES, SimRobot
    from pi05_moe_bringup.sim.schedule import RateSchedule
    from pi05_moe_bringup.sim.tasks import make_task
    from pi05_moe_training.progress import progress as tqdm

    cfg = cfg or SimDemoConfig()
    sim_config = sim_config or SimConfig()  # every episode resets to its own task and seed
    for name in cfg.tasks:
        make_task(name)  # unknown task names fail before anything is written
    store = make_typestore()
    msgs = _Messages(store)
    recorder = EpisodeRecorder(
        out_dir, EpisodeMeta(robot='pi05_moe_sim', operator='scripted_expert',
                             joint_names=list(JOINT_NAMES)),
        store, storage=cfg.storage, compression=cfg.compression, prefix='sim')
    for topic in [*IMAGES.values(), STATE_TOPIC] + ([topics.L515_DEPTH] if cfg.depth else []):
        recorder.add_topic(topic, ('sensor_msgs/msg/JointState' if topic == STATE_TOPIC
                                   else 'sensor_msgs/msg/Image'), [SENSOR_QOS])
    recorder.add_topic(COMMANDS_TOPIC, 'std_msgs/msg/Float64MultiArray', [COMMAND_QOS])
    recorder.add_topic(PROMPT_TOPIC, 'std_msgs/msg/String', [PROMPT_QOS], latched=True)
    rates = {'l515': sim_config.l515_hz, 'wrist': sim_config.wrist_hz,
             'thermal': sim_config.thermal_hz}

    with SimRobot(sim_config) as robot:
        expert = ScriptedExpert(robot.scene)
        bar = tqdm(range(cfg.episodes), desc='sim-demos', unit='episode', disable=not progress)
        successes = 0
        for i in bar:
            task = robot.reset(task=cfg.tasks[i % len(cfg.tasks)], seed=cfg.seed + i)
            expert.reset(task.target)
            offset = float(int(time.time())) if cfg.wall_stamps else 0.0  # s, whole seconds
            start = robot.clock + offset
            recorder.write(PROMPT_TOPIC, sec_to_ns(start), msgs.string(task.prompt))
            dart = f' action_noise_rad={cfg.action_noise_rad:g}' if cfg.action_noise_rad else ''
            recorder.start(sec_to_ns(start), prompt=task.prompt, task=task.name, success=None,
                           notes=f'seed={robot.seed} layout={sim_config.layout} '
                           f'target={task.target} sim_time_offset_s={offset:.0f}{dart}')
            schedules = {cam: RateSchedule(hz, start=start) for cam, hz in rates.items()}
            noise = OUNoise(cfg.action_noise_rad, cfg.noise_tau_s, sim_config.control_period_s,
                            dims=len(JOINT_NAMES) - 1, seed=cfg.seed + i)  # the arm
            steps = int(round((expert.duration + cfg.hold_s) / sim_config.control_period_s))
            for _ in range(steps):
                now = robot.clock + offset
                _record_observation(recorder, msgs, robot, now, schedules, cfg.depth)
                action = expert.act(robot.time)  # (7,) targets for the next period
                _write(recorder, COMMANDS_TOPIC, now, msgs.command(action))
                robot.set_action(noise.perturb(action))  # the clean action is the label
                robot.step()
            success = robot.success()
            successes += success
            recorder.stop(success=success)
            bar.set_postfix(success=f'{successes}/{i + 1}')
    return recorder.summaries


def _record_observation(recorder: EpisodeRecorder, msgs: _Messages, robot, now: float,
                        schedules: dict, depth: bool) -> None:
    """Write the joint state and every camera frame due at `now` (sim time + offset, s)."""
    header = msgs.header(now)
    state = robot.joint_state()
    _write(recorder, STATE_TOPIC, now, msgs.joint_state(
        header, state.names, state.position, state.velocity))
    if schedules['l515'].due(now):
        rgb, depth_mm = robot.l515()  # (H, W, 3) uint8, (H, W) uint16 mm
        _write(recorder, IMAGES['l515'], now, msgs.image(header, rgb, 'rgb8', IMAGES['l515']))
        if depth:
            _write(recorder, topics.L515_DEPTH, now,
                   msgs.image(header, depth_mm, '16UC1', topics.L515_DEPTH))
    if schedules['wrist'].due(now):
        _write(recorder, IMAGES['wrist'], now,
               msgs.image(header, robot.wrist(), 'rgb8', IMAGES['wrist']))
    if schedules['thermal'].due(now):
        _write(recorder, IMAGES['thermal'], now,
               msgs.image(header, robot.thermal(), 'mono16', IMAGES['thermal']))


def _write(recorder: EpisodeRecorder, topic: str, seconds: float, msg) -> None:
    recorder.write(topic, sec_to_ns(seconds), msg, block=True)  # offline: wait for the disk


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--out', required=True, help='directory for the bags')
    parser.add_argument('--episodes', type=int, default=10, help='number of episodes (10)')
    parser.add_argument('--tasks', nargs='+', help='tasks used in turn (default: '
                        'lift_red_cube lift_hot_cube)')
    parser.add_argument('--seed', type=int, default=0, help='seed of episode 0 (0)')
    parser.add_argument('--layout', default='wide',
                        help="scene layout: 'wide' (cubes anywhere, the default) or 'slots' "
                        "(two fixed places, the shipped checkpoint's)")
    parser.add_argument('--no-depth', action='store_true', help='do not record L515 depth')
    parser.add_argument('--action-noise', type=float, default=0.0, metavar='RAD',
                        help="DART: std (rad) of a smooth random offset on the arm targets the "
                        "robot executes; the bags keep the expert's clean targets as actions, so "
                        'the data shows the way back from off-path states (default 0: off)')
    parser.add_argument('--noise-tau', type=float, default=0.3, metavar='S',
                        help='correlation time of that offset (0.3 s)')
    parser.add_argument('--storage', choices=('mcap', 'sqlite3'), default='mcap')
    parser.add_argument('--compression', choices=('zstd', 'none'), default='none',
                        help='zstd: compress MCAP chunks (default: none)')
    parser.add_argument('--sim-stamps', action='store_true',
                        help='stamp with raw sim time (starts at 0, tools show 1970) instead of '
                        'sim time + the wall-clock second each episode started')
    parser.add_argument('--no-progress', action='store_true', help='no progress bar')


def main(args: argparse.Namespace) -> int:
    try:
        from pi05_moe_bringup.sim.config import SimConfig

        cfg = SimDemoConfig(episodes=args.episodes, seed=args.seed, depth=not args.no_depth,
                            storage=args.storage, compression=args.compression,
                            wall_stamps=not args.sim_stamps,
                            action_noise_rad=args.action_noise, noise_tau_s=args.noise_tau,
                            **({'tasks': args.tasks} if args.tasks else {}))
        summaries = record_demos(args.out, cfg, SimConfig(layout=args.layout),
                                 progress=not args.no_progress)
    except ValueError as exc:
        print(f'pi05-moe sim-demos: {exc}', file=sys.stderr)
        return 2
    for s in summaries:
        print(f'bag: {s.path}  {sum(s.counts.values())} messages, {s.duration_s:.1f} s')
    return 0
