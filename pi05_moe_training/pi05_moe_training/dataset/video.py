"""Camera frames <-> LeRobot v3.0 video files, through PyAV. No ROS.

An encoding table (:data:`CARRIAGES`) drives two pure functions, :func:`pack` (a decoded frame ->
the (H, W, 3) uint8 frame the video stores) and :func:`unpack` (back). LeRobot decodes every
non-depth video as rgb24 and divides by 255, so whatever must survive LeRobot has to be exact in
rgb24:

- colour and 8-bit grey: AV1 (libsvtav1, yuv420p, g=2, crf=30), LeRobot's default. Lossy.
- 16-bit grey (thermal centi-Kelvin ``mono16``, depth millimetres ``16UC1``): split into bytes,
  R = value >> 8, G = value & 255, B = 0, coded lossless H.264 RGB (libx264rgb, qp=0; the stream
  is planar gbrp), which LeRobot decodes to rgb24 exactly. From LeRobot's float frames:
  ``value = 256 * round(255 * R) + round(255 * G)``. CAVLC (``coder=0``): a key frame decodes
  about 4x faster than with CABAC for 10% more bytes. Each new camera message starts a key frame
  and its repeats (a 9 Hz camera on a 50 Hz grid) are P-frames that cost almost nothing, so the
  video is about as large as the distinct frames and any frame decodes from its own message's
  key frame (at most ``g`` frames back).

A conversion encodes each episode's frames of a camera into one segment (:class:`SegmentEncoder`),
then appends the segments into the chunked files (:class:`VideoConcatenator`, packet copy, no
re-encoding). :class:`FrameReader` decodes the frame at a timestamp, keeping files open and
decoding forward without a seek when frames are read in order.
"""

from __future__ import annotations

import io
import os
from collections import OrderedDict
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from pi05_moe_policy.core.image_codec import to_rgb8


@dataclass(frozen=True)
class Carriage:
    """How one stored encoding travels in a video."""

    name: str
    codec: str  # PyAV encoder
    pix_fmt: str
    options: tuple[tuple[str, str], ...]
    lossless: bool
    doc: str
    key_on_change: bool = False  # a key frame at each new camera message
    info_codec: str = ''  # the decoder's name LeRobot records as video.codec
    info_pix_fmt: str = ''  # the stream's pixel format, when the encoder converts its input


AV1 = Carriage('rgb24', 'libsvtav1', 'yuv420p',
               (('g', '2'), ('crf', '30'), ('preset', '12')), False,
               'AV1 (libsvtav1, yuv420p, g=2, crf=30, preset=12) as LeRobot writes it; lossy',
               info_codec='av1')
SPLIT16 = Carriage('uint16_split_rg', 'libx264rgb', 'rgb24',
                   (('qp', '0'), ('g', '50'), ('bf', '0'), ('preset', 'veryfast'),
                    ('coder', '0'), ('forced-idr', '1')), True,
                   'lossless 16-bit: value = 256 * R + G (R = high byte, G = low byte, B = 0), '
                   'lossless H.264 RGB (libx264rgb qp=0); from LeRobot float frames in [0, 1]: '
                   'value = 256 * round(255 * R) + round(255 * G)',
                   key_on_change=True, info_codec='h264', info_pix_fmt='gbrp')
COLOUR = ('rgb8', 'bgr8', 'rgba8', 'bgra8', '8UC3')
SIXTEEN_BIT_UNITS = {'mono16': 'centi-Kelvin (deg C = (v - 27315) / 100)', '16UC1': 'mm'}
# stored encoding -> carriage
CARRIAGES = {'rgb8': AV1, 'mono8': AV1, 'mono16': SPLIT16, '16UC1': SPLIT16}


class VideoError(Exception):
    """A frame or video that cannot be stored or read; the text says which and why."""


