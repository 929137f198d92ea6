"""SimConfig: the one configuration of the simulated robot and of its ROS node."""

from dataclasses import dataclass

from pi05_moe_bringup.sim.tasks import LAYOUTS, TASKS
from pi05_moe_policy.core.output_groups import OutputGroupsConfig
from pi05_moe_policy.params import check, param


@dataclass
class SimConfig(OutputGroupsConfig):
    """Simulated 3-camera robot. Every field is also a `sim_node` ROS parameter; the output
    groups (the executor's, see sim.yaml) say which controller topics carry which joints."""

    task: str = param('lift_red_cube', 'task name from the sim task registry')
    layout: str = param('wide', "scene randomisation: 'wide' (cubes anywhere) or 'slots' "
                        '(two fixed places, the shipped checkpoint\'s layout)')
    seed: int = param(0, 'seed of the first episode; episode k after start uses seed + k')
    control_period_s: float = param(0.02, 'physics time per action and joint-state sample (s)')
    image_width: int = param(224, 'L515 colour/depth and wrist image width (px)')
    image_height: int = param(224, 'L515 colour/depth and wrist image height (px)')
    thermal_width: int = param(160, 'thermal image width (px); a Lepton 3.5 is 160x120')
    thermal_height: int = param(120, 'thermal image height (px)')
    l515_hz: float = param(30.0, 'L515 colour + depth rate (Hz of sim time)')
    wrist_hz: float = param(30.0, 'wrist camera rate (Hz of sim time)')
    thermal_hz: float = param(9.0, 'thermal rate (Hz of sim time); a Lepton runs at 8.7 Hz')
    thermal_noise_k: float = param(0.05, 'thermal per-pixel noise std (K), the NETD')
    thermal_blur_px: float = param(1.0, 'thermal optics blur sigma (px)')
    real_time_factor: float = param(1.0, 'node pacing: sim seconds per wall second, in (0, 1]')

    def __post_init__(self):
        OutputGroupsConfig.__post_init__(self)
        check(self.task in TASKS, self, 'task', f'one of {sorted(TASKS)}')
        check(self.layout in LAYOUTS, self, 'layout', f'one of {sorted(LAYOUTS)}')
        check(self.seed >= 0, self, 'seed', '>= 0')
        check(0.002 <= self.control_period_s <= 0.1, self, 'control_period_s',
              'in [0.002, 0.1] s')
        for name in ('image_width', 'image_height', 'thermal_width', 'thermal_height'):
            check(8 <= getattr(self, name) <= 4096, self, name, 'in [8, 4096] px')
        control_hz = 1.0 / self.control_period_s
        for name in ('l515_hz', 'wrist_hz', 'thermal_hz'):
            check(0 < getattr(self, name) <= control_hz, self, name,
                  f'in (0, 1/control_period_s = {control_hz:g}] Hz')
        check(self.thermal_noise_k >= 0, self, 'thermal_noise_k', '>= 0')
        check(self.thermal_blur_px >= 0, self, 'thermal_blur_px', '>= 0')
        check(0 < self.real_time_factor <= 1.0, self, 'real_time_factor', 'in (0, 1]')
