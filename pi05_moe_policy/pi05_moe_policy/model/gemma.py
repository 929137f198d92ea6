"""Gemma blocks and the VLM + action-expert transformer with shared attention.

Module and weight names follow HF Gemma (``self_attn.q_proj``, ``mlp.gate_proj``,
``input_layernorm``, ...), so public PaliGemma / PI0.5 weights can be mapped onto them.

The two streams (the VLM prefix and the action-expert suffix) have their own weights but share
each layer's attention: Q/K/V are computed per stream, concatenated along the sequence, attended
once with ``F.scaled_dot_product_attention`` and split back.  The expert may be conditioned with
adaRMS (PI0.5): its norms get ``scale, shift, gate`` from a zero-initialised ``Linear(cond)``.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F  # noqa: N812
import torch.utils.checkpoint
from torch import nn

# One layer's cached prefix keys and values, post-RoPE: ((B, KV, P, hd), (B, KV, P, hd)).
LayerKV = tuple[torch.Tensor, torch.Tensor]


class StaticKV(NamedTuple):
    """A layer's prefix keys and values in buffers with room for the suffix, (B, KV, P+S, hd)
    each: every denoising step writes its suffix K/V into the tail in place and attends over the
    whole buffer, so no step allocates or concatenates a (P+S)-long K/V, and the addresses stay
    fixed (what CUDA graphs need).  ``p_len``: P."""

    k: torch.Tensor
    v: torch.Tensor
    p_len: int

    def extend(self, k: torch.Tensor, v: torch.Tensor) -> LayerKV:
        """The prefix + this step's suffix (B, KV, S, hd) as (K, V) (B, KV, P+S, hd)."""
        if torch.is_grad_enabled() and (k.requires_grad or v.requires_grad):
            # RTC guidance differentiates the step: an in-place write would chain the buffer
            # into every later step's graph, so concatenate as the dynamic cache does.
            p = self.p_len
            return (torch.cat([self.k[:, :, :p], k.to(self.k.dtype)], dim=2),
                    torch.cat([self.v[:, :, :p], v.to(self.v.dtype)], dim=2))
        self.k[:, :, self.p_len:].copy_(k)
        self.v[:, :, self.p_len:].copy_(v)
        return self.k, self.v


def static_cache(cache: list[LayerKV], suffix_len: int) -> list[StaticKV]:
    """A prefix cache (per layer (B, KV, P, hd) twice) copied into StaticKV buffers with
    ``suffix_len`` free rows at the end (once per chunk)."""
    out = []
    for k, v in cache:
        b, kv, p, hd = k.shape
        kb = k.new_empty(b, kv, p + suffix_len, hd)  # (B, KV, P+S, hd)
        vb = v.new_empty(b, kv, p + suffix_len, hd)
        kb[:, :, :p].copy_(k)
        vb[:, :, :p].copy_(v)
        out.append(StaticKV(kb, vb, p))
    return out