def stored_encoding(encoding: str) -> str:
    """How a camera's frames are stored: colour -> rgb8, 8-bit mono -> mono8, 16-bit as is."""
    if encoding in COLOUR:
        return 'rgb8'
    if encoding in ('mono8', '8UC1'):
        return 'mono8'
    if encoding in SIXTEEN_BIT_UNITS:
        return encoding
    raise VideoError(f'image encoding {encoding!r} has no video carriage (supported: '
                     f'{COLOUR}, mono8, {tuple(SIXTEEN_BIT_UNITS)})')


def pack(image: np.ndarray, encoding: str) -> np.ndarray:
    """A decoded frame (bag ``encoding``) -> the (H, W, 3) uint8 frame the video stores."""
    stored = stored_encoding(encoding)
    if stored == 'rgb8':
        return np.ascontiguousarray(to_rgb8(image, encoding))
    if stored == 'mono8':
        return np.repeat(image.reshape(*image.shape[:2], 1), 3, axis=2)  # (H, W, 3)
    value = image.reshape(image.shape[:2]).astype(np.uint16)  # (H, W)
    out = np.zeros((*value.shape, 3), np.uint8)  # (H, W, 3)
    out[..., 0] = value >> 8
    out[..., 1] = value & 0xFF
    return out


def unpack(rgb: np.ndarray, stored: str) -> np.ndarray:
    """A decoded (H, W, 3) uint8 video frame -> (H, W, 3) uint8 RGB, (H, W) uint8 grey or
    (H, W) uint16 (``stored`` = the feature's ``info['encoding']``)."""
    if stored == 'rgb8':
        return rgb
    if stored == 'mono8':
        return np.ascontiguousarray(rgb[..., 0])
    return (rgb[..., 0].astype(np.uint16) << 8) | rgb[..., 1]


class SegmentEncoder:
    """One episode of one camera: (H, W, 3) uint8 frames -> mp4 bytes, frame k at k / fps."""

    def __init__(self, fps: float, carriage: Carriage, size: tuple[int, int]):
        import av

        os.environ.setdefault('SVT_LOG', '1')  # SVT-AV1 prints its banner per stream otherwise
        self.carriage, self.size = carriage, size
        height, width = size
        self._buf = io.BytesIO()
        try:
            self._out = av.open(self._buf, 'w', format='mp4')
            self._stream = self._out.add_stream(carriage.codec, rate=_rate(fps),
                                                options=dict(carriage.options))
            self._stream.width, self._stream.height = width, height
            self._stream.pix_fmt = carriage.pix_fmt
        except (av.FFmpegError, ValueError) as exc:
            raise self._error(exc) from None
        self.frames = 0

    def _error(self, exc: Exception) -> VideoError:
        height, width = self.size
        return VideoError(f'cannot encode {width}x{height} frames as {self.carriage.codec}/'
                          f'{self.carriage.pix_fmt}: {exc}')

    def add(self, frame: np.ndarray, new: bool = True) -> None:
        """Encode the next frame; ``new``: it shows a new camera message (not a repeat)."""
        import av

        video_frame = av.VideoFrame.from_ndarray(frame, format='rgb24')
        if new and self.carriage.key_on_change:
            video_frame.pict_type = av.video.frame.PictureType.I
        try:
            for packet in self._stream.encode(video_frame):
                self._out.mux(packet)
        except (av.FFmpegError, ValueError) as exc:
            raise self._error(exc) from None
        self.frames += 1

    def finish(self) -> bytes:
        import av

        try:
            for packet in self._stream.encode():
                self._out.mux(packet)
            self._out.close()
        except (av.FFmpegError, ValueError) as exc:
            raise self._error(exc) from None
        return self._buf.getvalue()


def _rate(fps: float) -> Fraction:
    return Fraction(fps).limit_denominator(1001)


