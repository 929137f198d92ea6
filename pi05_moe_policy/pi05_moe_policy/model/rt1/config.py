"""RT-1's network config (seed 003; Brohan et al. 2022, "RT-1: Robotics Transformer"), plus its
presets.

One dataclass, validated in ``__post_init__``; every error names the field and quotes the bad
value.  The data side (cameras, robot dims, prompt, tokenizer) is the same ``DataConfig`` PI0.5
uses, so both baselines run on the same datasets and robots.

Fields that the policy, the transforms and the training loop read on any network config carry
the names ``ModelConfig`` gives them: ``vocab_size``, ``image_size``, ``action_horizon``,
``action_dim``, ``max_state_dim``, ``noise_scale``, ``use_camera_moe``, ``num_experts`` and the
``camera_router_*`` fields (``model/camera_router.py`` is reused as is).  A few read-only
properties (``pi05``, ``num_steps``, ``rtc_mode``, ``vlm_width``) answer what those callers ask
a PI0.5 config.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from pi05_moe_policy.model.config import CameraRouterFields, check_camera_router
from pi05_moe_policy.params import plain_dict, strict_from_dict

ARCHITECTURE = 'rt1'  # the discriminator config.json carries (PI0.5's configs have none)
EFFICIENTNETS = tuple(f'efficientnet-b{i}' for i in range(8))


@dataclasses.dataclass
class RT1Config(CameraRouterFields):
    """FiLM-EfficientNet -> TokenLearner -> causal transformer over k frames -> 256-bin heads.

    ``width_coefficient`` / ``depth_coefficient`` scale the named EfficientNet (None: that
    model's own, e.g. 1.2 / 1.4 for B3); ``image_size`` is the side the transforms resize and
    pad every camera to.  The vision features are average-pooled to ``feature_grid`` squared
    positions (RT-1: 9 x 9 = 81) before the TokenLearner keeps ``tokens_per_image`` (RT-1: 8).
    """

    architecture: str = ARCHITECTURE
    preset: str = 'custom'
    # --- vision: EfficientNet with FiLM after every MBConv block ---
    efficientnet: str = 'efficientnet-b0'
    width_coefficient: float | None = None
    depth_coefficient: float | None = None
    image_size: int = 128
    drop_connect_rate: float = 0.0  # stochastic depth in the MBConv blocks (training only)
    feature_grid: int = 4
    token_dim: int = 128  # image tokens, the transformer and the instruction embedding
    tokens_per_image: int = 8  # TokenLearner output per camera and frame
    token_learner_hidden: int = 64  # TokenLearner's MLP bottleneck (RT-1: 64)
    # --- history: the last k frames of every camera ---
    history: int = 2  # k (RT-1: 6)
    history_stride: int = 1  # dataset frames between two history frames in training
    # --- instruction encoder (stands in for the Universal Sentence Encoder) ---
    vocab_size: int = 4096
    text_depth: int = 1
    text_num_heads: int = 4
    max_text_len: int = 256  # learned positions of the text encoder
    # --- decoder-only transformer ---
    depth: int = 2
    num_heads: int = 4
    mlp_dim: int = 256
    dropout: float = 0.1
    # --- actions: num_bins bins per dim over the normalised range ---
    action_horizon: int = 1  # RT-1: one action a step; > 1 reads a short chunk (see model.py)
    action_dim: int = 32  # padded action width (as ModelConfig.action_dim)
    max_state_dim: int = 32  # padded state width (the router's state input)
    num_bins: int = 256
    action_low: float = -1.0  # the bins cover [action_low, action_high] (quantile-normalised)
    action_high: float = 1.0
    # Kept for the Policy API (``set_noise_scale``, sim-eval's report): RT-1 decodes the argmax
    # bin, so the only valid value is 0.
    noise_scale: float = 0.0
    # --- cameras: False concatenates every camera's tokens, True gates the experts ---
    # (and CameraRouterFields': num_experts and the camera_router_* fields)
    use_camera_moe: bool = False

    # ------------------------------------------------------------------ validation
    def _validate(self) -> None:
        if self.architecture != ARCHITECTURE:
            self._fail('architecture', f'expected {ARCHITECTURE!r}')
        if self.efficientnet not in EFFICIENTNETS:
            self._fail('efficientnet', f'expected one of {EFFICIENTNETS}')
        positive = ('image_size feature_grid token_dim tokens_per_image token_learner_hidden '
                    'history history_stride vocab_size text_depth text_num_heads max_text_len '
                    'depth num_heads mlp_dim action_horizon action_dim max_state_dim').split()
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                self._fail(name, 'expected a positive int')
        if not isinstance(self.num_bins, int) or isinstance(self.num_bins, bool) or \
                self.num_bins < 2:
            self._fail('num_bins', 'expected an int >= 2')
        for name in ('width_coefficient', 'depth_coefficient'):
            value = getattr(self, name)
            if value is not None and (not _number(value) or value <= 0):
                self._fail(name, 'expected None (the named model\'s) or a number > 0')
        for name in ('drop_connect_rate', 'dropout'):
            value = getattr(self, name)
            if not _number(value) or not 0 <= value < 1:
                self._fail(name, 'expected a number in [0, 1)')
        if self.image_size < 32:
            self._fail('image_size', 'expected >= 32 (EfficientNet downsamples 32x)')
        if self.feature_grid > math.ceil(self.image_size / 32):
            self._fail('feature_grid', f'must be <= ceil(image_size / 32) = '
                       f'{math.ceil(self.image_size / 32)}, the side of EfficientNet\'s features')
        if self.tokens_per_image > self.feature_grid ** 2:
            self._fail('tokens_per_image', f'must be <= feature_grid**2 = '
                       f'{self.feature_grid ** 2} (the TokenLearner selects, it does not add)')
        if self.token_dim % self.num_heads:
            self._fail('num_heads', f'must divide token_dim={self.token_dim}')
        if self.token_dim % self.text_num_heads:
            self._fail('text_num_heads', f'must divide token_dim={self.token_dim}')
        if not (_number(self.action_low) and _number(self.action_high)) or \
                not self.action_low < self.action_high:
            self._fail('action_low', f'expected finite action_low < action_high='
                       f'{self.action_high!r}')
        if self.noise_scale != 0:
            self._fail('noise_scale', 'RT-1 decodes the argmax bin: expected 0')
        if not isinstance(self.num_experts, int) or isinstance(self.num_experts, bool) or \
                self.num_experts < 0:
            self._fail('num_experts', 'expected an int >= 0')
        check_camera_router(self, self._fail)

    # ------------------------------------------------------------------ what PI0.5's callers ask
    @property
    def pi05(self) -> bool:
        """False: the prompt is the task alone (RT-1 has no state input; no state bins)."""
        return False

    @property
    def num_steps(self) -> int:
        """One forward pass a chunk (no denoising steps)."""
        return 1

    @property
    def rtc_mode(self) -> str:
        """A committed prefix is ignored (RT-1 predicts from images and the instruction)."""
        return 'none'

    @property
    def rtc_max_delay(self) -> int:
        return 0

    @property
    def vlm_width(self) -> int:
        """The width the camera router works at (``model/camera_router.py``)."""
        return self.token_dim

    @property
    def tokens_per_frame(self) -> int:
        """Transformer tokens one time step contributes: the fused base camera's 8 (routed),
        or 8 per camera (concatenated)."""
        cameras = 1 if self.use_camera_moe else 1 + self.num_experts
        return self.tokens_per_image * cameras

    # ------------------------------------------------------------------ (de)serialisation
    def to_dict(self) -> dict[str, Any]:
        return plain_dict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RT1Config:
        return strict_from_dict(cls, data)

    def replace(self, **overrides: Any) -> RT1Config:
        return RT1Config.from_dict({**self.to_dict(), **overrides})


def _number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


# ---------------------------------------------------------------------------- presets
# rt1: CPU-sized for tests and the sim (2.2M parameters).  EfficientNet-B0 at a quarter of its
# width and one MBConv block a stage (7 in all, each FiLMed) at 112 px: 4 x 4 features, 8 tokens
# a camera, 2 frames of history, a 2-layer transformer 128 wide.  The sim controls at 50 Hz and
# replans every 10 steps (5 Hz, as for PI0.5): RT-1's one action a step becomes one 0.2 s chunk
# of 10 joint targets through the same head (action_horizon=10), and its history frames are 10
# dataset frames apart (history_stride=10), as far apart as two inferences.  Measured on this
# 2-core EPYC, 1 thread, nice 19 under load 2-4: a training step at batch 8 (3 cameras x 2 frames,
# fwd + bwd + AdamW) 0.53-0.79 s concatenated, 0.42-0.53 s routed (128 px with two blocks a
# stage: ~1.0 s); one inference (current frame only, the previous one's tokens cached) 13-19 ms.
_RT1: dict[str, Any] = dict(
    preset='rt1', efficientnet='efficientnet-b0', width_coefficient=0.25,
    depth_coefficient=0.2, image_size=112, feature_grid=4, token_dim=128, history=2,
    history_stride=10, action_horizon=10, depth=2, num_heads=4, mlp_dim=256, text_depth=1,
    text_num_heads=4,
)

# rt1_base: RT-1's published sizes: EfficientNet-B3 at 300 px (26 MBConv blocks, each FiLMed),
# 9 x 9 features, TokenLearner to 8 tokens, 6 frames, an 8-layer decoder 512 wide with 8 heads,
# 256 bins.  The instruction embedding is 512 wide, as USE's is.
_RT1_BASE: dict[str, Any] = dict(
    preset='rt1_base', efficientnet='efficientnet-b3', image_size=300, feature_grid=9,
    token_dim=512, tokens_per_image=8, history=6, depth=8, num_heads=8, mlp_dim=2048,
    text_depth=2, text_num_heads=8, drop_connect_rate=0.2,
)

RT1_PRESETS: dict[str, dict[str, Any]] = {'rt1': _RT1, 'rt1_base': _RT1_BASE}


def make_rt1_config(preset: str, **overrides: Any) -> RT1Config:
    if preset not in RT1_PRESETS:
        raise ValueError(f'unknown RT-1 preset {preset!r}; known: {sorted(RT1_PRESETS)}')
    base = RT1Config(**RT1_PRESETS[preset])
    return base.replace(**overrides) if overrides else base
