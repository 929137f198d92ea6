"""RT-1 (seed 003) as a baseline behind the same Policy API as PI0.5 (no ROS)."""

from pi05_moe_policy.model.rt1.action_bins import ActionBins
from pi05_moe_policy.model.rt1.config import RT1_PRESETS, RT1Config, make_rt1_config
from pi05_moe_policy.model.rt1.model import RT1Model

__all__ = ['RT1_PRESETS', 'ActionBins', 'RT1Config', 'RT1Model', 'make_rt1_config']