def video_info(carriage: Carriage, size: tuple[int, int], fps: float) -> dict:
    """The ``video.*`` keys LeRobot puts in a video feature's ``info``."""
    height, width = size
    info = {'video.height': height, 'video.width': width,
            'video.codec': carriage.info_codec or carriage.codec,
            'video.pix_fmt': carriage.info_pix_fmt or carriage.pix_fmt,
            'video.is_depth_map': False,
            'video.fps': int(fps) if float(fps).is_integer() else fps, 'video.channels': 3,
            'has_audio': False, 'is_depth_map': False}
    options = dict(carriage.options)
    info.update({f'video.{k}': int(v) if v.isdigit() else v for k, v in options.items()
                 if k in ('g', 'crf', 'preset')})  # LeRobot's encoder fields
    info['encoder'] = {'codec': carriage.codec, **options}
    return info


class VideoConcatenator:
    """Appends episode segments of one camera into ``videos/<key>/chunk-*/file-*.mp4``."""

    def __init__(self, root: Path, key: str, max_mb: float, fps: float):
        self.root, self.key, self.max_bytes, self.fps = root, key, max_mb * 2 ** 20, fps
        self.chunk, self.file = 0, 0
        self._out = None  # open av output container
        self._stream = None
        self._frames = 0  # frames in the open file
        self._bytes = 0

    def append(self, segment: bytes, frames: int) -> dict:
        """Append one episode's segment; return its ``videos/<key>/...`` episode columns."""
        from pi05_moe_training.dataset import layout

        if self._out is not None and self._bytes + len(segment) >= self.max_bytes:
            self.close()
            self.chunk, self.file = layout.next_file(self.chunk, self.file)
        if self._out is None:
            self._open(segment, layout.video_file(self.key, self.chunk, self.file))
        start = self._frames
        self._copy(segment)
        self._frames += frames
        self._bytes += len(segment)
        prefix = f'videos/{self.key}/'
        return {prefix + 'chunk_index': self.chunk, prefix + 'file_index': self.file,
                prefix + 'from_timestamp': start / self.fps,
                prefix + 'to_timestamp': self._frames / self.fps}

    def _open(self, segment: bytes, rel: str) -> None:
        import av

        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        self._out = av.open(str(path), 'w', format='mp4')
        with av.open(io.BytesIO(segment)) as src:
            self._stream = self._out.add_stream_from_template(src.streams.video[0], opaque=True)
        self._frames, self._bytes = 0, 0

    def _copy(self, segment: bytes) -> None:
        import av

        with av.open(io.BytesIO(segment)) as src:
            stream = src.streams.video[0]
            offset = round(self._frames / self.fps / stream.time_base)  # in the segment's base
            for packet in src.demux(stream):
                if packet.dts is None:  # the demuxer's end-of-stream marker
                    continue
                packet.pts += offset
                packet.dts += offset
                packet.stream = self._stream
                self._out.mux(packet)

    def close(self) -> None:
        if self._out is not None:
            self._out.close()
            self._out = None


class FrameReader:
    """Decodes frames by timestamp; keeps up to ``max_open`` files open per process."""

    def __init__(self, max_open: int = 16):
        self.max_open = max_open
        self._pid = os.getpid()
        self._open: OrderedDict[str, _Decoder] = OrderedDict()

    def frame(self, path: Path, timestamp: float, fps: float,
              key_per_message: bool = False) -> np.ndarray:
        """The (H, W, 3) uint8 frame of ``path`` nearest ``timestamp`` (within half a frame).

        ``key_per_message``: the video is lossless and starts a key frame at each new camera
        message (``Carriage.key_on_change``), so a frame is its last key frame: decoded once.
        """
        if os.getpid() != self._pid:  # a forked DataLoader worker: open its own files
            self._open, self._pid = OrderedDict(), os.getpid()
        key = str(path)
        decoder = self._open.pop(key, None) or (_KeyDecoder if key_per_message else _Decoder)(path)
        self._open[key] = decoder
        while len(self._open) > self.max_open:
            self._open.popitem(last=False)[1].close()
        return decoder.frame(timestamp, 0.5 / fps)

    def close(self) -> None:
        for decoder in self._open.values():
            decoder.close()
        self._open.clear()

    def __getstate__(self):  # pickled into DataLoader workers without open files
        return {'max_open': self.max_open, '_pid': -1, '_open': OrderedDict()}


