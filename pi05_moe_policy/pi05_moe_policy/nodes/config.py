"""The two nodes' configs: the core's configs plus topics and rates. Pure: no rclpy.

Each node config *is* the config of the core pieces it drives (by inheritance), so one dataclass
declares every ROS parameter (:func:`pi05_moe_policy.nodes.ros_params.declare_config`), a params
YAML can be written from it (:func:`pi05_moe_policy.params.to_ros_yaml_dict`), and the core classes
take it as their own config.
"""

from __future__ import annotations

from dataclasses import dataclass

from pi05_moe_policy import topics
from pi05_moe_policy.core.executor import ExecutorCoreConfig
from pi05_moe_policy.core.input_checks import InputCheckConfig
from pi05_moe_policy.core.output_groups import OutputGroupsConfig
from pi05_moe_policy.core.rtc import RtcConfig
from pi05_moe_policy.core.snapshot import SnapshotConfig
from pi05_moe_policy.params import check, param

# model.precision.NAMES's keys, spelt here so that the configs need no torch (a test keeps them
# equal).
DTYPE_NAMES = ('float32', 'fp32', 'bfloat16', 'bf16', 'float16', 'fp16')

OUTPUTS = ('commands', 'joint_trajectory')


def _check_topic(cfg: object, name: str) -> None:
    check(getattr(cfg, name).startswith('/') or getattr(cfg, name).startswith('~'), cfg, name,
          'a topic name starting with "/" or "~"')


@dataclass
class PolicyNodeConfig(SnapshotConfig, InputCheckConfig, RtcConfig):
    """policy_node: cameras + joint states + prompt -> ActionChunk + RoutingWeights."""

    checkpoint: str = param('', 'Required. A checkpoint directory (Policy.save), or '
                            'preset:<name> for a randomly initialised model (demos, tests), '
                            'e.g. preset:tiny.')
    device: str = param('cpu', 'Torch device for inference: cpu, cuda, cuda:1, ...')
    dtype: str = param('auto', 'Inference dtype: auto (bf16 on a CPU with AMX or AVX-512 BF16 '
                       'and on CUDA, else fp32), float32, bfloat16 or float16.')
    seed: int = param(0, 'Seed of a preset:<name> checkpoint\'s random weights.')
    num_steps: int = param(0, 'Euler steps per chunk; 0 = the checkpoint\'s (10). Denoising '
                           'costs in proportion: fewer steps, less latency (README: real time).')
    sparse_routing_threshold: float = param(
        0.0, 'Camera-MoE checkpoints: expert cameras whose routing weight is below this are '
        'not encoded at all (saves their vision cost); 0 = encode every camera.')
    torch_compile: bool = param(
        False, 'torch.compile the denoising step, warmed up at start (~25 s on a 2-core CPU, '
        'needs a C++ compiler): ~1.3x faster chunks on CPU (README: real time).')
    inference_process: bool = param(
        False, 'Run the model in a child process with its own interpreter, so the ROS '
        'callbacks do not take the GIL from it (1.8x faster in the live sim graph on 2 cores; '
        'README: real time). The child loads the checkpoint; Ctrl-C ends it at once.')
    num_threads: int = param(0, 'Torch CPU threads for inference; 0 = torch\'s default. On a '
                             'small shared CPU, 1 avoids thread contention.')
    cameras: dict[str, str] = param(
        dict(topics.CAMERAS),
        'Image topic per camera name (names as in the checkpoint). An empty topic leaves the '
        'camera out (an expert camera then counts as missing).')
    joint_names: list[str] = param(
        [], 'Joint order of the state and the actions. Empty: the checkpoint\'s joint names, '
        'else joint_0..joint_{D-1}. With preset:<name>, also the robot\'s state/action size.')
    joint_states_topic: str = param(topics.JOINT_STATES, 'sensor_msgs/JointState input.')
    prompt_topic: str = param(topics.PROMPT, 'std_msgs/String prompt input; both transient-'
                              'local (latched) and volatile (ros2 topic pub) publishers match.')
    prompt: str = param('pick up the cube', 'The prompt. Settable at run time (ros2 param set '
                        '/policy_node prompt "..."); a prompt on prompt_topic also sets it.')
    prompt_in_use_topic: str = param('~/prompt', 'The prompt in use, republished reliable + '
                                     'transient-local (latched) for late joiners.')
    max_prompt_chars: int = param(512, 'Longer prompts are cut to this many characters.')
    action_chunk_topic: str = param(topics.ACTION_CHUNK, 'pi05_moe_msgs/ActionChunk '
                                    'output.')
    routing_topic: str = param(topics.ROUTING, 'pi05_moe_msgs/RoutingWeights output.')
    diagnostics_topic: str = param(topics.DIAGNOSTICS, 'diagnostic_msgs/DiagnosticArray output.')
    max_inference_hz: float = param(10.0, 'At most this many inferences per second (wall '
                                    'clock); 0 = as fast as the inputs and the model allow.')
    min_image_size: int = param(16, 'Images narrower or lower than this (pixels) are rejected.')
    warn_period: float = param(5.0, 'Repeated warnings about one topic and one problem, and '
                               'repeated status changes, are logged at most once per this many '
                               'seconds.')
    diagnostics_period: float = param(1.0, 'Seconds between /diagnostics messages.')

    def load_kwargs(self) -> dict:
        """``checkpoints.load_policy`` arguments."""
        return dict(spec=self.checkpoint, device=self.device, seed=self.seed,
                    joint_names=self.joint_names, num_threads=self.num_threads or None,
                    dtype=self.dtype)

    def inference_kwargs(self) -> dict:
        """``Policy.set_inference`` arguments."""
        return dict(num_steps=self.num_steps, sparse_threshold=self.sparse_routing_threshold,
                    torch_compile=self.torch_compile, inference_hz=self.max_inference_hz)

    def __post_init__(self) -> None:
        SnapshotConfig.__post_init__(self)
        InputCheckConfig.__post_init__(self)
        RtcConfig.__post_init__(self)
        check(self.max_image_size >= self.min_image_size, self, 'max_image_size',
              f'a size >= min_image_size ({self.min_image_size})')
        for name in ('joint_states_topic', 'prompt_topic', 'prompt_in_use_topic',
                     'action_chunk_topic',
                     'routing_topic', 'diagnostics_topic'):
            _check_topic(self, name)
        check(all(t == '' or t[0] in '/~' for t in self.cameras.values()), self, 'cameras',
              'topics starting with "/" or "~" (or empty to leave a camera out)')
        check(self.num_threads >= 0, self, 'num_threads', 'an int >= 0')
        check(self.num_steps >= 0, self, 'num_steps', 'an int >= 0 (0: the checkpoint\'s)')
        check(0.0 <= self.sparse_routing_threshold < 1.0, self, 'sparse_routing_threshold',
              'a weight in [0, 1) (0: off)')
        check(self.dtype == 'auto' or self.dtype in DTYPE_NAMES, self, 'dtype',
              f"'auto' or one of {sorted(DTYPE_NAMES)}")
        check(self.max_prompt_chars > 0, self, 'max_prompt_chars', 'an int > 0')
        check(self.max_inference_hz >= 0, self, 'max_inference_hz', 'a rate >= 0')
        check(self.min_image_size >= 1, self, 'min_image_size', 'an int >= 1')
        check(self.warn_period >= 0, self, 'warn_period', 'seconds >= 0')
        check(self.diagnostics_period > 0, self, 'diagnostics_period', 'seconds > 0')


