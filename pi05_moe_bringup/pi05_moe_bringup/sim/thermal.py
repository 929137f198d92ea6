"""A Lepton-like radiometric image from segmentation: per-geom temperature, optics blur, noise.

Output is uint16 centi-kelvin (degC = (v - 27315) / 100), the format of a Lepton 3.5 in
radiometric Y16 mode.
"""

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class ThermalConfig:
    """How the scene's temperatures become a noisy, blurry sensor image."""

    background_k: float = 293.15  # what pixels that hit no geom read (the room)
    blur_sigma_px: float = 1.0  # Gaussian blur of the Lepton's optics, at 160x120
    noise_k: float = 0.05  # per-pixel temporal noise, the Lepton's NETD (<50 mK)

    def __post_init__(self):
        if not 0.0 < self.background_k < 655.35:
            raise ValueError(f'background_k must be in (0, 655.35) K, got {self.background_k!r}')
        if self.blur_sigma_px < 0:
            raise ValueError(f'blur_sigma_px must be >= 0, got {self.blur_sigma_px!r}')
        if self.noise_k < 0:
            raise ValueError(f'noise_k must be >= 0, got {self.noise_k!r}')


def thermal_image(geom_ids: np.ndarray, temperatures: np.ndarray, rng: np.random.Generator,
                  config: ThermalConfig = ThermalConfig()) -> np.ndarray:
    """(H, W) geom ids (-1 = none) + (ngeom,) kelvin -> (H, W) uint16 centi-kelvin."""
    lut = np.append(temperatures, config.background_k).astype(np.float32)  # (ngeom + 1,)
    kelvin = lut[geom_ids]  # (H, W); id -1 picks the appended background entry
    if config.blur_sigma_px > 0:
        kelvin = cv2.GaussianBlur(kelvin, (0, 0), config.blur_sigma_px,
                                  borderType=cv2.BORDER_REPLICATE)
    if config.noise_k > 0:
        kelvin = kelvin + rng.normal(0.0, config.noise_k, kelvin.shape).astype(np.float32)
    return np.clip(np.rint(kelvin * 100.0), 0, 65535).astype(np.uint16)
