"""Camera messages and prompts -> the policy's observation dict. Pure: no rclpy.

Colour cameras reach the policy as (H, W, 3) uint8 RGB (any colour or mono8 encoding is
converted); thermal cameras as (H, W) uint16 centi-Kelvin (mono16 / 16UC1 only). Checking is
split in two so that callbacks stay cheap and bad frames never replace good ones:

- :func:`check_image_header` runs in the subscription callback: encoding known and fit for the
  camera, image not smaller than ``min_size``. It touches no pixels.
- :func:`decode_image` runs in the inference worker (step/size consistency is checked there, by
  the codec).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pi05_moe_policy.core.image_codec import ImageCodecError, image_to_numpy, lookup, to_rgb8

RGB = 'rgb'
THERMAL = 'thermal'
KIND_ENCODINGS = {
    RGB: ('rgb8', 'bgr8', 'rgba8', 'bgra8', 'mono8', '8UC1', '8UC3'),
    THERMAL: ('mono16', '16UC1'),
}


def check_image_header(msg: Any, kind: str, topic: str, min_size: int,
                       max_size: int | None = None) -> None:
    """Raise ``ImageCodecError`` (naming topic and encoding) for an image the camera can't use:
    unknown or unfit encoding, a side below ``min_size`` or above ``max_size`` pixels."""
    lookup(msg.encoding, topic)
    if msg.encoding not in KIND_ENCODINGS[kind]:
        raise ImageCodecError(
            f'{topic}: encoding {msg.encoding!r} does not fit a {kind} camera (expected one of '
            f'{", ".join(KIND_ENCODINGS[kind])})')
    if msg.width < min_size or msg.height < min_size:
        raise ImageCodecError(
            f'{topic}: {msg.encoding} image of {msg.width}x{msg.height} is smaller than '
            f'min_image_size {min_size}')
    if max_size is not None and (msg.width > max_size or msg.height > max_size):
        raise ImageCodecError(
            f'{topic}: {msg.encoding} image of {msg.width}x{msg.height} is larger than '
            f'max_image_size {max_size}')


def decode_image(msg: Any, kind: str, topic: str) -> np.ndarray:
    """(H, W, 3) uint8 RGB for a colour camera, (H, W) uint16 for a thermal one."""
    image = image_to_numpy(msg, topic)
    if kind == THERMAL:
        return image  # (H, W) uint16 centi-Kelvin
    return to_rgb8(image, msg.encoding, topic)  # (H, W, 3)


def clean_prompt(text: str, max_chars: int | None = None) -> tuple[str, str | None]:
    """(prompt, problem): underscores to spaces, whitespace collapsed, cut to ``max_chars``
    (None: no limit); problem text or None.  The one prompt cleaner, shared by the policy
    node (a prompt message) and the transforms (``TokenizePrompt``'s text).

    An empty prompt comes back as ``''`` with a problem: the caller keeps its previous prompt.
    """
    prompt = ' '.join(text.replace('_', ' ').split())
    if not prompt:
        return '', 'empty prompt ignored'
    if max_chars is not None and len(prompt) > max_chars:
        return prompt[:max_chars], (f'prompt of {len(prompt)} characters cut to max_prompt_chars '
                                    f'{max_chars}')
    return prompt, None


def decode_cameras(messages: dict[str, Any], kinds: dict[str, str], topics: dict[str, str]
                   ) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Decode every camera message; (images, problems) with one problem text per camera that
    failed (named by its topic). The caller decides whether a failed camera is fatal."""
    images: dict[str, np.ndarray] = {}
    problems: dict[str, str] = {}
    for name, msg in messages.items():
        try:
            images[name] = decode_image(msg, kinds[name], topics[name])
        except ImageCodecError as exc:
            problems[name] = str(exc)
    return images, problems
