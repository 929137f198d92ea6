"""The one config of the PI0.5 + camera-MoE model, plus its presets.

Everything a checkpoint must carry to be rebuilt lives here: network sizes, the camera roles,
the robot description (real state/action dims, joint names, control period) and the tokenizer
spec.  The dataclass validates itself in ``__post_init__`` and every error names the field and
quotes the bad value.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

ROUTER_INPUT_TYPES = ('prompt', 'state', 'prompt_state')
THERMAL_COLORMAPS = ('gray', 'ironbow')
TOKENIZER_TYPES = ('word_hash', 'hf')


def warmup_ramp(step: int, weight: float, warmup_steps: int, ramp_steps: int) -> float:
    """Seed 001's routing-loss schedule: 0 for ``warmup_steps``, then a linear ramp to
    ``weight`` over ``ramp_steps`` (at once when 0), held there after."""
    if step < warmup_steps:
        return 0.0
    if ramp_steps <= 0:
        return float(weight)
    return float(weight) * min(1.0, (step - warmup_steps) / ramp_steps)


@dataclasses.dataclass
class ModelConfig:
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
    # --- SigLIP vision tower ---
    vision_width: int = 256
    vision_depth: int = 2
    vision_mlp_dim: int = 512
    vision_num_heads: int = 4
    vision_patch_size: int = 14
    image_size: int = 224
    # --- flow matching / actions ---
    pi05: bool = True  # False = PI0: state token + action-time MLP, no adaRMS
    # PI0.5 writes the 256-bin state into the prompt. False leaves it out (same at training and
    # inference): the model then sees the arm only in the images. It cures the copycat shortcut
    # of small behaviour-cloned models, whose state tokens reveal where the demonstrator was
    # going, so they never learn to read the target from the cameras. Delta actions still add
    # the measured state back; PI0 (pi05=False) always has its state token.
    state_in_prompt: bool = True
    action_horizon: int = 50
    action_dim: int = 32  # padded action width inside the model
    max_state_dim: int = 32  # padded state width inside the model
    num_steps: int = 10  # Euler steps at inference
    # Scale of the initial noise at inference (the sampling temperature): 1 samples the learned
    # distribution, 0 integrates from the origin (deterministic, the chunk at the mode's centre).
    noise_scale: float = 1.0
    time_min_period: float = 4e-3
    time_max_period: float = 4.0
    time_beta_alpha: float = 1.5
    time_beta_beta: float = 1.0
    # --- prompt / tokenizer ---
    max_token_len: int = 48
    require_prompt: bool = True
    tokenizer_type: str = 'word_hash'  # 'word_hash' (offline, built in) or 'hf' (tokenizer.json)
    tokenizer_path: str | None = None  # for 'hf': a local tokenizer.json / dir (PaliGemma)
    # --- cameras (roles from seed 001) ---
    base_camera: str = 'wrist'
    expert_cameras: tuple[str, ...] = ('l515', 'thermal')
    thermal_cameras: tuple[str, ...] = ('thermal',)
    thermal_window_ck: tuple[float, float] = (27315.0, 37315.0)  # 0..100 degC in centi-Kelvin
    thermal_colormap: str = 'gray'
    # --- camera MoE (field names from seed 000) ---
    use_camera_moe: bool = True
    camera_router_input_type: str = 'prompt_state'
    camera_router_use_attention_pooling: bool = True
    camera_router_use_learnable_scales: bool = True
    camera_router_hidden_dims: tuple[int, ...] = (512, 256)
    camera_router_temperature: float = 1.0
    camera_router_use_gumbel: bool = False
    camera_router_gumbel_temp: float = 1.0
    camera_routing_loss_weight: float = 0.1
    camera_routing_loss_warmup_steps: int = 0  # weight 0 before this step ...
    camera_routing_loss_ramp_steps: int = 0  # ... then a linear ramp to the full weight
    camera_routing_focal_alpha: float = 0.25
    camera_routing_focal_gamma: float = 2.0
    # --- robot description (carried by the checkpoint) ---
    robot_state_dim: int = 14
    robot_action_dim: int = 14
    joint_names: tuple[str, ...] | None = None
    control_period_s: float = 0.02
    # Per action dim: True = the model predicts the action minus the current state of the same
    # dim (openpi's delta joint actions), False = the absolute action.  Empty: all absolute.
    delta_action_mask: tuple[bool, ...] = ()

    def __post_init__(self) -> None:
        # JSON round trips turn tuples into lists; normalise before validating.
        for name in ('expert_cameras', 'thermal_cameras', 'camera_router_hidden_dims',
                     'thermal_window_ck', 'joint_names', 'delta_action_mask'):
            value = getattr(self, name)
            if value is None and name == 'joint_names':
                continue
            if isinstance(value, (str, bytes)) or not hasattr(value, '__iter__'):
                self._fail(name, 'expected a list/tuple')
            setattr(self, name, tuple(value))
        try:
            self.thermal_window_ck = tuple(float(v) for v in self.thermal_window_ck)
        except (TypeError, ValueError):
            self._fail('thermal_window_ck', 'expected two numbers (centi-Kelvin)')
        self._validate()

    # ------------------------------------------------------------------ validation
    def _fail(self, field: str, msg: str) -> None:
        raise ValueError(f'ModelConfig.{field}={getattr(self, field)!r}: {msg}')

    def _validate(self) -> None:
        positive = (
            'vocab_size vlm_width vlm_depth vlm_mlp_dim vlm_num_heads vlm_num_kv_heads '
            'vlm_head_dim expert_width expert_depth expert_mlp_dim expert_num_heads '
            'expert_num_kv_heads expert_head_dim vision_width vision_depth vision_mlp_dim '
            'vision_num_heads vision_patch_size image_size action_horizon action_dim '
            'max_state_dim num_steps max_token_len robot_state_dim robot_action_dim'
        ).split()
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                self._fail(name, 'expected a positive int')
        for name in ('rms_norm_eps', 'rope_theta', 'time_min_period', 'time_max_period',
                     'time_beta_alpha', 'time_beta_beta', 'camera_router_temperature',
                     'camera_router_gumbel_temp', 'control_period_s'):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                self._fail(name, 'expected a finite number > 0')
        for name in ('camera_routing_loss_weight', 'camera_routing_focal_alpha',
                     'camera_routing_focal_gamma', 'noise_scale'):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                self._fail(name, 'expected a finite number >= 0')
        for name in ('camera_routing_loss_warmup_steps', 'camera_routing_loss_ramp_steps'):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 0:
                self._fail(name, 'expected an int >= 0')
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
        if self.robot_state_dim > self.max_state_dim:
            self._fail('robot_state_dim', f'must be <= max_state_dim={self.max_state_dim}')
        if self.robot_action_dim > self.action_dim:
            self._fail('robot_action_dim', f'must be <= action_dim={self.action_dim}')
        if not isinstance(self.state_in_prompt, bool):
            self._fail('state_in_prompt', 'expected true or false')
        if self.camera_router_input_type not in ROUTER_INPUT_TYPES:
            self._fail('camera_router_input_type', f'expected one of {ROUTER_INPUT_TYPES}')
        if not self.camera_router_hidden_dims or any(
                not isinstance(h, int) or h <= 0 for h in self.camera_router_hidden_dims):
            self._fail('camera_router_hidden_dims', 'expected a non-empty tuple of positive ints')
        if self.thermal_colormap not in THERMAL_COLORMAPS:
            self._fail('thermal_colormap', f'expected one of {THERMAL_COLORMAPS}')
        window = self.thermal_window_ck
        if len(window) != 2 or not (0 <= window[0] < window[1]):
            self._fail('thermal_window_ck',
                       'expected (low, high) centi-Kelvin with 0 <= low < high')
        if self.tokenizer_type not in TOKENIZER_TYPES:
            self._fail('tokenizer_type', f'expected one of {TOKENIZER_TYPES}')
        if self.tokenizer_type == 'hf' and not self.tokenizer_path:
            self._fail('tokenizer_path', "is required when tokenizer_type='hf' (a local "
                       'tokenizer.json or a directory holding one; nothing is downloaded)')
        self._validate_cameras()
        self._validate_delta_mask()
        if self.joint_names is not None:
            if len(self.joint_names) != self.robot_action_dim or not all(
                    isinstance(n, str) and n for n in self.joint_names):
                self._fail('joint_names', f'expected {self.robot_action_dim} non-empty names '
                           f'(robot_action_dim), got {len(self.joint_names)}')

    def _validate_delta_mask(self) -> None:
        mask = self.delta_action_mask
        if not mask:
            return
        if len(mask) != self.robot_action_dim or not all(isinstance(m, bool) for m in mask):
            self._fail('delta_action_mask', f'expected {self.robot_action_dim} booleans '
                       '(robot_action_dim), or none for absolute actions')
        last = max(i for i, m in enumerate(mask) if m) if any(mask) else -1
        if last >= self.robot_state_dim:
            self._fail('delta_action_mask', f'action dim {last} is relative to state dim {last}'
                       f', but robot_state_dim={self.robot_state_dim}')

    def _validate_cameras(self) -> None:
        if not isinstance(self.base_camera, str) or not self.base_camera:
            self._fail('base_camera', 'expected a non-empty camera name')
        if any(not isinstance(n, str) or not n for n in self.expert_cameras):
            self._fail('expert_cameras', 'expected non-empty camera names')
        names = self.camera_names
        if len(set(names)) != len(names):
            self._fail('expert_cameras',
                       f'camera names must be unique (base_camera={self.base_camera!r})')
        unknown = [n for n in self.thermal_cameras if n not in names]
        if unknown:
            self._fail('thermal_cameras', f'{unknown} are not configured cameras {names}')
        if self.use_camera_moe and not self.expert_cameras:
            self._fail('expert_cameras', 'use_camera_moe=True needs at least one expert camera')

    # ------------------------------------------------------------------ derived
    @property
    def camera_names(self) -> tuple[str, ...]:
        """Every camera in model order: the base first, then the experts."""
        return (self.base_camera, *self.expert_cameras)

    @property
    def num_experts(self) -> int:
        return len(self.expert_cameras)

    @property
    def num_image_tokens(self) -> int:
        """Tokens one camera contributes (SigLIP patches)."""
        return (self.image_size // self.vision_patch_size) ** 2

    def routing_loss_weight_at(self, step: int | None) -> float:
        """Routing-loss weight at a training step (None: the full weight)."""
        w = float(self.camera_routing_loss_weight)
        if step is None:
            return w
        return warmup_ramp(step, w, self.camera_routing_loss_warmup_steps,
                           self.camera_routing_loss_ramp_steps)

    # ------------------------------------------------------------------ (de)serialisation
    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        for k, v in out.items():
            if isinstance(v, tuple):
                out[k] = list(v)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f'ModelConfig: unknown fields {unknown}; known fields: '
                             f'{sorted(known)}')
        return cls(**data)

    def replace(self, **overrides: Any) -> ModelConfig:
        data = self.to_dict()
        unknown = sorted(set(overrides) - set(data))
        if unknown:
            raise ValueError(f'ModelConfig: unknown fields {unknown}')
        data.update(overrides)
        return ModelConfig.from_dict(data)


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
    max_token_len=64,
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
    max_token_len=200,
    tokenizer_type='hf',
    tokenizer_path='paligemma_tokenizer/tokenizer.json',
)

PRESETS: dict[str, dict[str, Any]] = {'tiny': _TINY, 'small': _SMALL, 'pi05_base': _PI05_BASE}


def make_config(preset: str, **overrides: Any) -> ModelConfig:
    """Build a preset's config with field overrides (validated like any other config)."""
    if preset not in PRESETS:
        raise ValueError(f'unknown preset {preset!r}; known presets: {sorted(PRESETS)}')
    base = ModelConfig(**PRESETS[preset])
    return base.replace(**overrides) if overrides else base
