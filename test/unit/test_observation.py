"""Camera header checks, decoding to the policy's image formats, and prompt cleaning."""

from __future__ import annotations

import numpy as np
import pytest
from sensor_msgs.msg import Image

from pi05_moe_policy.core.image_codec import ImageCodecError, numpy_to_image
from pi05_moe_policy.core.observation import (
    RGB,
    THERMAL,
    check_image_header,
    clean_prompt,
    decode_cameras,
    decode_image,
)


def image(array, encoding):
    return numpy_to_image(array, encoding, Image(), '/t')


def test_colour_encodings_become_rgb8_and_thermal_stays_uint16():
    rgb = np.random.default_rng(0).integers(0, 255, (20, 30, 3), dtype=np.uint8)
    bgr = image(np.ascontiguousarray(rgb[..., ::-1]), 'bgr8')
    check_image_header(bgr, RGB, '/wrist', min_size=16)
    np.testing.assert_array_equal(decode_image(bgr, RGB, '/wrist'), rgb)
    thermal = np.full((20, 30), 30315, np.uint16)
    msg = image(thermal, 'mono16')
    check_image_header(msg, THERMAL, '/thermal', min_size=16)
    got = decode_image(msg, THERMAL, '/thermal')
    assert got.dtype == np.uint16 and got.shape == (20, 30)


@pytest.mark.parametrize('array, encoding, kind, match', [
    (np.zeros((20, 20), np.uint16), 'mono16', RGB, "'mono16' does not fit a rgb camera"),
    (np.zeros((20, 20, 3), np.uint8), 'rgb8', THERMAL, "'rgb8' does not fit a thermal camera"),
    (np.zeros((1, 1, 3), np.uint8), 'rgb8', RGB, '1x1 is smaller than min_image_size 16'),
    (np.zeros((20, 8), np.uint16), 'mono16', THERMAL, '8x20 is smaller'),
])
def test_header_check_rejects_unfit_images_naming_the_topic(array, encoding, kind, match):
    with pytest.raises(ImageCodecError, match=f'/cam: .*{match}'):
        check_image_header(image(array, encoding), kind, '/cam', min_size=16)


def test_header_check_rejects_unknown_encodings():
    msg = Image(height=20, width=20, encoding='yuv422', step=40, data=bytes(800))
    with pytest.raises(ImageCodecError, match="/cam: unsupported image encoding 'yuv422'"):
        check_image_header(msg, RGB, '/cam', min_size=16)


def test_decode_cameras_reports_each_failure_by_topic():
    good = image(np.zeros((20, 20, 3), np.uint8), 'rgb8')
    torn = image(np.zeros((20, 20, 3), np.uint8), 'rgb8')
    torn.data = bytes(10)  # data no longer matches step x height
    images, problems = decode_cameras({'wrist': good, 'l515': torn}, {'wrist': RGB, 'l515': RGB},
                                      {'wrist': '/wrist', 'l515': '/l515'})
    assert list(images) == ['wrist'] and list(problems) == ['l515']
    assert '/l515' in problems['l515']


def test_prompt_cleaning():
    assert clean_prompt('  lift \n the  red cube ', 100) == ('lift the red cube', None)
    assert clean_prompt(' \t', 100) == ('', 'empty prompt ignored')
    prompt, problem = clean_prompt('x' * 10_000, 512)
    assert len(prompt) == 512 and '10000 characters cut to max_prompt_chars 512' in problem
