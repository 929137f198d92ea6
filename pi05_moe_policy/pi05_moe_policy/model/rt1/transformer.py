"""RT-1's decoder-only transformer over the image tokens of k frames (plus the action readout
tokens), with a frame-causal mask.

Sequence: ``[frame 1: T tokens] ... [frame k: T tokens] [readout 1] ... [readout H]``.  A token
of frame i attends to every token of frames 1..i (the tokens of one frame see each other, as in
RT-1, whose mask is causal between time steps); readout j attends to all frames and to readouts
1..j.  So nothing in a later frame can change an earlier frame's output.
"""

from __future__ import annotations

import torch
from torch import nn


def frame_causal_mask(num_frames: int, tokens_per_frame: int, num_readouts: int,
                      device: torch.device | None = None) -> torch.Tensor:
    """(N, N) bool, True = may NOT attend (``nn.MultiheadAttention``'s convention);
    N = num_frames * tokens_per_frame + num_readouts."""
    block = torch.arange(num_frames, device=device).repeat_interleave(tokens_per_frame)  # (F*T,)
    block = torch.cat([block, num_frames + torch.arange(num_readouts, device=device)])  # (N,)
    return block[None, :] > block[:, None]  # key's block after the query's: masked


class CausalTransformer(nn.Module):
    """x: (B, N, D) -> (B, N, D) under ``frame_causal_mask`` (pre-LN layers, learned positions)."""

    def __init__(self, dim: int, depth: int, num_heads: int, mlp_dim: int, max_len: int,
                 dropout: float = 0.1):
        super().__init__()
        self.pos = nn.Parameter(torch.zeros(max_len, dim))
        layer = nn.TransformerEncoderLayer(dim, num_heads, mlp_dim, dropout, activation='gelu',
                                           batch_first=True, norm_first=True)
        # TransformerEncoder + a causal mask is a decoder-only stack (no cross-attention).
        self.layers = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        nn.init.normal_(self.pos, std=0.02)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        n = x.shape[1]
        x = x + self.pos[:n].to(x.dtype)  # (B, N, D)
        return self.norm(self.layers(x, mask=mask))  # (B, N, D)
