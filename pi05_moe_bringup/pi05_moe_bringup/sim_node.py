"""sim_node: the simulated 3-camera robot on ROS 2, publishing what the real drivers publish.

Publishes (sensor-data QoS unless noted):
  /l515/color/image_raw rgb8, /l515/depth/image_rect_raw 16UC1 mm, /wrist/image_raw rgb8,
  /thermal/image_raw mono16 centi-K (+ /thermal/image_color rgb8 preview), each with CameraInfo
  on the sibling `camera_info` topic, each rendered only while subscribed (image or info);
  /joint_states every control period, reliable (as ros2_control's joint_state_broadcaster: a
  default subscriber such as rqt gets it, and best-effort ones like policy_node match too);
  /clock (sim time, monotonic across episodes);
  /pi05_moe/prompt and /sim/success (reliable, transient-local, depth 1) on change.
Subscribes (reliable): /arm_controller/commands (Float64MultiArray, joint order of
  /joint_states) and /arm_controller/joint_trajectory (JointTrajectory; first point), or with
  `output_groups` each group's controller topic (e.g. /arm_controller/commands, 6 joints, and
  /gripper_controller/commands), as the executor sends them.
Service: ~/reset (std_srvs/Trigger) starts the next episode with the `task` and `seed`
  parameters as they are then. All work happens in one steady-clock timer that steps physics at
  real time (or slower); the subscriptions only store the latest command.
"""

import dataclasses
from functools import partial

import numpy as np
from builtin_interfaces.msg import Time
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from rosgraph_msgs.msg import Clock as ClockMsg
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_msgs.msg import Bool, Header, String
from std_srvs.srv import Trigger

from pi05_moe_bringup.drivers.camera_info import fill_camera_info, from_intrinsics
from pi05_moe_bringup.drivers.thermal_colormap import colorize
from pi05_moe_bringup.sim.commands import CommandInputs
from pi05_moe_bringup.sim.config import SimConfig
from pi05_moe_bringup.sim.robot import CAMERAS, JOINT_NAMES, SimRobot
from pi05_moe_bringup.sim.schedule import RateSchedule
from pi05_moe_policy import topics
from pi05_moe_policy.core.image_codec import numpy_to_image
from pi05_moe_policy.core.rate_limited_log import RateLimitedLog
from pi05_moe_policy.core.stamps import sec_nanosec
from pi05_moe_policy.nodes import qos
from pi05_moe_policy.nodes.command_out import MSG_TYPES
from pi05_moe_policy.nodes.main import run_node
from pi05_moe_policy.nodes.ros_params import declare_config

# stream -> (camera, image topic, info topic, encoding, frame id); names as the real drivers'.
STREAMS = {
    'l515_color': ('l515', topics.L515_COLOR, topics.L515_COLOR_INFO, 'rgb8',
                   'l515_color_optical_frame'),
    # depth is rendered from the colour camera, i.e. already aligned to it
    'l515_depth': ('l515', topics.L515_DEPTH, topics.L515_DEPTH_INFO, '16UC1',
                   'l515_color_optical_frame'),
    'wrist': ('wrist', topics.WRIST_IMAGE, topics.WRIST_INFO, 'rgb8',
              'wrist_camera_optical_frame'),
    'thermal': ('thermal', topics.THERMAL_IMAGE, topics.THERMAL_INFO, 'mono16',
                'thermal_optical_frame'),
}
THERMAL_PREVIEW_CK = (28815.0, 31815.0)  # 15..45 degC, the thermal driver's default window
COMMANDS_TOPIC = topics.COMMANDS
TRAJECTORY_TOPIC = topics.JOINT_TRAJECTORY


def stamp(seconds: float) -> Time:
    """builtin_interfaces/Time from seconds (of sim time)."""
    sec, nanosec = sec_nanosec(seconds)
    return Time(sec=sec, nanosec=nanosec)


