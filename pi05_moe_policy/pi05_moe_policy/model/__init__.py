"""The PI0.5 + camera-MoE network as plain PyTorch modules (no ROS)."""

from pi05_moe_policy.model.camera_router import CameraMoE, CameraRouter, RouterOutput
from pi05_moe_policy.model.config import PRESETS, ModelConfig, make_config
from pi05_moe_policy.model.focal_loss import focal_loss, labels_from_active
from pi05_moe_policy.model.pi05 import Pi05Model, make_att_2d_masks

__all__ = [
    'PRESETS', 'CameraMoE', 'CameraRouter', 'ModelConfig', 'Pi05Model', 'RouterOutput',
    'focal_loss', 'labels_from_active', 'make_att_2d_masks', 'make_config',
]
