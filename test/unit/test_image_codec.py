"""image_codec: round trips through real rclpy and rosbags Image messages, and its errors.

Each round trip goes through the message's wire format (rclpy's CDR serialisation, or the
rosbags typestore's), so what is tested is what a subscriber or a bag reader actually gets.
"""

from __future__ import annotations

import numpy as np
import pytest
from rclpy.serialization import deserialize_message, serialize_message
from rosbags.typesys import Stores, get_typestore
from sensor_msgs.msg import Image as RclpyImage

from pi05_moe_policy.core.image_codec import (
    ENCODINGS,
    ImageCodecError,
    image_to_numpy,
    numpy_to_image,
    to_rgb8,
)

TYPESTORE = get_typestore(Stores.ROS2_HUMBLE)
IMAGE = 'sensor_msgs/msg/Image'
TOPIC = '/test/image_raw'
ROUNDTRIP_ENCODINGS = ['rgb8', 'bgr8', 'rgba8', 'bgra8', 'mono8', 'mono16', '16UC1', '32FC1']
BACKENDS = ['rclpy', 'rosbags']


def empty_msg(backend: str):
    if backend == 'rclpy':
        return RclpyImage()
    t = TYPESTORE.types
    header = t['std_msgs/msg/Header'](stamp=t['builtin_interfaces/msg/Time'](sec=0, nanosec=0),
                                      frame_id='')
    return t[IMAGE](header=header, height=0, width=0, encoding='', is_bigendian=0, step=0,
                    data=np.zeros(0, dtype=np.uint8))


def raw_msg(backend: str, height: int, width: int, encoding: str, step: int, data: bytes,
            big_endian: bool = False):
    """A message with exactly the given fields (no codec involved)."""
    msg = empty_msg(backend)
    msg.height, msg.width, msg.encoding, msg.step = height, width, encoding, step
    msg.is_bigendian = int(big_endian)
    msg.data = np.frombuffer(data, dtype=np.uint8).copy() if backend == 'rosbags' else data
    return msg


def over_the_wire(msg, backend: str):
    """Serialise and deserialise ``msg`` as a subscriber / bag reader would see it."""
    if backend == 'rclpy':
        return deserialize_message(serialize_message(msg), RclpyImage)
    return TYPESTORE.deserialize_cdr(TYPESTORE.serialize_cdr(msg, IMAGE), IMAGE)


