"""The instruction encoder: our tokenizer's ids -> a learned embedding -> a small transformer
encoder -> mean over the real tokens = the conditioning vector of FiLM (and the prompt input of
the camera router).

RT-1 embeds the instruction with the Universal Sentence Encoder, a frozen TF-Hub model. It is
not used here: it cannot be downloaded at run time (nothing may be), it does not run in torch,
and it would make the baseline depend on a second framework.  A small encoder trained with the
policy is enough for the sim's handful of prompts ("lift the red cube" / "lift the hot cube"),
where what matters is telling the prompts apart, not generalising to unseen phrasings; it is a
stated difference from RT-1 when comparing on language generalisation.
"""

from __future__ import annotations

import torch
from torch import nn


class InstructionEncoder(nn.Module):
    """tokens (B, L) long, mask (B, L) bool -> (embedding (B, D), per-token states (B, L, D))."""

    def __init__(self, vocab_size: int, dim: int, depth: int, num_heads: int, max_len: int,
                 dropout: float = 0.0):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, dim)
        self.pos = nn.Parameter(torch.zeros(max_len, dim))
        layer = nn.TransformerEncoderLayer(dim, num_heads, 2 * dim, dropout, activation='gelu',
                                           batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        nn.init.normal_(self.embed.weight, std=0.02)
        nn.init.normal_(self.pos, std=0.02)

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        b, length = tokens.shape
        if length > self.pos.shape[0]:
            raise ValueError(f'{length} prompt tokens exceed RT1Config.max_text_len='
                             f'{self.pos.shape[0]}')
        mask = mask.bool()
        x = self.embed(tokens) + self.pos[:length]  # (B, L, D)
        # An all-padding row would give NaN attention: let it see its first token.
        keep = mask.clone()
        keep[:, 0] |= ~mask.any(dim=1)
        x = self.norm(self.encoder(x, src_key_padding_mask=~keep))  # (B, L, D)
        m = mask.to(x.dtype)[..., None]  # (B, L, 1)
        pooled = (x * m).sum(1) / m.sum(1).clamp_min(1.0)  # (B, D)
        return pooled, x
