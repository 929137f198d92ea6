"""SigLIP vision tower (transformers ``SiglipVisionModel``, built from a local config) plus the
PaliGemma linear projector to the VLM width.  Nothing is downloaded."""

from __future__ import annotations

import torch
from torch import nn

from pi05_moe_policy.model.config import ModelConfig


class MultiModalProjector(nn.Module):
    """PaliGemma's ``multi_modal_projector.linear``."""

    def __init__(self, in_dim: int, out_dim: int):
        super().__init__()
        self.linear = nn.Linear(in_dim, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x)


def build_siglip(cfg: ModelConfig) -> nn.Module:
    from transformers import SiglipVisionConfig, SiglipVisionModel

    vcfg = SiglipVisionConfig(
        hidden_size=cfg.vision_width,
        num_hidden_layers=cfg.vision_depth,
        intermediate_size=cfg.vision_mlp_dim,
        num_attention_heads=cfg.vision_num_heads,
        patch_size=cfg.vision_patch_size,
        image_size=cfg.image_size,
        num_channels=3,
        hidden_act='gelu_pytorch_tanh',
        layer_norm_eps=1e-6,
        vision_use_head=False,  # PaliGemma uses the patch tokens, not the pooled head
        attn_implementation='sdpa',
    )
    return SiglipVisionModel(vcfg)


class VisionEncoder(nn.Module):
    """images (N, 3, H, W) in [-1, 1] -> tokens (N, T, vlm_width), T = (H / patch)^2."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.vision_tower = build_siglip(cfg)
        self.multi_modal_projector = MultiModalProjector(cfg.vision_width, cfg.vlm_width)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        dtype = self.multi_modal_projector.linear.weight.dtype
        feats = self.vision_tower(pixel_values=pixels.to(dtype)).last_hidden_state  # (N, T, Wv)
        return self.multi_modal_projector(feats)  # (N, T, D)