@dataclass
class ExecutorNodeConfig(ExecutorCoreConfig, OutputGroupsConfig):
    """executor_node: ActionChunks -> ensembled, filtered commands for a ros2_control
    controller."""

    enabled: bool = param(False, 'Send commands to the controller from the start. False: only '
                          'preview them until the ~/enable service is called.')
    controller: str = param(topics.CONTROLLER, 'ros2_control controller to command: '
                            '/<controller>/commands or /<controller>/joint_trajectory.')
    output: str = param('commands', 'commands: std_msgs/Float64MultiArray (forward command '
                        'controller); joint_trajectory: trajectory_msgs/JointTrajectory.')
    action_chunk_topic: str = param(topics.ACTION_CHUNK, 'pi05_moe_msgs/ActionChunk input.')
    joint_states_topic: str = param(topics.JOINT_STATES, 'sensor_msgs/JointState input: the '
                                    'position held before the first command and after enable.')
    preview_topic: str = param(topics.COMMAND_PREVIEW, 'Where commands go while '
                               'actuation is disabled (same type as the output).')
    diagnostics_topic: str = param(topics.DIAGNOSTICS, 'diagnostic_msgs/DiagnosticArray output.')
    diagnostics_period: float = param(1.0, 'Seconds between /diagnostics messages.')
    log_period: float = param(10.0, 'Seconds between info log lines with the counters.')
    warn_period: float = param(5.0, 'Repeated warnings about one topic and one problem, and '
                               'repeated status changes, are logged at most once per this many '
                               'seconds.')

    def __post_init__(self) -> None:
        ExecutorCoreConfig.__post_init__(self)
        OutputGroupsConfig.__post_init__(self)
        check(self.output in OUTPUTS, self, 'output', f'one of {OUTPUTS}')
        check(bool(self.controller) and '/' not in self.controller, self, 'controller',
              'a controller name without "/"')
        for name in ('action_chunk_topic', 'joint_states_topic', 'preview_topic',
                     'diagnostics_topic'):
            _check_topic(self, name)
        for name in ('diagnostics_period', 'log_period'):
            check(getattr(self, name) > 0, self, name, 'seconds > 0')
        check(self.warn_period >= 0, self, 'warn_period', 'seconds >= 0')

    def require_joint_names(self) -> None:
        """Raise ``ValueError`` when the output carries no names and none are configured: the
        commands' order would otherwise be a guess (the node refuses to start)."""
        if (self.output == 'commands' or self.output_groups) and not self.joint_names:
            raise ValueError(f'{type(self).__name__}.joint_names={self.joint_names!r}: expected '
                             'the controller\'s joint order (output commands sends a '
                             'Float64MultiArray, which carries no names; output_groups '
                             'index into it)')

    @property
    def command_topic(self) -> str:
        """The controller's input topic for the chosen output."""
        if self.output == 'commands':
            return topics.controller_commands(self.controller)
        return topics.controller_trajectory(self.controller)