class SimNode(Node):
    """Thin ROS shell around `SimRobot`: parameters, topics, a pacing timer, a reset service."""

    def __init__(self, **node_kwargs):
        """`node_kwargs` go to rclpy's Node (e.g. parameter_overrides in tests)."""
        super().__init__('sim_node', **node_kwargs)
        self.config: SimConfig = declare_config(self, SimConfig)
        cfg = self.config
        self.robot = SimRobot(cfg)
        self._episode = 0
        self._seed_base = cfg.seed
        self._command: np.ndarray | None = None  # latest (7,) action, set by subscriptions
        self._success: bool | None = None
        self._warn = RateLimitedLog(self.get_logger().warning)
        self._schedules = {'l515': RateSchedule(cfg.l515_hz), 'wrist': RateSchedule(cfg.wrist_hz),
                           'thermal': RateSchedule(cfg.thermal_hz)}

        self._image_pubs = {name: (self.create_publisher(Image, topic, qos.SENSOR),
                                   self.create_publisher(CameraInfo, info, qos.SENSOR))
                            for name, (_, topic, info, _, _) in STREAMS.items()}
        self._preview_pub = self.create_publisher(Image, topics.THERMAL_COLOR, qos.SENSOR)
        self._infos = {camera: from_intrinsics(**dataclasses.asdict(self.robot.intrinsics(camera)),
                                               camera_name=camera)
                       for camera in CAMERAS}
        self._joint_pub = self.create_publisher(JointState, topics.JOINT_STATES, qos.JOINT_STATES)
        self._clock_pub = self.create_publisher(ClockMsg, topics.CLOCK, qos.CLOCK)
        self._prompt_pub = self.create_publisher(String, topics.PROMPT, qos.PROMPT)
        # Latched like the prompt: a late subscriber still learns the current outcome.
        self._success_pub = self.create_publisher(Bool, topics.SIM_SUCCESS, qos.PROMPT)
        self._inputs = CommandInputs(cfg, JOINT_NAMES, {COMMANDS_TOPIC: 'commands',
                                                        TRAJECTORY_TOPIC: 'joint_trajectory'})
        for topic, kind in self._inputs.topics.items():
            self.create_subscription(MSG_TYPES[kind], topic, partial(self._on_command, topic),
                                     qos.COMMAND)
        self.create_service(Trigger, '~/reset', self._on_reset)
        # Steady clock: this node *is* the sim clock, so it must never wait on /clock itself.
        self.create_timer(cfg.control_period_s / cfg.real_time_factor, self._on_tick,
                          clock=Clock(clock_type=ClockType.STEADY_TIME))
        self._start_episode()

    # -- callbacks: store, never compute ---------------------------------------------------
    def _on_command(self, topic: str, msg) -> None:
        try:
            action = self._inputs.take(topic, msg)
        except ValueError as err:
            self._warn(topic, f'{topic}: ignored: {err}')
            return
        if action is not None:
            self._command = action

    def _on_reset(self, _request, response: Trigger.Response) -> Trigger.Response:
        task = self.get_parameter('task').value
        seed = self.get_parameter('seed').value
        try:
            self.config = dataclasses.replace(self.config, task=task, seed=seed)
        except ValueError as err:
            response.success, response.message = False, str(err)
            return response
        if seed != self._seed_base:
            self._seed_base, self._episode = seed, 0
        else:
            self._episode += 1
        self._start_episode()
        response.success = True
        response.message = (f'episode {self._episode}: task={self.robot.task.name} '
                            f'seed={self.robot.seed} prompt={self.robot.task.prompt!r}')
        return response

    # -- the simulation loop ---------------------------------------------------------------
    def _start_episode(self) -> None:
        task = self.robot.reset(task=self.config.task, seed=self._seed_base + self._episode)
        self._command = None  # the arm holds its home pose until the next command
        self._success = None
        self._prompt_pub.publish(String(data=task.prompt))
        self.get_logger().info(f'episode {self._episode}: {task.name} seed={self.robot.seed} '
                               f'prompt={task.prompt!r} target={task.target}')

    def _on_tick(self) -> None:
        if self._command is not None:
            self.robot.set_action(self._command)
        self.robot.step()
        header = Header(stamp=stamp(self.robot.clock))
        self._clock_pub.publish(ClockMsg(clock=header.stamp))
        state = self.robot.joint_state()
        self._joint_pub.publish(JointState(header=header, name=list(state.names),
                                           position=state.position.tolist(),
                                           velocity=state.velocity.tolist()))
        now = self.robot.clock
        due = {camera for camera, schedule in self._schedules.items() if schedule.due(now)}
        # Only what is subscribed is rendered: it is most of this node's CPU (README: real time)
        preview = 'thermal' in due and self._preview_pub.get_subscription_count() > 0
        wanted = {s for s, spec in STREAMS.items() if spec[0] in due and self._wanted(s)}
        frames = self.robot.render(wanted | ({'thermal'} if preview else set()))
        for name, array in frames.items():
            self._publish_image(name, array, header)
        if preview:
            msg = numpy_to_image(colorize(frames['thermal'], *THERMAL_PREVIEW_CK), 'rgb8',
                                 Image(), topics.THERMAL_COLOR)
            msg.header = Header(stamp=header.stamp, frame_id=STREAMS['thermal'][4])
            self._preview_pub.publish(msg)
        success = self.robot.success()
        if success != self._success:
            self._success = success
            self._success_pub.publish(Bool(data=success))

    def _wanted(self, stream: str) -> bool:  # a subscriber to the image or its camera info
        return any(pub.get_subscription_count() > 0 for pub in self._image_pubs[stream])

    def _publish_image(self, stream: str, array: np.ndarray, header: Header) -> None:
        camera, topic, _, encoding, frame_id = STREAMS[stream]
        header = Header(stamp=header.stamp, frame_id=frame_id)
        image_pub, info_pub = self._image_pubs[stream]
        msg = numpy_to_image(array, encoding, Image(), topic)
        msg.header = header
        image_pub.publish(msg)
        info = fill_camera_info(CameraInfo(), self._infos[camera])
        info.header = header
        info_pub.publish(info)

    def destroy_node(self) -> None:
        self.robot.close()
        super().destroy_node()


def main(args=None) -> int:
    return run_node(SimNode, 'sim_node', args)


if __name__ == '__main__':
    main()
