"""PI0.5 (and PI0) with router-gated camera fusion: the whole model.

Batch (all tensors, built by ``pi05_moe_policy.transforms``):
    images        float (B, C, 3, S, S) in [-1, 1], the base camera then the experts
    image_masks   bool  (B, C)      False = camera missing (zeros in, mask off)
    tokens        long  (B, L)      prompt tokens (PI0.5: task + discretised state)
    token_mask    bool  (B, L)
    state         float (B, 32)     quantile-normalised, zero-padded
    actions       float (B, H, 32)  quantile-normalised, zero-padded       (training)
    action_is_pad bool  (B, H)      optional: steps past the episode end    (training)
    action_dim_mask bool (B, 32)    real action dims (the transforms set it; default: all)
    camera_active float (B, N)      optional: per-expert "active" labels (NaN row = unlabelled)
"""

from __future__ import annotations

import dataclasses
import math
import time as _time
from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from pi05_moe_policy.model.camera_router import CameraMoE, RouterOutput
from pi05_moe_policy.model.config import ModelConfig
from pi05_moe_policy.model.gemma import (
    GemmaStack,
    LayerKV,
    SharedAttentionGemma,
    additive_mask,
    init_gemma_weights,
    rope_cos_sin,
    static_cache,
)
from pi05_moe_policy.model.losses import action_mask, add_routing_loss, check_actions
from pi05_moe_policy.model.rtc import (
    guidance_weight,
    prefix_weights,
    sample_delays,
    token_times,
)
from pi05_moe_policy.model.time_embedding import sincos_time_embedding
from pi05_moe_policy.model.vision import VisionEncoder

# The training loss's defaults (seed 000 / openpi); a run's TrainConfig passes its own.
ROUTING_LOSS_WEIGHT = 0.1
FOCAL_ALPHA, FOCAL_GAMMA = 0.25, 2.0
TIME_BETA_ALPHA, TIME_BETA_BETA = 1.5, 1.0


def make_att_2d_masks(pad_masks: torch.Tensor, att_masks: torch.Tensor) -> torch.Tensor:
    """Prefix-LM masks by the cumsum rule (big_vision / openpi).

    pad_masks: (B, N) bool, True = real token.  att_masks: (B, N) int, 1 where a new block
    starts that earlier tokens may not see.  A token attends to every real token whose
    cumulative block id is <= its own.  Returns (B, N, N) bool.  Padding queries also see
    themselves so no attention row is empty (their outputs are never read).
    """
    cum = torch.cumsum(att_masks.long(), dim=1)  # (B, N)
    att_2d = cum[:, None, :] <= cum[:, :, None]  # (B, N, N)
    pad_2d = pad_masks[:, None, :] & pad_masks[:, :, None]
    eye = torch.eye(pad_masks.shape[1], dtype=torch.bool, device=pad_masks.device)
    return (att_2d & pad_2d) | eye


