"""Router-gated camera fusion (seed 000, roles generalised as in seed 001).

The base camera is always in.  A router looks at the base camera's pooled tokens plus the
prompt and/or the state and gives a weight per expert camera; expert features are gated as
``F_gated = gamma * (w * F)`` (gamma per channel, init 1) and fused with the base by
``Linear(concat([base, gated...], -1))`` back to the VLM width.  The fused prefix therefore
holds one camera's worth of image tokens instead of 1 + N.
"""

from __future__ import annotations

import dataclasses
import math

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from pi05_moe_policy.model.config import ModelConfig


@dataclasses.dataclass
class RouterOutput:
    logits: torch.Tensor  # (B, N) after the temperature
    probs: torch.Tensor  # (B, N) softmax(logits): what the focal loss scores
    weights: torch.Tensor  # (B, N) the gates: probs, or a Gumbel-softmax sample in training


class CameraRouter(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        d = cfg.vlm_width
        self.input_type = cfg.camera_router_input_type
        self.use_prompt = 'prompt' in self.input_type
        self.use_state = 'state' in self.input_type
        self.use_attention_pooling = cfg.camera_router_use_attention_pooling
        self.temperature = cfg.camera_router_temperature
        self.use_gumbel = cfg.camera_router_use_gumbel
        self.gumbel_temperature = cfg.camera_router_gumbel_temp
        in_dim = d + (d if self.use_prompt else 0) + (cfg.max_state_dim if self.use_state else 0)
        if self.use_prompt and self.use_attention_pooling:
            # A learnable query picks the prompt words that matter for camera choice.
            self.prompt_attention_query = nn.Parameter(torch.randn(d) * 0.02)
        dims = (in_dim, *cfg.camera_router_hidden_dims, cfg.num_experts)
        self.mlp = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))

    def pool_prompt(self, prompt: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """prompt: (B, L, D) embeddings, mask: (B, L) bool -> (B, D)."""
        m = mask.to(prompt.dtype)[..., None]  # (B, L, 1)
        if not self.use_attention_pooling:
            return (prompt * m).sum(1) / m.sum(1).clamp_min(1.0)  # mean over real tokens
        scores = prompt @ self.prompt_attention_query.to(prompt.dtype)  # (B, L)
        scores = scores / math.sqrt(prompt.shape[-1])
        scores = scores.masked_fill(~mask, float('-inf'))
        # An all-padding row would be NaN; give it uniform weights over nothing (-> zeros).
        attn = torch.nan_to_num(torch.softmax(scores.float(), dim=-1)).to(prompt.dtype)
        return (attn[..., None] * prompt).sum(1)  # (B, D)

    def forward(self, base_tokens: torch.Tensor, prompt: torch.Tensor | None = None,
                prompt_mask: torch.Tensor | None = None, state: torch.Tensor | None = None
                ) -> RouterOutput:
        """base_tokens: (B, T, D); prompt: (B, L, D); prompt_mask: (B, L); state: (B, S)."""
        feats = [base_tokens.mean(dim=1)]  # (B, D)
        if self.use_prompt:
            if prompt is None or prompt_mask is None:
                raise ValueError(f'router input type {self.input_type!r} needs the prompt')
            feats.append(self.pool_prompt(prompt, prompt_mask))
        if self.use_state:
            if state is None:
                raise ValueError(f'router input type {self.input_type!r} needs the state')
            feats.append(state.to(base_tokens.dtype))
        x = torch.cat(feats, dim=-1)  # (B, in_dim)
        for i, layer in enumerate(self.mlp):
            x = layer(x)
            if i < len(self.mlp) - 1:
                x = F.relu(x)
        logits = x.float() / self.temperature  # (B, N)
        probs = torch.softmax(logits, dim=-1)
        if self.training and self.use_gumbel:
            weights = F.gumbel_softmax(logits, tau=self.gumbel_temperature, hard=False)
        else:
            weights = probs
        return RouterOutput(logits=logits, probs=probs, weights=weights)


class CameraMoE(nn.Module):
    """Router + soft gating + fusion projection."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        d = cfg.vlm_width
        n = cfg.num_experts
        self.router = CameraRouter(cfg)
        self.use_learnable_scales = cfg.camera_router_use_learnable_scales
        if self.use_learnable_scales:
            self.expert_scales = nn.Parameter(torch.ones(n, d))  # gamma, per camera+channel
        self.projection = nn.Linear((1 + n) * d, d)
        self.reset_fusion()

    def reset_fusion(self) -> None:
        """Identity on the base slice (fused = base tokens at init, so pretrained VLMs see
        ordinary image tokens), small random weights on the expert slices (they still get
        gradients), zero bias."""
        d = self.projection.out_features
        with torch.no_grad():
            nn.init.normal_(self.projection.weight, std=0.02)
            self.projection.weight[:, :d].copy_(torch.eye(d))
            nn.init.zeros_(self.projection.bias)
        if self.use_learnable_scales:
            nn.init.ones_(self.expert_scales)

    def forward(self, base_tokens: torch.Tensor, expert_tokens: torch.Tensor,
                expert_mask: torch.Tensor, prompt: torch.Tensor | None = None,
                prompt_mask: torch.Tensor | None = None, state: torch.Tensor | None = None,
                route: RouterOutput | None = None) -> tuple[torch.Tensor, RouterOutput]:
        """base_tokens: (B, T, D); expert_tokens: (B, N, T, D); expert_mask: (B, N) bool.

        A missing expert (mask off) contributes zeros.  ``route``: the router's output if the
        caller ran it already (sparse routing).  Returns fused (B, T, D) and the router
        output.
        """
        if route is None:
            route = self.router(base_tokens, prompt, prompt_mask, state)
        feats = expert_tokens * expert_mask.to(expert_tokens.dtype)[:, :, None, None]
        gated = feats * route.weights.to(feats.dtype)[:, :, None, None]  # w * F (B, N, T, D)
        if self.use_learnable_scales:
            gated = gated * self.expert_scales.to(feats.dtype)[None, :, None, :]  # gamma * (w*F)
        b, n, t, d = gated.shape
        cat = torch.cat([base_tokens, gated.permute(0, 2, 1, 3).reshape(b, t, n * d)], dim=-1)
        return self.projection(cat), route  # (B, T, D)
