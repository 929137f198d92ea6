"""thermal_decode.py and thermal_colormap.py on synthetic Y16 frames (pure numpy/OpenCV)."""

import cv2
import numpy as np
import pytest

from pi05_moe_bringup.drivers.config import ThermalCameraConfig
from pi05_moe_bringup.drivers.thermal_colormap import COLORMAPS, auto_window, colorize
from pi05_moe_bringup.drivers.thermal_decode import (
    ThermalDecoder,
    ThermalFormatError,
    as_y16,
    radiometry_problem,
    to_celsius,
    to_centi_kelvin,
)


def lut(name):
    """The colormap's 256 colours in RGB, straight from OpenCV."""
    ramp = np.arange(256, dtype=np.uint8).reshape(1, 256)
    return cv2.applyColorMap(ramp, COLORMAPS[name])[0, :, ::-1]  # (256, 3) RGB


def test_centi_kelvin_celsius_conversions():
    # water freezes at 273.15 K, boils at 373.15 K; a human body is ~37 °C
    raw = np.array([[27315, 37315, 31015]], np.uint16)
    np.testing.assert_allclose(to_celsius(raw), [[0.0, 100.0, 37.0]], atol=1e-4)
    np.testing.assert_array_equal(to_centi_kelvin(np.array([0.0, 100.0, 37.0])),
                                  [27315, 37315, 31015])
    assert to_centi_kelvin(21.234) == 29438  # rounded to the nearest 0.01 K
    np.testing.assert_array_equal(to_centi_kelvin(np.array([-300.0, 1000.0])), [0, 65535])
    values = np.arange(0, 65536, 7, dtype=np.uint16)
    np.testing.assert_array_equal(to_centi_kelvin(to_celsius(values)), values)


def test_as_y16_accepts_only_raw_16_bit_frames():
    frame = np.full((120, 160), 30000, np.uint16)
    assert as_y16(frame) is frame
    cases = [
        (np.zeros((120, 160, 3), np.uint8), 'CONVERT_RGB'),
        (np.zeros((120, 160, 2), np.uint8), 'YUYV'),
        (np.zeros((1, 9000), np.uint8), 'MJPG'),
        (np.zeros((120, 160), np.uint8), '8-bit'),
        (np.zeros((120, 160), np.float32), 'unexpected'),
    ]
    for bad, hint in cases:
        with pytest.raises(ThermalFormatError) as err:
            as_y16(bad)
        assert hint in str(err.value) and str(bad.shape) in str(err.value)


def test_radiometry_sanity_check():
    room = to_centi_kelvin(np.full((120, 160), 22.0))
    assert radiometry_problem(room) is None
    assert radiometry_problem(to_centi_kelvin(np.full((4, 4), -40.0))) is None  # cold, plausible
    counts = np.full((120, 160), 8192, np.uint16)  # a Lepton with radiometry off: 14-bit counts
    message = radiometry_problem(counts)
    assert message and 'TLinear' in message and '8192' in message
    deci_k = np.full((120, 160), 2953, np.uint16)  # TLinear at 0.1 K resolution
    assert '0.1 K' in radiometry_problem(deci_k)


def test_colorize_maps_the_window_onto_the_colormap():
    lo, hi = 29315.0, 31315.0  # 20..40 °C
    raw = np.array([[20000, 29315, 30315, 31315, 65535]], np.uint16)
    rgb = colorize(raw, lo, hi, 'inferno')
    table = lut('inferno')
    assert rgb.shape == (1, 5, 3) and rgb.dtype == np.uint8
    np.testing.assert_array_equal(rgb[0, 0], table[0])  # below the window: clipped
    np.testing.assert_array_equal(rgb[0, 1], table[0])
    np.testing.assert_array_equal(rgb[0, 2], table[128])  # mid-window (127.5 rounds to 128)
    np.testing.assert_array_equal(rgb[0, 3], table[255])
    np.testing.assert_array_equal(rgb[0, 4], table[255])  # above the window: clipped
    brightness = rgb[0].astype(int).sum(axis=1)
    assert brightness[1] < brightness[2] < brightness[3]  # inferno: hotter is brighter


def test_colorize_rejects_bad_windows_and_names():
    raw = np.zeros((2, 2), np.uint16)
    with pytest.raises(ValueError, match='hi > lo'):
        colorize(raw, 5.0, 5.0)
    with pytest.raises(ValueError, match='inferno'):
        colorize(raw, 0.0, 1.0, 'rainbow')


def test_auto_window_ignores_a_few_hot_pixels():
    raw = to_centi_kelvin(np.linspace(18.0, 30.0, 100 * 100).reshape(100, 100))
    raw[0, :5] = 65535  # dead/hot pixels
    lo, hi = auto_window(raw)
    assert to_celsius(np.uint16(lo)) < 18.2 and 29.5 < to_celsius(np.uint16(hi)) < 30.1
    flat = np.full((10, 10), 30000, np.uint16)
    lo, hi = auto_window(flat)
    assert hi > lo


def test_decoder_lepton_fixed_window_in_celsius():
    decoder = ThermalDecoder('lepton_radiometric', (15.0, 45.0), 'inferno')
    frame = to_centi_kelvin(np.array([[10.0, 15.0, 30.0, 45.0, 60.0]]))
    out = decoder(frame)
    table = lut('inferno')
    assert out.raw is frame and out.warning is None
    np.testing.assert_array_equal(out.color[0], table[[0, 0, 128, 255, 255]])


def test_decoder_boson_counts_are_auto_ranged_and_never_judged_as_kelvin():
    counts = np.tile(np.arange(7000, 9000, 10, dtype=np.uint16), (10, 1))  # (10, 200)
    out = ThermalDecoder('boson_raw16', (15.0, 45.0), 'inferno')(counts)
    assert out.warning is None  # counts are not checked as centi-Kelvin
    table = lut('inferno')
    np.testing.assert_array_equal(out.color[0, 0], table[0])  # the frame's own range
    np.testing.assert_array_equal(out.color[0, -1], table[255])
    lepton_out = ThermalDecoder('lepton_radiometric', None)(counts)
    assert lepton_out.warning and 'not centi-Kelvin' in lepton_out.warning


def test_decoder_rejects_unknown_sensors():
    with pytest.raises(ValueError, match='boson_raw16'):
        ThermalDecoder('seek_thermal', None)


def test_config_validation_quotes_values():
    assert ThermalCameraConfig().preview_window_c == (15.0, 45.0)
    assert ThermalCameraConfig(sensor='boson_raw16').preview_window_c is None
    assert ThermalCameraConfig(preview_auto_range=True).preview_window_c is None
    with pytest.raises(ValueError, match=r"sensor='flir'"):
        ThermalCameraConfig(sensor='flir')
    with pytest.raises(ValueError, match=r'preview_max_c=10.0: expected > preview_min_c'):
        ThermalCameraConfig(preview_min_c=20.0, preview_max_c=10.0)
    with pytest.raises(ValueError, match=r"colormap='rainbow'"):
        ThermalCameraConfig(colormap='rainbow')
