"""Transforms shared by inference and training: small steps (checks, delta actions,
normalisation, prompt tokens, images, labels, padding), composed by ``make_transforms``."""

from pi05_moe_policy.core.observation import clean_prompt
from pi05_moe_policy.transforms.actions import (
    AbsoluteActions,
    DeltaActions,
    PadStatesAndActions,
    TruncateActions,
)
from pi05_moe_policy.transforms.checks import CheckActions, CheckObservation
from pi05_moe_policy.transforms.data_config import DataConfig
from pi05_moe_policy.transforms.image import (
    ImagesToTensors,
    resize_with_pad,
    rgb_to_tensor,
    thermal_to_tensor,
)
from pi05_moe_policy.transforms.labels import CameraLabels
from pi05_moe_policy.transforms.normalize import (
    Normalize,
    NormStats,
    Stats,
    Unnormalize,
    discretize_state,
)
from pi05_moe_policy.transforms.pipeline import (
    Compose,
    PolicyTransforms,
    ToModelInputs,
    collate,
    make_transforms,
)
from pi05_moe_policy.transforms.prompt import TokenizePrompt, format_prompt
from pi05_moe_policy.transforms.tokenizer import HFTokenizer, WordHashTokenizer, build_tokenizer

__all__ = [
    'AbsoluteActions', 'CameraLabels', 'CheckActions', 'CheckObservation', 'Compose',
    'DataConfig', 'DeltaActions', 'HFTokenizer', 'ImagesToTensors', 'NormStats', 'Normalize',
    'PadStatesAndActions', 'PolicyTransforms', 'Stats', 'ToModelInputs', 'TokenizePrompt',
    'TruncateActions', 'Unnormalize', 'WordHashTokenizer', 'build_tokenizer', 'clean_prompt',
    'collate', 'discretize_state', 'format_prompt', 'make_transforms', 'resize_with_pad',
    'rgb_to_tensor', 'thermal_to_tensor',
]
