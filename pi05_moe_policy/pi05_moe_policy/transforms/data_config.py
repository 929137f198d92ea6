"""The data and robot description a policy is trained and run with, plus its presets.

Everything the transforms need that is not the network's shape: the cameras and their roles
(seed 001), thermal preprocessing, the robot's real state/action dims, joint names and control
period, which action dims are deltas, and the prompt/tokenizer.  The network's shape is
``pi05_moe_policy.model.config.ModelConfig``; ``pi05_moe_policy.policy_config.PolicyConfig``
holds both and checks that they fit each other.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from pi05_moe_policy.params import plain_dict, strict_from_dict

THERMAL_COLORMAPS = ('gray', 'ironbow')
TOKENIZER_TYPES = ('word_hash', 'hf')
PREPROCESSING = ('reference', 'v1')
NORMALIZATIONS = ('quantile', 'mean_std')
_TUPLE_FIELDS = ('expert_cameras', 'thermal_cameras', 'thermal_window_ck', 'joint_names',
                 'delta_action_mask')


@dataclasses.dataclass
class DataConfig:
    """Cameras, robot, prompt and tokenizer: the description a checkpoint carries beside the
    network, read by the transforms (``make_transforms``) and by robot adapters."""

    # --- cameras (roles from seed 001) ---
    base_camera: str = 'wrist'
    expert_cameras: tuple[str, ...] = ('l515', 'thermal')
    thermal_cameras: tuple[str, ...] = ('thermal',)
    thermal_window_ck: tuple[float, float] = (27315.0, 37315.0)  # 0..100 degC in centi-Kelvin
    thermal_colormap: str = 'gray'
    # --- robot description ---
    robot_state_dim: int = 14
    robot_action_dim: int = 14
    joint_names: tuple[str, ...] | None = None
    control_period_s: float = 0.02
    # Per action dim: True = the model predicts the action minus the current state of the same
    # dim (openpi's delta joint actions), False = the absolute action.  Empty: all absolute.
    delta_action_mask: tuple[bool, ...] = ()
    # --- prompt / tokenizer ---
    # PI0.5 writes the 256-bin state into the prompt. False leaves it out (same at training and
    # inference): the model then sees the arm only in the images. It cures the copycat shortcut
    # of small behaviour-cloned models, whose state tokens reveal where the demonstrator was
    # going, so they never learn to read the target from the cameras. Delta actions still add
    # the measured state back; PI0 (pi05=False) always has its state token.
    state_in_prompt: bool = True
    max_token_len: int = 48
    require_prompt: bool = True
    tokenizer_type: str = 'word_hash'  # 'word_hash' (built in) or 'hf' (tokenizer.json/.model)
    tokenizer_path: str | None = None
    # How images, state bins and quantiles are computed. 'reference' is LeRobot's / openpi's
    # (resize-with-pad by plain bilinear interpolation, out-of-range states binned -1 / 255,
    # quantile scale (q99 - q01) with eps only where q01 == q99): pretrained weights depend on it,
    # and it is the default. 'v1' is this project's first recipe (antialiased resize, states
    # clipped into bins 0..255, + 1e-6 on every quantile range), which checkpoints saved before
    # this field existed were trained with; they load with it.
    preprocessing: str = 'reference'
    # State/action normalisation: 'quantile' (PI0.5) or 'mean_std' (openpi's PI0).
    normalization: str = 'quantile'  # for 'hf': a local tokenizer.json / dir (PaliGemma)

    def __post_init__(self) -> None:
        # JSON round trips turn tuples into lists; normalise before validating.
        for name in _TUPLE_FIELDS:
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
        raise ValueError(f'DataConfig.{field}={getattr(self, field)!r}: {msg}')

    def _validate(self) -> None:
        for name in ('robot_state_dim', 'robot_action_dim', 'max_token_len'):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                self._fail(name, 'expected a positive int')
        value = self.control_period_s
        if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
            self._fail('control_period_s', 'expected a finite number > 0')
        for name in ('state_in_prompt', 'require_prompt'):
            if not isinstance(getattr(self, name), bool):
                self._fail(name, 'expected true or false')
        if self.thermal_colormap not in THERMAL_COLORMAPS:
            self._fail('thermal_colormap', f'expected one of {THERMAL_COLORMAPS}')
        window = self.thermal_window_ck
        if len(window) != 2 or not (0 <= window[0] < window[1]):
            self._fail('thermal_window_ck',
                       'expected (low, high) centi-Kelvin with 0 <= low < high')
        if self.preprocessing not in PREPROCESSING:
            self._fail('preprocessing', f'expected one of {PREPROCESSING}')
        if self.normalization not in NORMALIZATIONS:
            self._fail('normalization', f'expected one of {NORMALIZATIONS}')
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

    # ------------------------------------------------------------------ derived
    @property
    def camera_names(self) -> tuple[str, ...]:
        """Every camera in model order: the base first, then the experts."""
        return (self.base_camera, *self.expert_cameras)

    @property
    def num_experts(self) -> int:
        return len(self.expert_cameras)

    # ------------------------------------------------------------------ (de)serialisation
    def to_dict(self) -> dict[str, Any]:
        return plain_dict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DataConfig:
        return strict_from_dict(cls, data)

    def replace(self, **overrides: Any) -> DataConfig:
        return DataConfig.from_dict({**self.to_dict(), **overrides})


# ---------------------------------------------------------------------------- presets
# The data side of the model presets (pi05_moe_policy.model.config.PRESETS): longer prompts
# for the bigger models, and PaliGemma's tokenizer for the public PI0.5 shapes.
DATA_PRESETS: dict[str, dict[str, Any]] = {
    'tiny': {},
    'small': dict(max_token_len=64),
    'pi05_base': dict(max_token_len=200, tokenizer_type='hf',
                      tokenizer_path='paligemma_tokenizer/tokenizer.json'),
    # the RT-1 baseline (model/rt1): the same data side as PI0.5's small preset, so both train
    # on the same datasets with the same prompts (RT-1 leaves the state out of the prompt)
    'rt1': dict(max_token_len=64),
    'rt1_base': dict(max_token_len=64),
}