def random_image(encoding: str, height: int = 5, width: int = 7, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    enc = ENCODINGS[encoding]
    shape = (height, width) if enc.channels == 1 else (height, width, enc.channels)
    if enc.dtype == np.float32:
        return rng.normal(size=shape).astype(np.float32)
    return rng.integers(0, np.iinfo(enc.dtype).max, size=shape, endpoint=True, dtype=enc.dtype)


@pytest.mark.parametrize('backend', BACKENDS)
@pytest.mark.parametrize('encoding', ROUNDTRIP_ENCODINGS)
def test_round_trip(backend, encoding):
    image = random_image(encoding)
    msg = numpy_to_image(image, encoding, empty_msg(backend), TOPIC)
    enc = ENCODINGS[encoding]
    assert (msg.height, msg.width, msg.encoding) == (5, 7, encoding)
    assert msg.step == 7 * enc.pixel_bytes
    got = image_to_numpy(over_the_wire(msg, backend), TOPIC)
    assert got.dtype == enc.dtype and got.shape == image.shape
    np.testing.assert_array_equal(got, image)


@pytest.mark.parametrize('backend', BACKENDS)
@pytest.mark.parametrize('encoding', ['rgb8', 'mono16', '32FC1'])
def test_padded_step_is_cropped(backend, encoding):
    image = random_image(encoding, height=4, width=3)
    row_bytes = 3 * ENCODINGS[encoding].pixel_bytes
    step = row_bytes + 5  # drivers pad rows to an alignment; the padding must be dropped
    rows = image.reshape(4, row_bytes // ENCODINGS[encoding].dtype.itemsize)
    data = b''.join(row.astype(row.dtype.newbyteorder('<')).tobytes() + b'\xab' * 5
                    for row in rows)
    msg = over_the_wire(raw_msg(backend, 4, 3, encoding, step, data), backend)
    np.testing.assert_array_equal(image_to_numpy(msg, TOPIC), image)


@pytest.mark.parametrize('backend', BACKENDS)
@pytest.mark.parametrize('encoding', ['mono16', '16UC1', '32FC1'])
def test_big_endian_data(backend, encoding):
    image = random_image(encoding, seed=3)
    data = image.astype(image.dtype.newbyteorder('>')).tobytes()
    step = image.shape[1] * image.dtype.itemsize
    msg = over_the_wire(raw_msg(backend, *image.shape, encoding, step, data, big_endian=True),
                        backend)
    got = image_to_numpy(msg, TOPIC)
    assert got.dtype.isnative
    np.testing.assert_array_equal(got, image)
    # The same bytes read as little-endian would be different values: the flag matters.
    msg.is_bigendian = 0
    assert not np.array_equal(image_to_numpy(msg, TOPIC), image)


@pytest.mark.parametrize('backend', BACKENDS)
def test_decoded_array_does_not_alias_the_message(backend):
    msg = numpy_to_image(random_image('mono8'), 'mono8', empty_msg(backend), TOPIC)
    before = bytes(msg.data)
    got = image_to_numpy(msg, TOPIC)
    got[...] = 0
    assert bytes(msg.data) == before


@pytest.mark.parametrize('backend', BACKENDS)
def test_unknown_encoding_names_topic_and_encoding(backend):
    msg = raw_msg(backend, 2, 2, 'yuv422', 4, bytes(8))
    with pytest.raises(ImageCodecError, match=f'{TOPIC}.*yuv422'):
        image_to_numpy(msg, TOPIC)
    with pytest.raises(ImageCodecError, match=f'{TOPIC}.*yuv422'):
        numpy_to_image(np.zeros((2, 2, 2), np.uint8), 'yuv422', empty_msg(backend), TOPIC)


@pytest.mark.parametrize('backend', BACKENDS)
def test_step_smaller_than_a_row_names_topic_and_encoding(backend):
    msg = raw_msg(backend, 2, 4, 'rgb8', 11, bytes(22))  # a row needs 12 bytes
    with pytest.raises(ImageCodecError, match=f'{TOPIC}.*rgb8.*step 11'):
        image_to_numpy(msg, TOPIC)


@pytest.mark.parametrize('backend', BACKENDS)
@pytest.mark.parametrize('size', [23, 25])
def test_data_size_inconsistent_with_step_names_topic_and_encoding(backend, size):
    msg = raw_msg(backend, 2, 4, 'mono16', 12, bytes(size))  # step 12 x height 2 = 24 bytes
    with pytest.raises(ImageCodecError, match=f'{TOPIC}.*mono16.*{size} bytes.*24'):
        image_to_numpy(msg, TOPIC)


def test_empty_image_is_an_error():
    with pytest.raises(ImageCodecError, match=f'{TOPIC}.*empty'):
        image_to_numpy(raw_msg('rclpy', 0, 4, 'mono8', 4, b''), TOPIC)


@pytest.mark.parametrize('array, encoding, match', [
    (np.zeros((2, 2, 3), np.uint8), 'mono8', 'shape'),
    (np.zeros((2, 2), np.uint8), 'rgb8', 'shape'),
    (np.zeros((2, 2), np.float64), '32FC1', 'dtype'),
    (np.zeros((2, 2), np.uint8), 'mono16', 'dtype'),
])
def test_numpy_to_image_rejects_arrays_that_do_not_fit(array, encoding, match):
    with pytest.raises(ImageCodecError, match=f'{TOPIC}.*{match}'):
        numpy_to_image(array, encoding, RclpyImage(), TOPIC)


def test_to_rgb8_channel_orders():
    rgb = random_image('rgb8')
    alpha = np.full(rgb.shape[:2] + (1,), 7, np.uint8)
    np.testing.assert_array_equal(to_rgb8(rgb, 'rgb8'), rgb)
    np.testing.assert_array_equal(to_rgb8(rgb[..., ::-1], 'bgr8'), rgb)
    np.testing.assert_array_equal(to_rgb8(np.concatenate([rgb, alpha], 2), 'rgba8'), rgb)
    np.testing.assert_array_equal(to_rgb8(np.concatenate([rgb[..., ::-1], alpha], 2), 'bgra8'),
                                  rgb)
    mono = random_image('mono8')
    assert to_rgb8(mono, 'mono8').shape == mono.shape + (3,)
    np.testing.assert_array_equal(to_rgb8(mono, 'mono8')[..., 1], mono)


def test_to_rgb8_rejects_non_colour_encodings():
    with pytest.raises(ImageCodecError, match=f'{TOPIC}.*16UC1'):
        to_rgb8(random_image('16UC1'), '16UC1', TOPIC)
