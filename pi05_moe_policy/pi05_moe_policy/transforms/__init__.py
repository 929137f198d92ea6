"""Transforms shared by inference and training (images, thermal, normalisation, prompt,
tokens)."""

from pi05_moe_policy.transforms.image import resize_with_pad, rgb_to_tensor, thermal_to_tensor
from pi05_moe_policy.transforms.normalize import NormStats, Stats, discretize_state
from pi05_moe_policy.transforms.pipeline import Transform, clean_prompt, format_prompt
from pi05_moe_policy.transforms.tokenizer import HFTokenizer, WordHashTokenizer, build_tokenizer

__all__ = [
    'HFTokenizer', 'NormStats', 'Stats', 'Transform', 'WordHashTokenizer', 'build_tokenizer',
    'clean_prompt', 'discretize_state', 'format_prompt', 'resize_with_pad', 'rgb_to_tensor',
    'thermal_to_tensor',
]
