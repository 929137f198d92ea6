"""TokenLearner (Ryoo et al. 2021), as RT-1 uses it: S spatial tokens -> K learned tokens.

Each output token is a weighted sum of the input tokens; an MLP scores every position for each
of the K outputs, and a softmax over positions makes the weights (RT-1's TokenLearner v1.1).
The seed's variant normalises sigmoids by their sum instead; the softmax is what the public
RT-1 code does, and both make each output a convex combination of the inputs.
"""

from __future__ import annotations

import torch
from torch import nn


class TokenLearner(nn.Module):
    """x: (N, S, D) -> (N, K, D), K = ``num_tokens``."""

    def __init__(self, dim: int, num_tokens: int = 8, hidden: int = 64):
        super().__init__()
        self.num_tokens = num_tokens
        self.norm = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, num_tokens))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scores = self.mlp(self.norm(x))  # (N, S, K): how much position s feeds token k
        attn = torch.softmax(scores.transpose(1, 2), dim=-1)  # (N, K, S), rows sum to 1
        return attn @ x  # (N, K, D)
