"""The network's config: what a checkpoint's tensors must match, plus its presets.

Only the shape of the PI0.5 + camera-MoE network lives here (Gemma / expert / SigLIP sizes, the
padded state and action widths, the flow-matching sampler, the camera-MoE module).  The data and
robot description (camera names and roles, thermal preprocessing, robot dims, joint names, the
prompt and tokenizer) is ``pi05_moe_policy.transforms.data_config.DataConfig``; the training
loss (routing-loss weight and schedule, focal alpha/gamma, the time distribution) is
``pi05_moe_training.train.config.TrainConfig``.  The dataclass validates itself in
``__post_init__`` and every error names the field and quotes the bad value.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

from pi05_moe_policy.params import plain_dict, strict_from_dict

ROUTER_INPUT_TYPES = ('prompt', 'state', 'prompt_state')


def normalise_router_dims(cfg: Any, fail: Callable[[str, str], None]) -> None:
    """``camera_router_hidden_dims`` as a tuple (JSON round trips make it a list)."""
    value = cfg.camera_router_hidden_dims
    if isinstance(value, (str, bytes)) or not hasattr(value, '__iter__'):
        fail('camera_router_hidden_dims', 'expected a list/tuple')
    cfg.camera_router_hidden_dims = tuple(value)


def check_camera_router(cfg: Any, fail: Callable[[str, str], None]) -> None:
    """The ``camera_router_*`` fields and the expert count, which ``ModelConfig`` and the
    RT-1 baseline's ``RT1Config`` share (both build ``model/camera_router.py``); ``fail(field,
    message)`` raises."""
    if cfg.camera_router_input_type not in ROUTER_INPUT_TYPES:
        fail('camera_router_input_type', f'expected one of {ROUTER_INPUT_TYPES}')
    if not cfg.camera_router_hidden_dims or any(
            not isinstance(h, int) or h <= 0 for h in cfg.camera_router_hidden_dims):
        fail('camera_router_hidden_dims', 'expected a non-empty tuple of positive ints')
    for name in ('camera_router_temperature', 'camera_router_gumbel_temp'):
        value = getattr(cfg, name)
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(
                value) or value <= 0:
            fail(name, 'expected a finite number > 0')
    if cfg.use_camera_moe and cfg.num_experts < 1:
        fail('num_experts', 'use_camera_moe=True needs at least one expert camera '
             '(DataConfig.expert_cameras)')


@dataclasses.dataclass
class CameraRouterFields:
    """The camera MoE router's fields, which ``ModelConfig`` and the RT-1 baseline's
    ``RT1Config`` share (both build ``model/camera_router.py``), and the validation entry both
    use: ``__post_init__`` normalises the hidden dims and calls the subclass's ``_validate``;
    ``_fail(field, message)`` raises, naming the class and the field and quoting the value.
    Dataclass inheritance puts these fields first in the subclass's field order."""

    num_experts: int = 2  # gated expert cameras (DataConfig.expert_cameras names them)
    camera_router_input_type: str = 'prompt_state'
    camera_router_use_attention_pooling: bool = True
    camera_router_use_learnable_scales: bool = True
    camera_router_hidden_dims: tuple[int, ...] = (512, 256)
    camera_router_temperature: float = 1.0
    camera_router_use_gumbel: bool = False
    camera_router_gumbel_temp: float = 1.0

    def __post_init__(self) -> None:
        normalise_router_dims(self, self._fail)
        self._validate()

    def _fail(self, field: str, msg: str) -> None:
        raise ValueError(f'{type(self).__name__}.{field}={getattr(self, field)!r}: {msg}')

    def _validate(self) -> None:
        check_camera_router(self, self._fail)


RTC_MODES = ('none', 'guidance', 'training')  # model/rtc.py
RTC_SCHEDULES = ('exp', 'linear', 'ones', 'zeros')


