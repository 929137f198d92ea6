"""Y16 thermal frames: validation, centi-Kelvin <-> Celsius and the preview. Pure: no rclpy.

A FLIR Lepton on a PureThermal board streams Y16 over UVC. With radiometry (TLinear) on, at its
default 0.01 K resolution, each value is a temperature in centi-Kelvin: ``°C = (v - 27315) / 100``.
That is what ``/thermal/image_raw`` carries (mono16, unchanged). A FLIR Boson's RAW16 stream is
*counts*, not temperatures; it is selectable as ``sensor: boson_raw16`` and published unchanged,
but every log line and this docstring say so, and its preview is auto-ranged.

OpenCV hands Y16 over as an (H, W) uint16 array when ``CAP_PROP_CONVERT_RGB`` is off and the
device really streams Y16. Anything else (8-bit AGC video, YUYV, MJPG, colour) is the
wrong pixel format: :func:`as_y16` rejects it with a hint at the cause.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pi05_moe_bringup.drivers.thermal_colormap import auto_window, colorize

CENTI_K_AT_0C = 27315  # 273.15 K in centi-Kelvin
# sensor -> what its values mean (used in log lines, so that counts are never mistaken for K)
SENSORS = {
    'lepton_radiometric': 'centi-Kelvin temperatures (FLIR Lepton, TLinear on)',
    'boson_raw16': 'RAW16 counts, NOT temperatures (FLIR Boson)',
}
# Below this a 'centi-Kelvin' frame would be colder than -50 °C: not radiometric data.
_MIN_PLAUSIBLE_CENTI_K = CENTI_K_AT_0C - 5000


class ThermalFormatError(ValueError):
    """A frame that is not Y16; the message says what arrived and the likely cause."""


def as_y16(frame: np.ndarray) -> np.ndarray:
    """Return ``frame`` if it is (H, W) uint16, else raise :class:`ThermalFormatError`."""
    if frame.ndim == 2 and frame.dtype == np.uint16:
        return frame
    if frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] in (3, 4):
        cause = ('colour frames: the device is not streaming Y16, or CONVERT_RGB is on '
                 '(select fourcc "Y16 " with CAP_PROP_CONVERT_RGB=0)')
    elif frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 2:
        cause = 'a YUYV stream: the device ignored the Y16 request'
    elif frame.dtype == np.uint8 and frame.ndim == 2 and frame.shape[0] == 1:
        cause = 'an undecoded compressed (MJPG) buffer: the device ignored the Y16 request'
    elif frame.dtype == np.uint8:
        cause = '8-bit frames (AGC video or an 8-bit file): not raw Y16'
    else:
        cause = 'an unexpected layout'
    raise ThermalFormatError(f'got a {frame.shape} {frame.dtype} frame, expected (H, W) uint16 '
                             f'Y16: {cause}')


def to_celsius(centi_k: np.ndarray) -> np.ndarray:
    """(H, W) uint16 centi-Kelvin -> (H, W) float32 °C."""
    return (centi_k.astype(np.float32) - CENTI_K_AT_0C) / np.float32(100.0)


def to_centi_kelvin(celsius: np.ndarray | float) -> np.ndarray:
    """°C -> uint16 centi-Kelvin, rounded and clipped to what Y16 can hold (-273.15..382.2 °C)."""
    value = np.rint(np.asarray(celsius, dtype=np.float64) * 100.0 + CENTI_K_AT_0C)
    return np.clip(value, 0, np.iinfo(np.uint16).max).astype(np.uint16)


def radiometry_problem(centi_k: np.ndarray) -> str | None:
    """A warning when a 'radiometric' frame cannot be centi-Kelvin, else None.

    A Lepton with radiometry off sends 14-bit counts (~8000) and TLinear at 0.1 K resolution sends
    deci-Kelvin (~2950 at room temperature): both read as below -50 °C here.
    """
    median = float(np.median(centi_k))
    if median >= _MIN_PLAUSIBLE_CENTI_K:
        return None
    return (f'median value {median:.0f} would be {(median - CENTI_K_AT_0C) / 100:.1f} °C: this '
            'is not centi-Kelvin. Is radiometry (TLinear) off, or its resolution 0.1 K?')


@dataclass(frozen=True)
class ThermalFrame:
    """What the thermal node publishes for one captured frame."""

    raw: np.ndarray  # (H, W) uint16, as the sensor sent it
    color: np.ndarray  # (H, W, 3) uint8 RGB preview
    warning: str | None = None  # a radiometry sanity problem, for a rate-limited log line


class ThermalDecoder:
    """Turns OpenCV frames into :class:`ThermalFrame` (runs in the capture thread).

    ``window_c`` is the preview's temperature window in °C for ``lepton_radiometric``; None, or
    ``sensor='boson_raw16'`` (counts have no °C), auto-ranges each frame instead.
    """

    def __init__(self, sensor: str, window_c: tuple[float, float] | None,
                 colormap: str = 'inferno'):
        if sensor not in SENSORS:
            raise ValueError(f'sensor {sensor!r}: expected one of {", ".join(SENSORS)}')
        self.sensor = sensor
        self.colormap = colormap
        self.window = None  # in raw units; None = auto
        if sensor == 'lepton_radiometric' and window_c is not None:
            self.window = tuple(float(v) for v in to_centi_kelvin(np.array(window_c)))

    def __call__(self, frame: np.ndarray) -> ThermalFrame:
        raw = as_y16(frame)
        lo, hi = self.window or auto_window(raw)
        warning = radiometry_problem(raw) if self.sensor == 'lepton_radiometric' else None
        return ThermalFrame(raw, colorize(raw, lo, hi, self.colormap), warning)
