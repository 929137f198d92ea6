"""Prompt steps: the PI0.5 prompt text (task + discretised state) and its tokens."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from pi05_moe_policy.core.observation import clean_prompt
from pi05_moe_policy.transforms.normalize import discretize_state

log = logging.getLogger(__name__)


def format_prompt(prompt: str, state_norm: np.ndarray | None, pi05: bool,
                  clip_bins: bool = False) -> str:
    """PI0.5: ``"Task: {prompt}, State: {256-bin state};\\nAction: "``, or without a state
    (``state_norm`` None) ``"Task: {prompt};\\nAction: "``; PI0: the prompt + newline.

    state_norm: the quantile-normalised real state dims (PI0.5 only).
    """
    text, _ = clean_prompt(prompt)
    if not pi05:
        return text + '\n'
    if state_norm is None:
        return f'Task: {text};\nAction: '
    bins = discretize_state(state_norm, clip=clip_bins)
    return f'Task: {text}, State: {" ".join(str(int(b)) for b in bins)};\nAction: '


def _log_truncation(text: str, n_ids: int, max_token_len: int) -> None:
    log.warning('prompt is %d tokens, truncated to max_token_len=%d: %r', n_ids, max_token_len,
                text)


def tokenize(tokenizer: Any, text: str, max_token_len: int,
             on_truncate: Callable[[str, int], None] | None = None
             ) -> tuple[torch.Tensor, torch.Tensor]:
    """-> tokens (L,) long, mask (L,) bool, L = max_token_len (pad or truncate).

    A cut is reported to ``on_truncate(text, n_ids)`` (a node logs it once per prompt through
    its own logger), or else through Python logging."""
    n = max_token_len
    ids = tokenizer.encode(text)
    if len(ids) > n:
        if on_truncate is not None:
            on_truncate(text, len(ids))
        else:
            _log_truncation(text, len(ids), n)
        ids = ids[:n]
    tokens = torch.full((n,), tokenizer.pad_id, dtype=torch.long)
    tokens[:len(ids)] = torch.tensor(ids, dtype=torch.long)
    mask = torch.zeros(n, dtype=torch.bool)
    mask[:len(ids)] = True
    return tokens, mask


class TokenizePrompt:
    """Step: ``prompt`` (+ the normalised ``state`` when it goes in the prompt) -> ``tokens``
    (L,) and ``token_mask`` (L,).  Runs after ``Normalize``: PI0.5 writes the normalised state
    as 256 bins."""

    def __init__(self, tokenizer: Any, max_token_len: int, pi05: bool, state_in_prompt: bool,
                 clip_bins: bool = False):
        self.tokenizer = tokenizer
        self.clip_bins = clip_bins  # DataConfig.preprocessing == 'v1'
        self.max_token_len = max_token_len
        self.pi05 = pi05
        self.state_in_prompt = state_in_prompt
        self.on_truncate: Callable[[str, int], None] | None = None  # see tokenize()

    def __call__(self, sample: dict[str, Any]) -> dict[str, Any]:
        state = sample['state'] if self.state_in_prompt else None
        text = format_prompt(sample['prompt'], state, self.pi05, self.clip_bins)
        tokens, mask = tokenize(self.tokenizer, text, self.max_token_len, self.on_truncate)
        return {**sample, 'tokens': tokens, 'token_mask': mask}