class _Decoder:
    """One open video file; decodes forward from the last frame, seeks otherwise."""

    def __init__(self, path: Path):
        import av

        try:
            self.container = av.open(str(path))
        except (av.FFmpegError, OSError) as exc:
            raise VideoError(f'{path}: cannot open the video: {exc}') from None
        self.path = path
        self.stream = self.container.streams.video[0]
        self.stream.thread_type = 'NONE'  # small frames, many DataLoader workers
        self.stream.codec_context.thread_count = 1
        # One converter for every frame: a frame's own to_ndarray(format=...) builds a new
        # swscale context each time, which costs more than decoding a 224x224 frame.
        self._rgb = av.video.reformatter.VideoReformatter()
        self._frames = None  # decode iterator
        self._last: tuple[float, np.ndarray] | None = None  # (time, rgb) of the last frame

    def frame(self, timestamp: float, tolerance: float) -> np.ndarray:
        last = self._last
        if last is not None and abs(last[0] - timestamp) <= tolerance:
            return last[1]
        if last is None or timestamp < last[0] or timestamp > last[0] + 4 * tolerance + 1e-9:
            self._seek(timestamp)
        for frame in self._frames:
            time = float(frame.pts * self.stream.time_base)
            if time < timestamp - tolerance:
                continue
            self._last = (time, self._to_rgb(frame))
            if abs(time - timestamp) > tolerance:
                break
            return self._last[1]
        raise VideoError(f'{self.path}: no frame at {timestamp:.4f} s (the video is shorter, '
                         'or the dataset was changed after conversion)')

    def _to_rgb(self, frame) -> np.ndarray:
        """(H, W, 3) uint8 RGB, exactly what ``to_ndarray(format='rgb24')`` gives."""
        if frame.format.name == 'gbrp':  # PyAV reorders the planes to RGB, no swscale
            return frame.to_ndarray()
        return self._rgb.reformat(frame, format='rgb24').to_ndarray()

    def _seek(self, timestamp: float) -> None:
        target = int(timestamp / self.stream.time_base)
        self.container.seek(max(target, 0), stream=self.stream, backward=True, any_frame=False)
        self._frames = self.container.decode(self.stream)

    def close(self) -> None:
        self.container.close()


class _KeyDecoder(_Decoder):
    """A video whose every frame repeats its last key frame exactly (lossless, a key frame per
    camera message): one seek and one decode per new message, none for its repeats."""

    def __init__(self, path: Path):
        super().__init__(path)
        packets = [(p.pts, p.is_keyframe) for p in self.container.demux(self.stream)
                   if p.pts is not None]  # headers only: nothing is decoded
        if not packets:
            raise VideoError(f'{path}: the video has no frames')
        self._keys = np.array(sorted(pts for pts, key in packets if key), np.int64)  # (K,)
        self._end = max(pts for pts, _ in packets)
        self._key: int | None = None  # pts of the key frame in self._last

    def frame(self, timestamp: float, tolerance: float) -> np.ndarray:
        base = self.stream.time_base
        target = int(np.floor((timestamp + tolerance) / base))  # latest pts that may show it
        index = int(np.searchsorted(self._keys, target, side='right')) - 1
        if index < 0 or timestamp - tolerance > float(self._end * base):
            raise VideoError(f'{self.path}: no frame at {timestamp:.4f} s (the video is '
                             'shorter, or the dataset was changed after conversion)')
        key = int(self._keys[index])
        if key != self._key:
            self.container.seek(key, stream=self.stream, backward=True, any_frame=False)
            frame = next(f for f in self.container.decode(self.stream) if f.pts >= key)
            self._last, self._key = (float(frame.pts * base), self._to_rgb(frame)), key
        return self._last[1]