def additive_mask(allowed: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """A bool attention mask (True = may attend) as the additive float mask SDPA adds to the
    scores (0 or the dtype's lowest value), made once instead of converted at every call."""
    return torch.zeros(allowed.shape, dtype=dtype, device=allowed.device).masked_fill_(
        ~allowed, torch.finfo(dtype).min)


class RMSNorm(nn.Module):
    """Gemma RMSNorm ``x * rsqrt(mean(x^2) + eps) * (1 + w)`` with ``w`` zero-initialised.

    With ``cond_dim`` it is adaRMS: ``dense(cond)`` (zero-init) gives scale, shift and gate,
    ``out = normed * (1 + scale) + shift``; the gate is returned for the gated residual.
    """

    def __init__(self, dim: int, eps: float = 1e-6, cond_dim: int | None = None):
        super().__init__()
        self.eps = eps
        self.cond_dim = cond_dim
        if cond_dim is None:
            self.weight = nn.Parameter(torch.zeros(dim))
        else:
            self.dense = nn.Linear(cond_dim, 3 * dim)
            nn.init.zeros_(self.dense.weight)
            nn.init.zeros_(self.dense.bias)

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x: (B, T, D); cond: (B, C), or (B, T, C) per token (RTC's per-token flow time), or
        None.  Returns (normed (B, T, D), gate (B, 1 or T, D) | None)."""
        dtype = x.dtype
        xf = x.float()
        normed = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)  # (B, T, D)
        if self.cond_dim is None:
            if cond is not None:
                raise ValueError('this RMSNorm has no adaRMS dense layer but got a cond')
            return (normed * (1.0 + self.weight.float())).to(dtype), None
        if cond is None:
            raise ValueError('adaRMS norm needs a cond tensor')
        mod = self.dense(cond.to(self.dense.weight.dtype)).float()  # (B, [T,] 3D)
        if mod.dim() == 2:
            mod = mod[:, None, :]  # (B, 1, 3D)
        scale, shift, gate = mod.chunk(3, dim=-1)  # 3 x (B, 1 or T, D)
        return (normed * (1.0 + scale) + shift).to(dtype), gate.to(dtype)


def gated_residual(x: torch.Tensor, y: torch.Tensor, gate: torch.Tensor | None) -> torch.Tensor:
    """``x + y * gate`` (adaRMS) or ``x + y``."""
    return x + y if gate is None else x + y * gate


class GemmaAttention(nn.Module):
    """Q/K/V/O projections of one stream (the attention is shared: SharedAttentionGemma)."""

    def __init__(self, width: int, num_heads: int, num_kv_heads: int, head_dim: int):
        super().__init__()
        self.num_heads = num_heads
        self.num_kv_heads = num_kv_heads
        self.head_dim = head_dim
        self.q_proj = nn.Linear(width, num_heads * head_dim, bias=False)
        self.k_proj = nn.Linear(width, num_kv_heads * head_dim, bias=False)
        self.v_proj = nn.Linear(width, num_kv_heads * head_dim, bias=False)
        self.o_proj = nn.Linear(num_heads * head_dim, width, bias=False)

    def qkv(self, h: torch.Tensor, with_q: bool = True
            ) -> tuple[torch.Tensor | None, torch.Tensor, torch.Tensor]:
        """h: (B, T, D) -> q (B, H, T, hd) or None, k and v (B, KV, T, hd)."""
        b, t, _ = h.shape
        q = None
        if with_q:
            q = self.q_proj(h).view(b, t, self.num_heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(h).view(b, t, self.num_kv_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(h).view(b, t, self.num_kv_heads, self.head_dim).transpose(1, 2)
        return q, k, v


class GemmaMLP(nn.Module):
    """GeGLU: ``down(gelu_tanh(gate(x)) * up(x))``."""

    def __init__(self, width: int, mlp_dim: int):
        super().__init__()
        self.gate_proj = nn.Linear(width, mlp_dim, bias=False)
        self.up_proj = nn.Linear(width, mlp_dim, bias=False)
        self.down_proj = nn.Linear(mlp_dim, width, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.gelu(self.gate_proj(x), approximate='tanh') * self.up_proj(x))


class GemmaDecoderLayer(nn.Module):
    def __init__(self, width: int, mlp_dim: int, num_heads: int, num_kv_heads: int,
                 head_dim: int, eps: float, cond_dim: int | None):
        super().__init__()
        self.self_attn = GemmaAttention(width, num_heads, num_kv_heads, head_dim)
        self.mlp = GemmaMLP(width, mlp_dim)
        self.input_layernorm = RMSNorm(width, eps, cond_dim)
        self.post_attention_layernorm = RMSNorm(width, eps, cond_dim)


class GemmaStack(nn.Module):
    """One stream: optional token embedding, decoder layers and the final norm."""

    def __init__(self, width: int, depth: int, mlp_dim: int, num_heads: int, num_kv_heads: int,
                 head_dim: int, eps: float, vocab_size: int | None = None,
                 cond_dim: int | None = None):
        super().__init__()
        self.width = width
        self.embed_tokens = nn.Embedding(vocab_size, width) if vocab_size else None
        self.layers = nn.ModuleList(
            GemmaDecoderLayer(width, mlp_dim, num_heads, num_kv_heads, head_dim, eps, cond_dim)
            for _ in range(depth))
        self.norm = RMSNorm(width, eps, cond_dim)


def rope_cos_sin(position_ids: torch.Tensor, head_dim: int, theta: float
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """position_ids: (B, T) -> cos, sin (B, 1, T, hd) in float32 (HF rotate-half layout)."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32,
                                             device=position_ids.device) / head_dim))
    freqs = position_ids.float()[..., None] * inv_freq  # (B, T, hd/2)
    emb = torch.cat([freqs, freqs], dim=-1)[:, None]  # (B, 1, T, hd)
    return emb.cos(), emb.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x: (B, H, T, hd) rotated in float32, returned in x's dtype."""
    xf = x.float()
    x1, x2 = xf.chunk(2, dim=-1)
    rotated = torch.cat([-x2, x1], dim=-1)
    return (xf * cos + rotated * sin).to(x.dtype)


