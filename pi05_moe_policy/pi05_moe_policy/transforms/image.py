"""Image transforms: resize-with-pad to the model size, [-1, 1] scaling, thermal mapping.

RGB: HxWx3 uint8.  Thermal: HxW (or HxWx1) uint16 in centi-Kelvin (degC = (v - 27315) / 100),
clipped to a temperature window and mapped to 3 channels (grey, or an ironbow palette).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812

# Ironbow-like palette: control points (position in [0, 1], RGB in [0, 1]).
_IRONBOW = np.array([
    (0.00, 0.00, 0.00, 0.00),
    (0.15, 0.13, 0.00, 0.45),
    (0.35, 0.55, 0.00, 0.60),
    (0.55, 0.85, 0.20, 0.25),
    (0.75, 0.98, 0.55, 0.00),
    (0.90, 1.00, 0.85, 0.20),
    (1.00, 1.00, 1.00, 1.00),
], dtype=np.float32)


def resize_with_pad(img: torch.Tensor, size: int, pad_value: float = -1.0,
                    reference: bool = False) -> torch.Tensor:
    """img: (3, H, W) float -> (3, size, size): keep the aspect ratio, fit the longer side,
    centre and pad with ``pad_value`` (-1 = black in [-1, 1] units).

    ``reference``: LeRobot's / openpi's resize (plain bilinear, sizes truncated), which
    pretrained weights saw; else this project's first one (antialiased, sizes rounded).
    Bilinear interpolation is affine per pixel, so resizing in [-1, 1] or in [0, 1] agrees.
    """
    _, h, w = img.shape
    if h == size and w == size:
        return img
    ratio = max(h / size, w / size)
    if reference:
        nh, nw = max(1, int(h / ratio)), max(1, int(w / ratio))
    else:
        nh, nw = max(1, int(round(h / ratio))), max(1, int(round(w / ratio)))
    nh, nw = min(nh, size), min(nw, size)
    antialias = not reference and (nh < h or nw < w)
    resized = F.interpolate(img[None], size=(nh, nw), mode='bilinear', align_corners=False,
                            antialias=antialias)[0]  # (3, nh, nw)
    top, left = (size - nh) // 2, (size - nw) // 2
    return F.pad(resized, (left, size - nw - left, top, size - nh - top), value=pad_value)


def rgb_to_tensor(img: np.ndarray, size: int, reference: bool = False) -> torch.Tensor:
    """HxWx3 uint8 -> (3, size, size) float32 in [-1, 1]."""
    x = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).float()  # (3, H, W)
    if reference:  # LeRobot: /255, resize, then *2 - 1 (the same up to float rounding)
        return resize_with_pad(x / 255.0, size, pad_value=0.0, reference=True) * 2.0 - 1.0
    return resize_with_pad(x / 127.5 - 1.0, size)


def thermal_to_unit(img: np.ndarray, window_ck: tuple[float, float]) -> np.ndarray:
    """uint16 centi-Kelvin (H, W) -> float32 (H, W) in [0, 1] over the window."""
    lo, hi = window_ck
    return np.clip((img.astype(np.float32) - lo) / (hi - lo), 0.0, 1.0)


def thermal_to_tensor(img: np.ndarray, size: int, window_ck: tuple[float, float],
                      colormap: str = 'gray', reference: bool = False) -> torch.Tensor:
    """HxW (or HxWx1) uint16 centi-Kelvin -> (3, size, size) float32 in [-1, 1]."""
    unit = thermal_to_unit(img.reshape(img.shape[0], img.shape[1]), window_ck)  # (H, W)
    if colormap == 'gray':
        rgb = np.repeat(unit[None], 3, axis=0)  # (3, H, W)
    elif colormap == 'ironbow':
        rgb = np.stack([np.interp(unit, _IRONBOW[:, 0], _IRONBOW[:, c]) for c in (1, 2, 3)])
    else:
        raise ValueError(f"thermal colormap must be 'gray' or 'ironbow', got {colormap!r}")
    x = torch.from_numpy(rgb.astype(np.float32)) * 2.0 - 1.0  # (3, H, W)
    return resize_with_pad(x, size, reference=reference)


class ImagesToTensors:
    """Step: ``images`` {camera: checked array} -> ``images`` (C, 3, S, S) float32 in [-1, 1]
    in camera order (the base, then the experts) and ``image_masks`` (C,) bool; a missing
    camera is zeros with its mask off.  Thermal (uint16) goes through the colour map."""

    def __init__(self, camera_names: Sequence[str], image_size: int,
                 window_ck: tuple[float, float], colormap: str, reference: bool = False):
        self.camera_names = tuple(camera_names)
        self.size = image_size
        self.window_ck = window_ck
        self.colormap = colormap
        self.reference = reference  # DataConfig.preprocessing == 'reference'

    def __call__(self, sample: dict[str, Any]) -> dict[str, Any]:
        images, s = sample['images'], self.size
        out = torch.zeros(len(self.camera_names), 3, s, s)  # (C, 3, S, S)
        mask = torch.zeros(len(self.camera_names), dtype=torch.bool)  # (C,)
        for i, name in enumerate(self.camera_names):
            img = images.get(name)
            if img is None:
                continue
            if img.dtype == np.uint16:
                out[i] = thermal_to_tensor(img, s, self.window_ck, self.colormap,
                                           self.reference)
            else:
                out[i] = rgb_to_tensor(img, s, self.reference)
            mask[i] = True
        return {**sample, 'images': out, 'image_masks': mask}
