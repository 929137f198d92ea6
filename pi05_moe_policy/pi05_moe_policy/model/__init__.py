"""The PI0.5 + camera-MoE network as plain PyTorch modules (no ROS), and the RT-1 baseline
(``model/rt1``); ``build_model`` builds either from its config."""

from pi05_moe_policy.model.camera_router import CameraMoE, CameraRouter, RouterOutput
from pi05_moe_policy.model.config import PRESETS, ModelConfig, make_config
from pi05_moe_policy.model.factory import NETWORK_PRESETS, build_model, make_network_config
from pi05_moe_policy.model.focal_loss import focal_loss, labels_from_active
from pi05_moe_policy.model.pi05 import Pi05Model, make_att_2d_masks
from pi05_moe_policy.model.rt1 import RT1Config, RT1Model

__all__ = [
    'NETWORK_PRESETS', 'PRESETS', 'CameraMoE', 'CameraRouter', 'ModelConfig', 'Pi05Model',
    'RT1Config', 'RT1Model', 'RouterOutput', 'build_model', 'focal_loss', 'labels_from_active',
    'make_att_2d_masks', 'make_config', 'make_network_config',
]
