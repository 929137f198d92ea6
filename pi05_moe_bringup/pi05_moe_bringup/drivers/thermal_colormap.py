"""False-colour previews of 16-bit thermal frames. Pure: numpy + OpenCV's colormap tables."""

from __future__ import annotations

import cv2
import numpy as np

# name -> OpenCV colormap; 'inferno' reads well for temperature (dark = cold, yellow = hot).
COLORMAPS = {
    'inferno': cv2.COLORMAP_INFERNO,
    'magma': cv2.COLORMAP_MAGMA,
    'plasma': cv2.COLORMAP_PLASMA,
    'turbo': cv2.COLORMAP_TURBO,
    'jet': cv2.COLORMAP_JET,
    'hot': cv2.COLORMAP_HOT,
    'bone': cv2.COLORMAP_BONE,
}


def colorize(raw: np.ndarray, lo: float, hi: float, colormap: str = 'inferno') -> np.ndarray:
    """(H, W) raw values -> (H, W, 3) uint8 RGB: ``lo`` and below -> the colormap's first
    colour, ``hi`` and above -> its last, linear in between."""
    if hi <= lo:
        raise ValueError(f'colour window [{lo}, {hi}]: expected hi > lo')
    if colormap not in COLORMAPS:
        raise ValueError(f'colormap {colormap!r}: expected one of {", ".join(COLORMAPS)}')
    scaled = (raw.astype(np.float32) - np.float32(lo)) * np.float32(255.0 / (hi - lo))
    index = np.clip(np.rint(scaled), 0, 255).astype(np.uint8)  # (H, W)
    bgr = cv2.applyColorMap(index, COLORMAPS[colormap])  # (H, W, 3)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def auto_window(raw: np.ndarray, low_pct: float = 1.0,
                high_pct: float = 99.0) -> tuple[float, float]:
    """A colour window from the frame itself (percentiles, robust to a few hot pixels).

    Always returns ``hi > lo``, also for a flat frame.
    """
    lo, hi = np.percentile(raw, [low_pct, high_pct])
    return float(lo), float(max(hi, lo + 1.0))