@dataclasses.dataclass
class ModelConfig(CameraRouterFields):
    """PI0.5 (or PI0) with router-gated camera fusion.

    Widths/depths follow the Gemma naming: ``width`` is the hidden size, ``mlp_dim`` the GeGLU
    inner size, ``num_kv_heads`` < ``num_heads`` means grouped-query attention.  The VLM and
    the action expert attend jointly, so they must share depth, heads and head_dim.
    """

    preset: str = 'custom'
    # --- VLM (PaliGemma's Gemma) ---
    vocab_size: int = 4096
    vlm_width: int = 256
    vlm_depth: int = 2
    vlm_mlp_dim: int = 512
    vlm_num_heads: int = 2
    vlm_num_kv_heads: int = 1
    vlm_head_dim: int = 64
    # --- action expert (Gemma-300M style) ---
    expert_width: int = 256
    expert_depth: int = 2
    expert_mlp_dim: int = 512
    expert_num_heads: int = 2
    expert_num_kv_heads: int = 1
    expert_head_dim: int = 64
    rms_norm_eps: float = 1e-6
    rope_theta: float = 10_000.0
    # --- SigLIP vision tower (image_size fixes its position embeddings) ---
    vision_width: int = 256
    vision_depth: int = 2
    vision_mlp_dim: int = 512
    vision_num_heads: int = 4
    vision_patch_size: int = 14
    image_size: int = 224
    # --- flow matching / actions ---
    pi05: bool = True  # False = PI0: state token + action-time MLP, no adaRMS
    action_horizon: int = 50
    action_dim: int = 32  # padded action width inside the model
    max_state_dim: int = 32  # padded state width inside the model
    num_steps: int = 10  # Euler steps at inference
    # Scale of the initial noise at inference (the sampling temperature): 1 samples the learned
    # distribution, 0 integrates from the origin (deterministic, the chunk at the mode's centre).
    noise_scale: float = 1.0
    time_min_period: float = 4e-3
    time_max_period: float = 4.0
    # --- real-time chunking (model/rtc.py): how a committed prefix conditions a chunk ---
    # none: ignore it; guidance: inpaint it at test time (works with any checkpoint, the
    # default, also for checkpoints saved before these fields); training: the checkpoint was
    # trained with clean prefixes (train --rtc-max-delay), so the prefix is fed clean.
    rtc_mode: str = 'guidance'
    rtc_max_delay: int = 0  # training mode: the largest prefix (rows) seen in training
    rtc_schedule: str = 'exp'  # guidance: row weights past the delay (exp|linear|ones|zeros)
    rtc_max_guidance_weight: float = 5.0  # guidance: clip of the paper's weight (beta)
    # --- camera MoE (field names from seed 000) ---
    # (and CameraRouterFields': num_experts and the camera_router_* fields)
    use_camera_moe: bool = True

    # ------------------------------------------------------------------ validation
    def _validate(self) -> None:
        positive = (
            'vocab_size vlm_width vlm_depth vlm_mlp_dim vlm_num_heads vlm_num_kv_heads '
            'vlm_head_dim expert_width expert_depth expert_mlp_dim expert_num_heads '
            'expert_num_kv_heads expert_head_dim vision_width vision_depth vision_mlp_dim '
            'vision_num_heads vision_patch_size image_size action_horizon action_dim '
            'max_state_dim num_steps'
        ).split()
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                self._fail(name, 'expected a positive int')
        for name in ('rms_norm_eps', 'rope_theta', 'time_min_period', 'time_max_period'):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                self._fail(name, 'expected a finite number > 0')
        if not isinstance(self.noise_scale, (int, float)) or not math.isfinite(
                self.noise_scale) or self.noise_scale < 0:
            self._fail('noise_scale', 'expected a finite number >= 0')
        if not isinstance(self.num_experts, int) or isinstance(self.num_experts, bool) or \
                self.num_experts < 0:
            self._fail('num_experts', 'expected an int >= 0')
        # The shared attention concatenates Q/K/V of both streams: heads must line up.
        for what in ('depth', 'num_heads', 'num_kv_heads', 'head_dim'):
            if getattr(self, f'expert_{what}') != getattr(self, f'vlm_{what}'):
                self._fail(f'expert_{what}',
                           f'must equal vlm_{what}={getattr(self, f"vlm_{what}")!r} because '
                           'the VLM and the expert share each layer\'s attention')
        if self.vlm_num_heads % self.vlm_num_kv_heads:
            self._fail('vlm_num_kv_heads', f'must divide vlm_num_heads={self.vlm_num_heads}')
        if self.vlm_head_dim % 2:
            self._fail('vlm_head_dim', 'must be even for RoPE')
        if self.expert_width % 2:
            self._fail('expert_width', 'must be even for the sin-cos time embedding')
        if self.vision_width % self.vision_num_heads:
            self._fail('vision_num_heads', f'must divide vision_width={self.vision_width}')
        if self.image_size % self.vision_patch_size:
            self._fail('vision_patch_size', f'must divide image_size={self.image_size}')
        if self.time_min_period >= self.time_max_period:
            self._fail('time_min_period', f'must be < time_max_period={self.time_max_period}')
        if self.rtc_mode not in RTC_MODES:
            self._fail('rtc_mode', f'expected one of {RTC_MODES}')
        if self.rtc_schedule not in RTC_SCHEDULES:
            self._fail('rtc_schedule', f'expected one of {RTC_SCHEDULES}')
        if not isinstance(self.rtc_max_delay, int) or isinstance(self.rtc_max_delay, bool) or \
                not 0 <= self.rtc_max_delay < self.action_horizon:
            self._fail('rtc_max_delay', f'expected an int in [0, action_horizon='
                       f'{self.action_horizon})')
        if self.rtc_mode == 'training' and self.rtc_max_delay < 1:
            self._fail('rtc_max_delay', "expected >= 1 with rtc_mode='training'")
        if not isinstance(self.rtc_max_guidance_weight, (int, float)) or not math.isfinite(
                self.rtc_max_guidance_weight) or self.rtc_max_guidance_weight <= 0:
            self._fail('rtc_max_guidance_weight', 'expected a finite number > 0')
        check_camera_router(self, self._fail)

    # ------------------------------------------------------------------ derived
    @property
    def num_image_tokens(self) -> int:
        """Tokens one camera contributes (SigLIP patches)."""
        return (self.image_size // self.vision_patch_size) ** 2

    # ------------------------------------------------------------------ (de)serialisation
    def to_dict(self) -> dict[str, Any]:
        return plain_dict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        return strict_from_dict(cls, data)

    def replace(self, **overrides: Any) -> ModelConfig:
        return ModelConfig.from_dict({**self.to_dict(), **overrides})


# ---------------------------------------------------------------------------- presets
# tiny: tests and benchmarks (dims fixed by the issue).
_TINY: dict[str, Any] = dict(preset='tiny')

# small: the shipped sim checkpoint, sized for a 2-core CPU: 16.6M parameters.  Vision is the
# largest cost on CPU and PI0.5 encodes every camera, so SigLIP uses 28-px patches (64 tokens a
# camera, 4x fewer than tiny's) and the saving buys depth: a 4-layer VLM (384 wide) and a
# 4-layer expert (256 wide).  Analytic cost: 5.8 GFLOPs a chunk (tiny: 4.0).  Measured on this
# 2-core EPYC with 1 thread under load ~4: 129 ms a chunk fp32 (7.8 chunks/s), 105 ms bf16;
# a training step at batch 8 (fwd + bwd + AdamW) 0.93 s, so ~3,900 steps in an hour.
_SMALL: dict[str, Any] = dict(
    preset='small',
    vlm_width=384, vlm_depth=4, vlm_mlp_dim=1024, vlm_num_heads=4, vlm_num_kv_heads=1,
    vlm_head_dim=64,
    expert_width=256, expert_depth=4, expert_mlp_dim=768, expert_num_heads=4,
    expert_num_kv_heads=1, expert_head_dim=64,
    vision_width=256, vision_depth=4, vision_mlp_dim=768, vision_num_heads=4,
    vision_patch_size=28,
    # (DataConfig: max_token_len=64)
)

# pi05_base: the public PI0.5 shapes (PaliGemma gemma_2b + SigLIP So400m/14 + gemma_300m).
_PI05_BASE: dict[str, Any] = dict(
    preset='pi05_base',
    vocab_size=257_152,
    vlm_width=2048, vlm_depth=18, vlm_mlp_dim=16_384, vlm_num_heads=8, vlm_num_kv_heads=1,
    vlm_head_dim=256,
    expert_width=1024, expert_depth=18, expert_mlp_dim=4096, expert_num_heads=8,
    expert_num_kv_heads=1, expert_head_dim=256,
    vision_width=1152, vision_depth=27, vision_mlp_dim=4304, vision_num_heads=16,
    vision_patch_size=14,
    # (DataConfig: max_token_len=200 and PaliGemma's tokenizer)
)

PRESETS: dict[str, dict[str, Any]] = {'tiny': _TINY, 'small': _SMALL, 'pi05_base': _PI05_BASE}


def make_config(preset: str, **overrides: Any) -> ModelConfig:
    """Build a preset's network config with ModelConfig field overrides (validated like any
    other config).  ``pi05_moe_policy.policy_config.make_policy_config`` builds both configs."""
    if preset not in PRESETS:
        raise ValueError(f'unknown preset {preset!r}; known presets: {sorted(PRESETS)}')
    base = ModelConfig(**PRESETS[preset])
    return base.replace(**overrides) if overrides else base