class SharedAttentionGemma(nn.Module):
    """The VLM (prefix stream) and the action expert (suffix stream), sharing attention."""

    def __init__(self, vlm: GemmaStack, expert: GemmaStack, head_dim: int, rope_theta: float):
        super().__init__()
        self.language_model = vlm
        self.action_expert = expert
        self.head_dim = head_dim
        self.rope_theta = rope_theta
        self.gradient_checkpointing = False  # recompute each layer in backward (training only)

    def forward(
        self,
        prefix: torch.Tensor | None,
        suffix: torch.Tensor | None,
        attn_mask: torch.Tensor,
        position_ids: torch.Tensor,
        adarms_cond: torch.Tensor | None = None,
        past_kv: list[LayerKV] | list[StaticKV] | None = None,
        build_cache: bool = False,
        rope: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor | None, list[LayerKV] | None]:
        """Run the layers.

        prefix: (B, P, Dv) VLM-stream input or None; suffix: (B, S, De) or None.
        attn_mask: (B, Q, K) bool, True = may attend, or the same as an additive float mask
            (``additive_mask``); Q covers the streams given, K also covers ``past_kv``
            (prepended).  position_ids: (B, Q).
        past_kv: a prefix KV cache from ``build_cache=True`` (then ``prefix`` must be None),
            or the same as ``static_cache`` buffers (the suffix K/V written in place).
        build_cache: prefix only; return per-layer (K, V) and no hidden states.  The prefix's
            last-layer attention output and MLP are skipped: nothing downstream reads them.
        rope: precomputed ``rope_cos_sin(position_ids)`` (sampling reuses it every step).

        Returns (suffix output after the final norm (B, S, De) or None, the cache or None).
        When a suffix is given the prefix's final outputs are never needed, so the last layer
        only computes suffix queries.
        """
        if build_cache and (suffix is not None or prefix is None):
            raise ValueError('build_cache runs the prefix alone')
        if past_kv is not None and prefix is not None:
            raise ValueError('with past_kv only the suffix is run')
        if rope is None:
            rope = rope_cos_sin(position_ids, self.head_dim, self.rope_theta)
        mask = attn_mask[:, None]  # (B, 1, Q, K)
        cache: list[LayerKV] = []
        depth = len(self.language_model.layers)
        ckpt = self.gradient_checkpointing and self.training and torch.is_grad_enabled()
        for i in range(depth):
            past = past_kv[i] if past_kv is not None else None
            args = (i, prefix, suffix, adarms_cond, rope[0], rope[1], mask, past, build_cache)
            if ckpt:
                prefix, suffix, kv = torch.utils.checkpoint.checkpoint(
                    self._layer, *args, use_reentrant=False)
            else:
                prefix, suffix, kv = self._layer(*args)
            if build_cache:
                cache.append(kv)
        if build_cache:
            return None, cache
        out, _ = self.action_expert.norm(suffix, adarms_cond)
        return out, None

    def _layer(self, i: int, prefix: torch.Tensor | None, suffix: torch.Tensor | None,
               cond: torch.Tensor | None, cos: torch.Tensor, sin: torch.Tensor,
               mask: torch.Tensor, past: LayerKV | None, build_cache: bool):
        """One layer -> (prefix, suffix, this layer's prefix (K, V) when caching)."""
        last = i == len(self.language_model.layers) - 1
        p_len = prefix.shape[1] if prefix is not None else 0
        streams = []  # (layer, hidden, cond, need_q)
        if prefix is not None:
            # The prefix's last-layer queries only feed outputs nobody reads.
            need_q = not (last and (suffix is not None or build_cache))
            streams.append((self.language_model.layers[i], prefix, None, need_q))
        if suffix is not None:
            streams.append((self.action_expert.layers[i], suffix, cond, True))
        qs, ks, vs, gates = [], [], [], []
        for layer, h, c, need_q in streams:
            normed, gate = layer.input_layernorm(h, c)  # (B, T, D)
            q, k, v = layer.self_attn.qkv(normed, with_q=need_q)
            qs.append(q)
            ks.append(k)
            vs.append(v)
            gates.append(gate)
        k = apply_rope(torch.cat(ks, dim=2), cos, sin)  # (B, KV, Q, hd)
        v = torch.cat(vs, dim=2)
        kv = (k, v) if build_cache else None
        if build_cache and last:
            return None, None, kv
        if isinstance(past, StaticKV):
            k, v = past.extend(k, v)  # (B, KV, P+S, hd)
        elif past is not None:
            k = torch.cat([past[0], k], dim=2)  # (B, KV, P+S, hd)
            v = torch.cat([past[1], v], dim=2)
        q = torch.cat([q for q in qs if q is not None], dim=2)  # (B, H, Qa, hd)
        q_from = 0 if qs[0] is not None else p_len  # rows of the mask that have queries
        q = apply_rope(q, cos[:, :, q_from:], sin[:, :, q_from:])
        m = mask[:, :, q_from:]
        if m.is_floating_point() and m.dtype != q.dtype:  # an additive mask made for fp32
            m = m.to(q.dtype)
        out = F.scaled_dot_product_attention(
            q, k.to(q.dtype), v.to(q.dtype), attn_mask=m,
            enable_gqa=q.shape[1] != k.shape[1])  # (B, H, Qa, hd)
        out = out.transpose(1, 2).flatten(2)  # (B, Qa, H*hd)
        new_states = []
        start = 0
        for (layer, h, c, need_q), gate in zip(streams, gates):
            if not need_q:
                new_states.append(None)
                continue
            t = h.shape[1]
            y = layer.self_attn.o_proj(out[:, start:start + t])  # (B, T, D)
            start += t
            h = gated_residual(h, y, gate)
            normed, gate2 = layer.post_attention_layernorm(h, c)
            h = gated_residual(h, layer.mlp(normed), gate2)
            new_states.append(h)
        prefix = new_states.pop(0) if prefix is not None else None
        suffix = new_states.pop(0) if suffix is not None else None
        return prefix, suffix, kv


def init_gemma_weights(module: nn.Module, std: float = 0.02) -> None:
    """Gemma-style init for Linear/Embedding; adaRMS dense layers stay zero (identity blocks)."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            # Scaled by sqrt(width) at use, so unit-variance language embeddings.
            nn.init.normal_(m.weight, std=1.0 / math.sqrt(m.embedding_dim))
    for m in module.modules():
        if isinstance(m, RMSNorm) and m.cond_dim is not None:
            nn.init.zeros_(m.dense.weight)
            nn.init.zeros_(m.dense.bias)