def trim_prompt_padding(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop the token columns that are padding in every row (inference only).

    Prompts are padded at the end to ``max_token_len`` (64 for ``small``, where a sim prompt is
    ~5 tokens), and padded tokens change nothing downstream: they are masked out as keys,
    their queries' outputs are never read, and positions count real tokens only
    (``cumsum(pad) - 1``).  So the prefix shrinks from image + L to image + max real length
    tokens with the same actions (to float rounding).  tokens, token_mask (B, L) -> (B, L')."""
    mask = batch['token_mask'].bool()  # (B, L)
    real = torch.nonzero(mask.any(dim=0)).flatten()
    keep = int(real[-1]) + 1 if real.numel() else 1  # one column at least: shapes stay valid
    if keep >= mask.shape[1]:
        return batch
    return {**batch, 'tokens': batch['tokens'][:, :keep], 'token_mask': mask[:, :keep]}


@dataclasses.dataclass
class Prefix:
    embs: torch.Tensor  # (B, P, D)
    pad: torch.Tensor  # (B, P) bool
    att: torch.Tensor  # (B, P) int
    route: RouterOutput | None


class _Timer:
    """Wall-clock stages in ms; synchronises CUDA so GPU figures are honest."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == 'cuda'
        self.ms: dict[str, float] = {}
        self._t = self._now()

    def _now(self) -> float:
        if self.cuda:
            torch.cuda.synchronize()
        return _time.perf_counter()

    def lap(self, name: str) -> None:
        now = self._now()
        self.ms[name] = self.ms.get(name, 0.0) + (now - self._t) * 1e3
        self._t = now


class Pi05Model(nn.Module):
    """The network: SigLIP + (camera MoE) + Gemma VLM prefix, Gemma action expert suffix."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        cfg = config
        self.config = cfg
        self.vision = VisionEncoder(cfg)
        vlm = GemmaStack(cfg.vlm_width, cfg.vlm_depth, cfg.vlm_mlp_dim, cfg.vlm_num_heads,
                         cfg.vlm_num_kv_heads, cfg.vlm_head_dim, cfg.rms_norm_eps,
                         vocab_size=cfg.vocab_size)
        expert = GemmaStack(cfg.expert_width, cfg.expert_depth, cfg.expert_mlp_dim,
                            cfg.expert_num_heads, cfg.expert_num_kv_heads, cfg.expert_head_dim,
                            cfg.rms_norm_eps, vocab_size=None,
                            cond_dim=cfg.expert_width if cfg.pi05 else None)
        self.gemma = SharedAttentionGemma(vlm, expert, cfg.vlm_head_dim, cfg.rope_theta)
        self.camera_moe = CameraMoE(cfg) if cfg.use_camera_moe else None
        w = cfg.expert_width
        self.action_in_proj = nn.Linear(cfg.action_dim, w)
        self.action_out_proj = nn.Linear(w, cfg.action_dim)
        if cfg.pi05:
            self.time_mlp_in = nn.Linear(w, w)
            self.time_mlp_out = nn.Linear(w, w)
        else:
            self.state_proj = nn.Linear(cfg.max_state_dim, w)
            self.action_time_mlp_in = nn.Linear(2 * w, w)
            self.action_time_mlp_out = nn.Linear(w, w)
        self._init_weights()

    def _init_weights(self) -> None:
        if next(self.parameters()).device.type == 'meta':
            return
        init_gemma_weights(self.gemma)
        for name in ('action_in_proj', 'action_out_proj', 'time_mlp_in', 'time_mlp_out',
                     'state_proj', 'action_time_mlp_in', 'action_time_mlp_out'):
            if hasattr(self, name):
                init_gemma_weights(getattr(self, name))
        if self.camera_moe is not None:
            self.camera_moe.reset_fusion()

    def set_gradient_checkpointing(self, enabled: bool = True) -> None:
        """Recompute the Gemma layers and the SigLIP layers in backward (less memory)."""
        self.gemma.gradient_checkpointing = bool(enabled)
        tower = self.vision.vision_tower
        # transformers 5 renamed gradient_checkpointing_* to activation_checkpointing_*.
        if hasattr(tower, 'activation_checkpointing_enable'):
            on, off, key = (tower.activation_checkpointing_enable,
                            tower.activation_checkpointing_disable,
                            'activation_checkpointing_kwargs')
        else:
            on, off, key = (tower.gradient_checkpointing_enable,
                            tower.gradient_checkpointing_disable, 'gradient_checkpointing_kwargs')
        if enabled:
            on(**{key: {'use_reentrant': False}})
        else:
            off()

    @property
    def dtype(self) -> torch.dtype:
        return self.action_in_proj.weight.dtype

    @property
    def device(self) -> torch.device:
        return self.action_in_proj.weight.device

    # ------------------------------------------------------------------ prefix
    def embed_language(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens: (B, L) -> (B, L, D), scaled by sqrt(width) (the only place it happens)."""
        emb = self.gemma.language_model.embed_tokens(tokens)  # (B, L, D)
        return emb * math.sqrt(emb.shape[-1])

    def encode_images(self, images: torch.Tensor, image_masks: torch.Tensor) -> torch.Tensor:
        """images: (B, C, 3, S, S), masks (B, C) -> camera tokens (B, C, T, D).

        Cameras missing in the whole batch skip the vision tower (zeros); in a mixed batch the
        missing ones are zeroed after it.
        """
        b, c = images.shape[:2]
        t, d = self.config.num_image_tokens, self.config.vlm_width
        if images.device.type == 'meta':  # shape-only runs (FLOP counting): every camera
            idx = list(range(c))
        else:
            idx = torch.nonzero(image_masks.any(dim=0)).flatten().tolist()  # present cameras
        if not idx:
            return torch.zeros(b, c, t, d, dtype=self.dtype, device=images.device)
        pix = images[:, idx].flatten(0, 1)  # (B*C', 3, S, S)
        tok = self.vision(pix).view(b, len(idx), t, d)  # (B, C', T, D)
        # The tower's output dtype, not the weights': under autocast it is bf16 (issue #19).
        out = torch.zeros(b, c, t, d, dtype=tok.dtype, device=images.device)
        out[:, idx] = tok * image_masks[:, idx].to(tok.dtype)[:, :, None, None]
        return out

    def embed_prefix(self, batch: dict[str, torch.Tensor], cam_tokens: torch.Tensor,
                     route: RouterOutput | None = None) -> Prefix:
        """Image tokens (fused by the camera MoE, or all cameras concatenated) + language.
        ``route``: the router's output when already computed (sparse routing)."""
        masks = batch['image_masks'].bool()  # (B, C)
        tok_mask = batch['token_mask'].bool()  # (B, L)
        lang = self.embed_language(batch['tokens'])  # (B, L, D)
        b, c, t, _ = cam_tokens.shape
        if self.camera_moe is not None:
            state = batch['state'].to(self.dtype)
            img, route = self.camera_moe(cam_tokens[:, 0], cam_tokens[:, 1:], masks[:, 1:],
                                         lang, tok_mask, state, route=route)  # (B, T, D)
            img_pad = masks[:, :1].expand(b, t)  # the base camera's mask
        else:
            route = None
            img = cam_tokens.flatten(1, 2)  # (B, C*T, D)
            img_pad = masks[:, :, None].expand(b, c, t).flatten(1)  # (B, C*T)
        embs = torch.cat([img, lang.to(img.dtype)], dim=1)  # (B, P, D)
        pad = torch.cat([img_pad, tok_mask], dim=1)  # (B, P)
        att = torch.zeros_like(pad, dtype=torch.long)  # the prefix is one bidirectional block
        return Prefix(embs, pad, att, route)

    def encode_routed(self, batch: dict[str, torch.Tensor], threshold: float
                      ) -> tuple[torch.Tensor, torch.Tensor, RouterOutput]:
        """Sparse routing at inference: the router reads only the base camera and the prompt
        (and the state), so it runs first, and an expert camera whose weight is below
        ``threshold`` in every row is not encoded at all: it enters the fusion as a missing
        camera (zeros) instead of ``w * F`` with a small w.

        -> camera tokens (B, C, T, D) (zeros for the skipped), the image masks (B, C) with
        the skipped experts off, and the router's output (the weights of every expert)."""
        images, masks = batch['images'], batch['image_masks'].bool()  # (B, C, 3, S, S), (B, C)
        base = self.encode_images(images[:, :1], masks[:, :1])  # (B, 1, T, D)
        lang = self.embed_language(batch['tokens'])  # (B, L, D)
        route = self.camera_moe.router(base[:, 0], lang, batch['token_mask'].bool(),
                                       batch['state'].to(self.dtype))
        keep = masks.clone()  # (B, C)
        keep[:, 1:] &= (route.weights >= threshold).any(dim=0)[None, :]
        experts = self.encode_images(images[:, 1:], keep[:, 1:])  # (B, N, T, D), zeros if off
        return torch.cat([base, experts.to(base.dtype)], dim=1), keep, route

    # ------------------------------------------------------------------ suffix
    def suffix_att(self) -> list[int]:
        """Block starts of the suffix: PI0.5 [actions...]; PI0 [state] [actions...].  The
        actions form one block: they see the prefix (and state) and each other."""
        h = self.config.action_horizon
        return [1] + [0] * (h - 1) if self.config.pi05 else [1, 1] + [0] * (h - 1)

    def time_features(self, t: torch.Tensor) -> torch.Tensor:
        """t: (B,) -> PI0.5: the adaRMS cond silu(out(silu(in(sincos(t))))); PI0: sincos(t).
        (B, De); per-token times (B, H) (RTC) give (B, H, De).  Depends on t only, so sampling
        computes every step's at once."""
        cfg = self.config
        if t.dim() == 2:  # (B, H) per-token times
            return self.time_features(t.flatten()).view(*t.shape, -1)  # (B, H, De)
        emb = sincos_time_embedding(t, cfg.expert_width, cfg.time_min_period,
                                    cfg.time_max_period).to(self.dtype)  # (B, De)
        if not cfg.pi05:
            return emb
        return F.silu(self.time_mlp_out(F.silu(self.time_mlp_in(emb))))

    def embed_suffix(self, state: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor,
                     time_feat: torch.Tensor | None = None
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """state: (B, 32), x_t: (B, H, A), t: (B,) or per token (B, H) -> embs (B, S, De),
        pad (B, S), att (B, S), adaRMS cond (B, De) or (B, H, De), or None.  S = H (PI0.5)
        or 1 + H (PI0).  time_feat: ``time_features(t)`` if already computed."""
        cfg = self.config
        b = x_t.shape[0]
        feat = self.time_features(t) if time_feat is None else time_feat  # (B, De)
        action_emb = self.action_in_proj(x_t.to(self.dtype))  # (B, H, De)
        dev = x_t.device
        if cfg.pi05:
            cond = feat
            embs = action_emb
        else:
            cond = None
            te = feat[:, None, :].expand_as(action_emb) if feat.dim() == 2 else feat  # (B, H, De)
            x = torch.cat([action_emb, te], dim=-1)  # (B, H, 2De)
            action_time = self.action_time_mlp_out(F.silu(self.action_time_mlp_in(x)))
            state_emb = self.state_proj(state.to(self.dtype))[:, None, :]  # (B, 1, De)
            embs = torch.cat([state_emb, action_time], dim=1)  # (B, 1+H, De)
        pad = torch.ones(b, embs.shape[1], dtype=torch.bool, device=dev)
        att_t = torch.tensor(self.suffix_att(), dtype=torch.long, device=dev)[None].expand(b, -1)
        return embs, pad, att_t, cond

    # ------------------------------------------------------------------ velocity
    def _velocity_shared_attention(self, prefix: Prefix, state: torch.Tensor, x_t: torch.Tensor,
                        t: torch.Tensor) -> torch.Tensor:
        """Full prefix + suffix pass (training; the no-cache reference). -> v_t (B, H, A)."""
        s_embs, s_pad, s_att, cond = self.embed_suffix(state, x_t, t)
        pad = torch.cat([prefix.pad, s_pad], dim=1)
        att = torch.cat([prefix.att, s_att], dim=1)
        mask = make_att_2d_masks(pad, att)  # (B, P+S, P+S)
        pos = torch.cumsum(pad.long(), dim=1) - 1
        out, _ = self.gemma(prefix.embs, s_embs.to(prefix.embs.dtype), mask, pos, cond)
        h = self.config.action_horizon
        return self.action_out_proj(out[:, -h:]).float()  # (B, H, A)

    def build_prefix_cache(self, prefix: Prefix) -> list[LayerKV]:
        mask = make_att_2d_masks(prefix.pad, prefix.att)  # (B, P, P)
        pos = torch.cumsum(prefix.pad.long(), dim=1) - 1
        _, cache = self.gemma(prefix.embs, None, mask, pos, build_cache=True)
        return cache

    def suffix_rows(self, prefix: Prefix, b: int, device: torch.device) -> tuple:
        """Attention rows (B, S, P+S), position ids (B, S) and their RoPE of the suffix against
        the cached prefix: the last S rows of the full prefix-LM mask, so both paths agree
        exactly.  They do not depend on the step, so sampling computes them once per chunk."""
        s_att = self.suffix_att()
        s = len(s_att)
        s_att_t = torch.tensor(s_att, dtype=torch.long, device=device)[None].expand(b, -1)
        pad = torch.cat([prefix.pad, torch.ones(b, s, dtype=torch.bool, device=device)], dim=1)
        att = torch.cat([prefix.att, s_att_t], dim=1)
        mask = make_att_2d_masks(pad, att)[:, -s:]  # (B, S, P+S)
        pos = (torch.cumsum(pad.long(), dim=1) - 1)[:, -s:]  # (B, S)
        return mask, pos, rope_cos_sin(pos, self.config.vlm_head_dim, self.config.rope_theta)

    def _velocity_cached(self, prefix: Prefix, cache: list[LayerKV], rows: tuple,
                         state: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor,
                         time_feat: torch.Tensor | None = None) -> torch.Tensor:
        """Expert-only pass against the prefix KV cache. -> v_t (B, H, A)."""
        s_embs, _, _, cond = self.embed_suffix(state, x_t, t, time_feat)
        mask, pos, rope = rows
        out, _ = self.gemma(None, s_embs.to(prefix.embs.dtype), mask, pos, cond, past_kv=cache,
                            rope=rope)
        h = self.config.action_horizon
        return self.action_out_proj(out[:, -h:]).float()

    def compile_for_inference(self) -> None:
        """``torch.compile`` the denoising step (the expert against the prefix cache), which
        runs ``num_steps`` times a chunk and is bound by the overhead of its many small ops.
        Shapes are marked dynamic (the prefix length follows the prompt), so one compilation
        serves every prompt; the first chunk pays it (tens of seconds on a small CPU: warm up
        at start). Needs a C++ compiler on a CPU (Inductor)."""
        if '_velocity_cached' not in self.__dict__:  # compiled once: an instance attribute
            self._velocity_cached = torch.compile(self._velocity_cached, dynamic=True)

    # ------------------------------------------------------------------ training
    @staticmethod
    def sample_time(b: int, device: torch.device, alpha: float = TIME_BETA_ALPHA,
                    beta: float = TIME_BETA_BETA) -> torch.Tensor:
        """(B,) flow-matching times ~ Beta(alpha, beta) * 0.999 + 0.001, in [0.001, 1]."""
        dist = torch.distributions.Beta(torch.tensor(float(alpha), device=device),
                                        torch.tensor(float(beta), device=device))
        return dist.sample((b,)) * 0.999 + 0.001  # (B,)

    def compute_loss(self, batch: dict[str, torch.Tensor], noise: torch.Tensor | None = None,
                     time: torch.Tensor | None = None,
                     routing_loss_weight: float = ROUTING_LOSS_WEIGHT,
                     focal_alpha: float = FOCAL_ALPHA, focal_gamma: float = FOCAL_GAMMA,
                     time_beta: tuple[float, float] = (TIME_BETA_ALPHA, TIME_BETA_BETA),
                     rtc_max_delay: int = 0, rtc_delay: torch.Tensor | None = None,
                     rtc_zero_delay_prob: float = 0.0) -> tuple[torch.Tensor, dict[str, Any]]:
        """Flow matching (``x_t = t*noise + (1-t)*a``, target ``u = noise - a``) on the real
        action dims (``batch['action_dim_mask']``, which the transforms set; every dim when it
        is absent), plus ``routing_loss_weight`` x the focal routing loss when labels are given.

        Training-time RTC (``rtc_max_delay`` D > 0, or explicit ``rtc_delay`` (B,) rows): the
        first d ~ U{0..D} actions of each chunk get flow time 0 (they enter clean, as the
        committed prefix does at inference) and are kept out of the loss; a sample's d is 0
        with probability ``rtc_zero_delay_prob``; info then holds ``rtc_delay`` (B,) and
        ``token_time`` (B, H).

        The loss settings are arguments (the training run's ``TrainConfig`` owns them); the
        defaults are the seeds': weight 0.1, focal alpha 0.25 / gamma 2, time ~ Beta(1.5, 1).
        Returns (loss, info); info holds detached tensors: action_loss, routing_loss,
        routing_loss_weight, routing_weights (B, N), routing_probs (B, N) and, with labels,
        routing_accuracy.
        """
        cfg = self.config
        actions = check_actions(batch, cfg.action_horizon, cfg.action_dim)  # (B, H, A)
        b, h, a = actions.shape
        dev = actions.device
        noise = torch.randn_like(actions) if noise is None else noise.float()
        time = self.sample_time(b, dev, *time_beta) if time is None else time.float()
        if rtc_delay is None and rtc_max_delay > 0:
            rtc_delay = sample_delays(b, min(int(rtc_max_delay), h - 1), dev,
                                      zero_prob=rtc_zero_delay_prob)  # (B,)
        t_in = time if rtc_delay is None else token_times(time, rtc_delay, h)  # (B,) | (B, H)
        tt = time[:, None, None] if t_in.dim() == 1 else t_in[:, :, None]  # (B, 1|H, 1)
        x_t = tt * noise + (1.0 - tt) * actions
        u_t = noise - actions
        cam = self.encode_images(batch['images'], batch['image_masks'].bool())
        prefix = self.embed_prefix(batch, cam)
        v_t = self._velocity_shared_attention(prefix, batch['state'], x_t, t_in)
        se = (v_t - u_t).pow(2)  # (B, H, A)
        m = action_mask(batch, (b, h, a), dev)  # (B, H, A)
        if rtc_delay is not None:  # the clean prefix rows are given, not predicted
            rows = torch.arange(h, device=dev)[None, :]  # (1, H)
            m = m & (rows >= rtc_delay.to(dev)[:, None])[:, :, None]
        mf = m.float()
        action_loss = (se * mf).sum() / mf.sum().clamp_min(1.0)
        info: dict[str, Any] = {'action_loss': action_loss.detach()}
        if rtc_delay is not None:
            info['rtc_delay'] = rtc_delay.detach()
            info['token_time'] = t_in.detach()
        route = None if prefix.route is None else (prefix.route.probs, prefix.route.weights)
        loss = add_routing_loss(action_loss, info, route, batch.get('camera_active'),
                                routing_loss_weight, focal_alpha, focal_gamma)
        return loss, info

    forward = compute_loss

    # ------------------------------------------------------------------ inference
    @torch.no_grad()
    def sample_actions(self, batch: dict[str, torch.Tensor], noise: torch.Tensor | None = None,
                       num_steps: int | None = None, use_kv_cache: bool = True,
                       prefix_actions: torch.Tensor | None = None, prefix_len: int = 0,
                       schedule: str | None = None, rtc_mode: str | None = None,
                       sparse_threshold: float = 0.0, trim_prompt: bool = True,
                       static_kv: bool | None = None) -> tuple[torch.Tensor, dict[str, Any]]:
        """Euler integration from t=1 (noise) to t=0 over ``num_steps``.

        The prompt's padding columns are dropped first (``trim_prompt_padding``: the same
        actions, fewer prefix tokens; ``trim_prompt=False`` keeps them, for benchmarks;
        ``static_kv``: see ``_prefix_for_sampling``).  ``sparse_threshold`` > 0 (camera MoE
        only): expert cameras below that routing weight are not encoded (``encode_routed``).

        With the KV cache the prefix runs once and each step runs the expert only; without it
        every step recomputes prefix + suffix (the reference the cache is tested against).

        Real-time chunking (model/rtc.py): ``prefix_actions`` (B, d_max, A), normalised like
        the output, are the committed actions on the new chunk's rows 0..d_max-1, of which
        the first ``prefix_len`` (the delay d) run before this chunk lands.  ``rtc_mode``
        (default ``ModelConfig.rtc_mode``): ``guidance`` steers every step toward them (row
        weights ``prefix_weights(H, d, d_max, schedule)``, default ``ModelConfig.rtc_schedule``;
        the weight clipped at ``rtc_max_guidance_weight``); ``training`` feeds the first d rows
        clean (flow time 0) and returns them unchanged; ``none`` ignores the prefix.  Padded
        action dims (``batch['action_dim_mask']`` False) are never guided.

        Returns actions (B, H, A) float32 (normalised units) and info: routing_weights (B, N)
        or None, timing {vision, prefix, denoise, denoise_per_step} in ms.
        """
        cfg = self.config
        steps = cfg.num_steps if num_steps is None else int(num_steps)
        if steps <= 0:
            raise ValueError(f'num_steps must be a positive int, got {num_steps!r}')
        images = batch['images']
        b = images.shape[0]
        dev = images.device
        h = cfg.action_horizon
        shape = (b, h, cfg.action_dim)
        if noise is None:
            noise = torch.randn(shape, device=dev)
        elif tuple(noise.shape) != shape:
            raise ValueError(f'noise must have shape {shape}, got {tuple(noise.shape)}')
        mode = cfg.rtc_mode if rtc_mode is None else rtc_mode
        rtc = self._rtc_target(prefix_actions, prefix_len, schedule, mode, batch, shape)
        timer = _Timer(dev)
        batch, prefix, cache, rows = self._prefix_for_sampling(
            batch, sparse_threshold, trim_prompt, use_kv_cache, timer, static_kv)
        state = batch['state']
        x_t = noise.float().to(dev)
        dt = -1.0 / steps
        times = 1.0 + dt * torch.arange(steps, dtype=torch.float32, device=dev)  # (K,) 1 -> dt
        feats = self.time_features(torch.cat([times, times.new_zeros(1)]))  # (K+1, De)

        def velocity(x: torch.Tensor, k: int) -> torch.Tensor:
            t = times[k].expand(b)  # (B,)
            feat = feats[k:k + 1].expand(b, -1)  # (B, De)
            if mode == 'training' and rtc is not None:  # clean prefix rows: time 0
                clean = rtc['weights'][None, :, None] > 0  # (1, H, 1)
                t = torch.where(clean[..., 0], 0.0, t[:, None])  # (B, H)
                feat = torch.where(clean, feats[-1], feats[k]).expand(b, h, -1)  # (B, H, De)
            if cache is not None:
                return self._velocity_cached(prefix, cache, rows, state, x, t, feat)
            return self._velocity_shared_attention(prefix, state, x, t)

        for k in range(steps):
            if rtc is None:
                v_t = velocity(x_t, k)
            elif mode == 'training':
                x_t = torch.where(rtc['weights'][None, :, None] > 0, rtc['target'], x_t)
                v_t = velocity(x_t, k)
            else:
                v_t = self._guided_velocity(velocity, x_t, k, float(times[k]), rtc)
            x_t = x_t + dt * v_t
        if rtc is not None and mode == 'training':
            x_t = torch.where(rtc['weights'][None, :, None] > 0, rtc['target'], x_t)
        timer.lap('denoise')
        timing = dict(timer.ms)
        timing['denoise_per_step'] = timing['denoise'] / steps
        weights = prefix.route.weights.float() if prefix.route is not None else None
        encoded = int(batch['image_masks'].bool().any(dim=0).sum().item())
        return x_t, {'routing_weights': weights, 'timing': timing, 'cameras_encoded': encoded}

    def _prefix_for_sampling(self, batch: dict[str, torch.Tensor], sparse_threshold: float,
                             trim_prompt: bool, use_kv_cache: bool, timer: _Timer,
                             static_kv: bool | None = None) -> tuple:
        """sample_actions' vision and prefix stages -> (the batch as used, Prefix, the KV cache
        and the suffix rows, or None, None without the cache).  ``static_kv``: the cache in
        ``gemma.StaticKV`` buffers with room for the suffix (each step writes its K/V there in
        place: fixed addresses, as CUDA graphs need) and the suffix mask additive, made once a
        chunk; False concatenates K/V every step (the reference it is tested against); None:
        static on CUDA only (on this project's CPU it was no faster: 12.1 against 11.6 ms a
        step, small preset)."""
        if static_kv is None:
            static_kv = batch['images'].device.type == 'cuda'
        if not 0.0 <= float(sparse_threshold) <= 1.0:
            raise ValueError(f'sparse_threshold must lie in [0, 1], got {sparse_threshold!r}')
        if trim_prompt:
            batch = trim_prompt_padding(batch)
        route = None
        if sparse_threshold > 0 and self.camera_moe is not None:
            cam, masks, route = self.encode_routed(batch, float(sparse_threshold))
            batch = {**batch, 'image_masks': masks}
        else:
            cam = self.encode_images(batch['images'], batch['image_masks'].bool())
        timer.lap('vision')
        prefix = self.embed_prefix(batch, cam, route)
        cache = rows = None
        if use_kv_cache:
            cache = self.build_prefix_cache(prefix)
            rows = self.suffix_rows(prefix, prefix.embs.shape[0], prefix.embs.device)
            if static_kv:  # fewer ops a step: no K/V concatenation, no mask conversion
                mask, pos, rope = rows
                cache = static_cache(cache, mask.shape[1])
                rows = (additive_mask(mask, prefix.embs.dtype), pos, rope)
        timer.lap('prefix')
        return batch, prefix, cache, rows

    def _rtc_target(self, prefix_actions: torch.Tensor | None, prefix_len: int,
                    schedule: str | None, mode: str, batch: dict[str, torch.Tensor],
                    shape: tuple[int, int, int]) -> dict[str, torch.Tensor] | None:
        """The committed prefix as a full-horizon target (B, H, A), its row weights (H,) and
        the guided dims (B, 1, A); None when there is nothing to condition on."""
        if prefix_actions is None or mode == 'none':
            return None
        b, h, a = shape
        y = prefix_actions.float().to(batch['images'].device)  # (B, d_max, A)
        if y.dim() != 3 or y.shape[0] != b or y.shape[2] != a or not 0 < y.shape[1] <= h:
            raise ValueError(f'prefix_actions must be (B={b}, 1..{h}, A={a}), got '
                             f'{tuple(y.shape)}')
        d_max = y.shape[1]
        d = int(prefix_len)
        if not 0 <= d <= d_max:
            raise ValueError(f'prefix_len must lie in [0, {d_max}] (the committed rows), got '
                             f'{prefix_len!r}')
        if mode == 'training':  # only the rows that surely run: the model saw at most D clean
            d = min(d, self.config.rtc_max_delay)
            weights = (torch.arange(h, device=y.device) < d).float()  # (H,)
        else:
            weights = prefix_weights(h, d, d_max, schedule or self.config.rtc_schedule,
                                     y.device)  # (H,)
        target = torch.zeros(shape, device=y.device)
        target[:, :d_max] = y  # (B, H, A)
        dims = batch.get('action_dim_mask')
        dims = (torch.ones(b, a, dtype=torch.bool, device=y.device) if dims is None
                else dims.bool().to(y.device))  # (B, A)
        return {'target': target, 'weights': weights, 'dims': dims[:, None, :].float()}

    def _guided_velocity(self, velocity: Any, x_t: torch.Tensor, k: int, t: float,
                         rtc: dict[str, torch.Tensor]) -> torch.Tensor:
        """RTC guidance: ``v - c(t) * J^T (W * (Y - a_hat))`` with ``a_hat = x_t - t v`` the
        step's clean estimate and ``J = d a_hat / d x_t`` (one vector-Jacobian product)."""
        with torch.enable_grad():
            x = x_t.detach().requires_grad_(True)  # (B, H, A)
            v = velocity(x, k)  # (B, H, A)
            a_hat = x - t * v
            err = (rtc['target'] - a_hat) * rtc['weights'][None, :, None] * rtc['dims']
            (g,) = torch.autograd.grad(a_hat, x, grad_outputs=err.detach())  # (B, H, A)
        c = guidance_weight(t, self.config.rtc_max_guidance_weight)
        return v.detach() - c * g  # dt < 0: the step moves x_t toward the committed rows
