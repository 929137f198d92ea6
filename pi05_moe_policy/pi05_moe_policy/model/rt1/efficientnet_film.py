"""EfficientNet with a FiLM layer after every MBConv block, conditioned on the instruction
embedding (RT-1's image tokenizer).

The network is ``efficientnet_pytorch``'s (0.7.1, pure torch; torchvision's PyPI build does not
load over our CPU torch): its stem and MBConv blocks, built from a name and width/depth
coefficients, never downloaded (``from_name``: random init).  Its head (1x1 conv to 1280+
channels, pooling, classifier) is dropped: a 1x1 conv maps the last block's channels to the
token width instead, as RT-1 does, after pooling to ``feature_grid`` squared positions.

FiLM: ``x * (1 + gamma(c)) + beta(c)`` per channel, with gamma and beta a linear map of the
conditioning vector c initialised to zero, so at init the network is the plain EfficientNet
(pretrained weights, if loaded, keep their meaning).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from pi05_moe_policy.model.rt1.config import RT1Config


class FiLM(nn.Module):
    """x: (N, C, H, W), cond: (N, Dc) -> x * (1 + gamma) + beta, gamma/beta (N, C)."""

    def __init__(self, cond_dim: int, channels: int):
        super().__init__()
        self.proj = nn.Linear(cond_dim, 2 * channels)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.zeros_(self.proj.weight)  # the identity at init
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.proj(cond.to(x.dtype)).chunk(2, dim=-1)  # (N, C) each
        return x * (1.0 + gamma[:, :, None, None]) + beta[:, :, None, None]


def build_efficientnet(cfg: RT1Config) -> nn.Module:
    """The named EfficientNet at ``cfg``'s coefficients and image size (random weights)."""
    from efficientnet_pytorch import EfficientNet

    # batch_norm_momentum is TF's convention (running = m * running + (1 - m) * batch): 0.9 is
    # torch's default 0.1. The package's 0.99 suits ImageNet-scale runs; here, from scratch with
    # small batches, the running statistics that inference uses would lag the weights by ~100s
    # of steps.
    over = {'image_size': cfg.image_size, 'drop_connect_rate': cfg.drop_connect_rate,
            'batch_norm_momentum': 0.9}
    if cfg.width_coefficient is not None:
        over['width_coefficient'] = float(cfg.width_coefficient)
    if cfg.depth_coefficient is not None:
        over['depth_coefficient'] = float(cfg.depth_coefficient)
    return EfficientNet.from_name(cfg.efficientnet, **over)


class FiLMEfficientNet(nn.Module):
    """images (N, 3, S, S) in [-1, 1], cond (N, Dc) -> tokens (N, G*G, token_dim)."""

    def __init__(self, cfg: RT1Config, cond_dim: int):
        super().__init__()
        net = build_efficientnet(cfg)
        self.drop_connect_rate = cfg.drop_connect_rate
        self.conv_stem, self.bn0, self.act = net._conv_stem, net._bn0, net._swish
        self.blocks = net._blocks  # ModuleList of MBConvBlock
        self.film = nn.ModuleList(FiLM(cond_dim, b._block_args.output_filters)
                                  for b in self.blocks)
        out_ch = self.blocks[-1]._block_args.output_filters
        self.pool = nn.AdaptiveAvgPool2d(cfg.feature_grid)
        self.proj = nn.Conv2d(out_ch, cfg.token_dim, kernel_size=1)
        if self.proj.weight.device.type != 'meta':
            self.reset_parameters()

    def reset_parameters(self) -> None:
        """EfficientNet's own initialisation (the TF reference): convolutions normal with
        std sqrt(2 / fan_out), fan_out per group.  ``efficientnet_pytorch`` keeps torch's
        default, made for loading pretrained weights; from scratch it shrank the activations
        ~40x a block in eval mode (~4x with this one, from the SE gates and swish at fresh
        BatchNorm statistics), so that before training every image gave the same tokens."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                # fan_out per group: a depthwise kernel (C, 1, k, k) has fan_out k*k, as in TF
                k = m.weight.shape[2] * m.weight.shape[3]
                std = math.sqrt(2.0 / (m.out_channels // m.groups * k))
                nn.init.normal_(m.weight, std=std)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        for film in self.film:
            film.reset_parameters()

    def forward(self, images: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        x = self.act(self.bn0(self.conv_stem(images.to(self.proj.weight.dtype))))  # (N, C0, ..)
        n = len(self.blocks)
        for i, (block, film) in enumerate(zip(self.blocks, self.film)):
            rate = self.drop_connect_rate * i / n if self.drop_connect_rate else None
            x = film(block(x, drop_connect_rate=rate), cond)  # (N, Ci, Hi, Wi)
        x = self.proj(self.pool(x))  # (N, D, G, G)
        return x.flatten(2).transpose(1, 2)  # (N, G*G, D)
