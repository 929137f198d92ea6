"""sensor_msgs/Image <-> numpy, driven by one encoding table. Pure: no rclpy, no cv_bridge.

cv_bridge is not installable from PyPI and drags OpenCV's C++ ABI along on a robot; this module is
the small part of it we need. It works on any object with the Image fields (``height``, ``width``,
``encoding``, ``is_bigendian``, ``step``, ``data``): rclpy messages and ``rosbags`` messages alike.
"""

from __future__ import annotations

import sys
from array import array
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Encoding:
    """How one ``sensor_msgs/Image`` encoding maps onto a numpy array."""

    dtype: np.dtype
    channels: int

    @property
    def pixel_bytes(self) -> int:
        return self.dtype.itemsize * self.channels


# The encodings we read and write (names as in sensor_msgs/image_encodings.hpp).
ENCODINGS: dict[str, Encoding] = {
    'rgb8': Encoding(np.dtype(np.uint8), 3),
    'bgr8': Encoding(np.dtype(np.uint8), 3),
    'rgba8': Encoding(np.dtype(np.uint8), 4),
    'bgra8': Encoding(np.dtype(np.uint8), 4),
    'mono8': Encoding(np.dtype(np.uint8), 1),
    '8UC1': Encoding(np.dtype(np.uint8), 1),
    '8UC3': Encoding(np.dtype(np.uint8), 3),
    'mono16': Encoding(np.dtype(np.uint16), 1),
    '16UC1': Encoding(np.dtype(np.uint16), 1),
    '32FC1': Encoding(np.dtype(np.float32), 1),
}

_HOST_BIG_ENDIAN = sys.byteorder == 'big'


class ImageCodecError(ValueError):
    """An image message that cannot be converted; the text names the topic and the encoding."""


def lookup(encoding: str, topic: str = '?') -> Encoding:
    """Return the table entry for ``encoding`` or raise naming the topic and the known ones."""
    try:
        return ENCODINGS[encoding]
    except KeyError:
        raise ImageCodecError(
            f'{topic}: unsupported image encoding {encoding!r}; '
            f'supported: {", ".join(sorted(ENCODINGS))}'
        ) from None


def image_to_numpy(msg, topic: str = '?') -> np.ndarray:
    """Decode an Image message into a new array.

    Returns (H, W) for one channel, else (H, W, C), in host byte order. Padded rows (``step``
    larger than ``width * pixel_bytes``) are cropped. The result never aliases ``msg.data``.
    """
    enc = lookup(msg.encoding, topic)
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    row_bytes = width * enc.pixel_bytes
    if height <= 0 or width <= 0:
        raise ImageCodecError(f'{topic}: empty {msg.encoding} image ({width}x{height})')
    if step < row_bytes:
        raise ImageCodecError(
            f'{topic}: {msg.encoding} image step {step} < '
            f'width {width} x {enc.pixel_bytes} bytes'
        )
    buf = np.frombuffer(msg.data, dtype=np.uint8)
    if buf.size != step * height:
        raise ImageCodecError(
            f'{topic}: {msg.encoding} image data has {buf.size} bytes, expected '
            f'step {step} x height {height} = {step * height}'
        )
    rows = buf.reshape(height, step)[:, :row_bytes]  # (H, W * pixel_bytes), strided view
    dtype = enc.dtype.newbyteorder('>' if msg.is_bigendian else '<')
    out = np.ascontiguousarray(rows).view(dtype).astype(enc.dtype, copy=True)  # (H, W * C)
    if enc.channels == 1:
        return out.reshape(height, width)
    return out.reshape(height, width, enc.channels)


def numpy_to_image(array_: np.ndarray, encoding: str, msg, topic: str = '?'):
    """Fill ``msg`` (an Image message, rclpy or rosbags) from ``array_`` and return it.

    ``array_`` is (H, W) or (H, W, C) with the dtype and channel count of ``encoding``. Rows are
    written unpadded in host byte order. The header is left to the caller.
    """
    enc = lookup(encoding, topic)
    a = np.asarray(array_)
    if a.ndim == 2 and enc.channels == 1:
        a = a[..., None]  # (H, W, 1)
    if a.ndim != 3 or a.shape[2] != enc.channels:
        raise ImageCodecError(
            f'{topic}: array of shape {a.shape} does not fit encoding {encoding!r} '
            f'({enc.channels} channel(s))'
        )
    if a.dtype != enc.dtype:
        raise ImageCodecError(
            f'{topic}: array dtype {a.dtype} does not fit encoding {encoding!r} ({enc.dtype})'
        )
    data = np.ascontiguousarray(a).tobytes()
    msg.height, msg.width = int(a.shape[0]), int(a.shape[1])
    msg.encoding = encoding
    msg.is_bigendian = int(_HOST_BIG_ENDIAN)
    msg.step = int(a.shape[1] * enc.pixel_bytes)
    if isinstance(msg.data, np.ndarray):  # rosbags message classes hold numpy buffers
        msg.data = np.frombuffer(data, dtype=np.uint8).copy()
    else:
        msg.data = array('B', data)
    return msg


def to_rgb8(image: np.ndarray, encoding: str, topic: str = '?') -> np.ndarray:
    """Convert a decoded colour/mono8 image to (H, W, 3) uint8 RGB for the policy."""
    lookup(encoding, topic)
    if encoding in ('rgb8', '8UC3'):
        return image
    if encoding == 'bgr8':
        return image[..., ::-1].copy()
    if encoding == 'rgba8':
        return image[..., :3].copy()
    if encoding == 'bgra8':
        return image[..., 2::-1].copy()
    if encoding in ('mono8', '8UC1'):
        return np.repeat(image[..., None], 3, axis=2)
    raise ImageCodecError(f'{topic}: encoding {encoding!r} is not a colour image (expected '
                          'rgb8, bgr8, rgba8, bgra8 or mono8)')
