"""One bag -> one episode on the control-rate grid (state, action, image references). Pure.

Conventions (shared by training and evaluation, keep them in sync):
- **Grid.** Frames are ``1/fps`` apart on the header-stamp clock, from the first time every
  required stream has a sample to the last time every one still has.
- **State.** ``state[t]`` = the ``/joint_states`` positions as of t (newest stamp <= t), in the
  joint order of ``joint_names`` (the metadata's, else the first message's).
- **Action.** ``action[t]`` = the newest commanded joint target issued before ``t + 1/fps``:
  what the robot was told to do during the next control period. A command issued exactly at
  ``t + 1/fps`` belongs to the next frame (a simulator that commands at every step therefore
  pairs the observation at step k with the command of step k). Commands (``Float64MultiArray``
  data, the first point of a ``JointTrajectory``, or ``JointState`` positions) have no header
  stamp and are placed on the header clock by their receive time minus the state stream's
  median receive delay.
- Stamps within ``STAMP_TOLERANCE_S`` of a boundary count as on it (float rounding).
- **Images.** ``image[t]`` = the camera's newest frame as of t (a slower camera repeats frames).
- **Missing data is never padded.** A required topic absent from the bag, or stale (older than
  ``max_age_s``) in more than ``max_stale_fraction`` of the frames, rejects the episode with the
  reason; the converter reports it.
- **Unclosed bags** (no ``metadata.yaml``: killed, full disk, Ctrl-C) are salvaged up to their
  first cut record (:mod:`~pi05_moe_training.bags.mcap_salvage`); ``Episode.salvaged`` says how
  much was kept.
- The action topic may be the state topic (``--action-topic /joint_states``): then
  ``action[t]`` is the measured position one control period later.

Reading is two passes over the bag: the first collects stamps, state, actions and the prompt
(images are not decoded), the second (:func:`iter_images`) decodes only the referenced frames.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pi05_moe_policy import topics
from pi05_moe_policy.core.image_codec import ImageCodecError, image_to_numpy
from pi05_moe_policy.core.stamps import stamp_to_sec
from pi05_moe_policy.params import check, param
from pi05_moe_training.bags.episode_meta import (
    DEFAULT_BASE_CAMERA,
    DEFAULT_CAMERAS,
    DEFAULT_EXPERT_CAMERAS,
    EpisodeMeta,
)
from pi05_moe_training.bags.reader import BagReader
from pi05_moe_training.dataset.align import align_asof, clock_offset, control_grid, sort_stream

STATE_TYPE = 'sensor_msgs/msg/JointState'
STAMP_TOLERANCE_S = 1e-4
COMMAND_TYPES = ('std_msgs/msg/Float64MultiArray', 'trajectory_msgs/msg/JointTrajectory',
                 'sensor_msgs/msg/JointState')


class EpisodeError(Exception):
    """A readable bag that does not make a usable episode; the text is the reason."""


@dataclass
class ExtractConfig:
    """How a bag becomes an episode (``pi05-moe convert`` options)."""

    fps: float = param(50.0, 'control rate of the dataset (Hz); the executor\'s control_hz')
    state_topic: str = param(topics.JOINT_STATES, 'sensor_msgs/JointState topic of the state')
    action_topics: list[str] = param(
        [topics.COMMANDS, topics.JOINT_TRAJECTORY, topics.COMMAND_PREVIEW],
        'command topics, first present wins: Float64MultiArray, JointTrajectory or JointState')
    prompt_topic: str = param(topics.PROMPT, 'std_msgs/String prompt topic, used when the '
                              'bag has no episode metadata')
    cameras: dict[str, str] = param(dict(DEFAULT_CAMERAS), 'camera -> topic for bags without '
                                    'episode metadata (ros2 bag record)')
    base_camera: str = param(DEFAULT_BASE_CAMERA, 'base camera for bags without metadata')
    expert_cameras: list[str] = param(list(DEFAULT_EXPERT_CAMERAS),
                                      'expert cameras for bags without metadata')
    optional_images: dict[str, str] = param(
        {'l515_depth': topics.L515_DEPTH},
        'extra image streams stored when present (e.g. 16-bit depth), never required')
    max_age_s: float = param(0.25, 'a sample older than this at a frame counts as stale (s)')
    max_stale_fraction: float = param(0.05, 'reject an episode whose required streams are '
                                      'stale in more than this fraction of its frames')
    min_frames: int = param(10, 'reject shorter episodes')

    def __post_init__(self):
        check(0 < self.fps <= 1000, self, 'fps', 'in (0, 1000] Hz')
        check(bool(self.action_topics), self, 'action_topics', 'at least one topic')
        check(self.max_age_s > 0, self, 'max_age_s', '> 0')
        check(0 <= self.max_stale_fraction < 1, self, 'max_stale_fraction', 'in [0, 1)')
        check(self.min_frames >= 1, self, 'min_frames', '>= 1')
        self.default_meta()  # validates the camera roles

    def default_meta(self) -> EpisodeMeta:
        return EpisodeMeta(base_camera=self.base_camera,
                           expert_cameras=list(self.expert_cameras), cameras=dict(self.cameras))


@dataclass
class ImageRefs:
    """Which message of an image topic each frame shows."""

    topic: str
    source_index: np.ndarray  # (T,) int, index of the message in bag order; -1 = none
    encoding: str
    shape: tuple[int, ...]  # (H, W) or (H, W, C) as decoded
    required: bool


@dataclass
class Episode:
    """One episode on the control-rate grid."""

    bag: Path
    meta: EpisodeMeta
    meta_source: str  # 'bag' | 'defaults' (ros2 bag record, no metadata)
    prompt: str
    time_s: np.ndarray  # (T,) grid, header clock (s)
    state: np.ndarray  # (T, D) float32
    action: np.ndarray  # (T, A) float32
    state_names: list[str]
    action_names: list[str]
    action_topic: str
    images: dict[str, ImageRefs] = field(default_factory=dict)  # camera -> refs
    stale: dict[str, int] = field(default_factory=dict)  # stream -> stale frames
    salvaged: str | None = None  # an unclosed bag read up to its cut: how much was kept

    @property
    def length(self) -> int:
        return int(self.time_s.shape[0])


@dataclass
class _Stream:
    header_s: list[float] = field(default_factory=list)
    receive_s: list[float] = field(default_factory=list)
    values: list[Any] = field(default_factory=list)


def _command(msg, msgtype: str, topic: str) -> tuple[np.ndarray, list[str]]:
    """(A,) target and joint names (may be empty) of one command message."""
    if msgtype == 'std_msgs/msg/Float64MultiArray':
        return np.asarray(msg.data, dtype=np.float64), []
    if msgtype == 'trajectory_msgs/msg/JointTrajectory':
        if not msg.points:
            raise EpisodeError(f'{topic}: JointTrajectory without points')
        return np.asarray(msg.points[0].positions, dtype=np.float64), list(msg.joint_names)
    return np.asarray(msg.position, dtype=np.float64), list(msg.name)


def _ordered(names: list[str], position: np.ndarray, order: list[str]) -> np.ndarray | None:
    """``position`` reordered to ``order`` by name; None if a joint of ``order`` is missing."""
    if names == order:
        return position
    lookup = dict(zip(names, position))
    if not all(n in lookup for n in order):
        return None
    return np.array([lookup[n] for n in order])


def _stamped(stream: _Stream) -> bool:
    """The stream's header stamps are set (all zero: a driver that leaves them unset; a sim
    clock legitimately starts at exactly 0)."""
    return bool(np.any(np.asarray(stream.header_s) > 0))


def _times(stream: _Stream, offset: float) -> np.ndarray:
    """(N,) header stamps, or receive times minus ``offset`` when the stamps are unset."""
    if _stamped(stream):
        return np.asarray(stream.header_s)
    return np.asarray(stream.receive_s) - offset


def read_episode(path: str | Path, cfg: ExtractConfig | None = None) -> Episode:
    """Read a bag into an :class:`Episode`.

    Raises ``BagError`` (unreadable, truncated, corrupt) or :class:`EpisodeError` (missing or
    stale topics, no prompt, too short), each with the reason.
    """
    cfg = cfg or ExtractConfig()
    path = Path(path)
    with BagReader(path, salvage=True) as bag:
        info = bag.info
        salvaged = bag.salvaged
        meta = bag.episode_meta()
        meta_source = 'bag' if meta is not None else 'defaults'
        meta = meta or cfg.default_meta()
        have = {t for t, n in info.counts.items() if n > 0}
        action_topic = next((t for t in cfg.action_topics if t in have), None)
        cameras = {c: meta.cameras[c] for c in [meta.base_camera, *meta.expert_cameras]}
        required = [cfg.state_topic, *cameras.values()]
        missing = [t for t in required if t not in have]
        if action_topic is None:
            missing.append(' or '.join(cfg.action_topics))
        if missing:
            raise EpisodeError(f'{path}: missing topics (no messages): {missing}')
        optional = {c: t for c, t in cfg.optional_images.items()
                    if t in have and c not in cameras}
        cameras.update(optional)
        if info.topics[cfg.state_topic] != STATE_TYPE:
            raise EpisodeError(f'{path}: {cfg.state_topic} is {info.topics[cfg.state_topic]}, '
                               f'expected {STATE_TYPE}')
        if info.topics[action_topic] not in COMMAND_TYPES:
            raise EpisodeError(f'{path}: {action_topic} is {info.topics[action_topic]}, '
                               f'expected one of {COMMAND_TYPES}')
        streams, prompt, names = _first_pass(bag, cfg, info.topics, action_topic, cameras,
                                             meta.joint_names)
    prompt = meta.prompt or prompt or meta.task
    if not prompt:
        raise EpisodeError(f'{path}: no prompt: neither episode metadata nor {cfg.prompt_topic}')
    episode = _align(path, meta, meta_source, prompt, streams, names, cfg, action_topic,
                     cameras, required=set(required))
    episode.salvaged = salvaged
    return episode


def _first_pass(bag: BagReader, cfg: ExtractConfig, types: dict[str, str], action_topic: str,
                cameras: dict[str, str], joint_names: list[str]):
    state, action = _Stream(), _Stream()
    images = {c: _Stream() for c in cameras}
    by_topic = {t: c for c, t in cameras.items()}
    prompt = ''
    state_names: list[str] = list(joint_names)
    action_names: list[str] = []
    skipped_states = 0
    topics = [cfg.state_topic, action_topic, *cameras.values()]
    if cfg.prompt_topic in types:
        topics.append(cfg.prompt_topic)
    for topic, stamp, msg in bag.messages(topics):
        receive = stamp * 1e-9
        if topic == cfg.state_topic:
            names = list(msg.name)
            state_names = state_names or names
            position = _ordered(names, np.asarray(msg.position, dtype=np.float64), state_names)
            if position is None or position.shape[0] != len(state_names):
                skipped_states += 1
                continue
            state.header_s.append(stamp_to_sec(msg.header.stamp))
            state.receive_s.append(receive)
            state.values.append(position)
        if topic == action_topic:  # also the state topic: joint positions as the action
            target, names = _command(msg, types[topic], topic)
            action_names = action_names or names
            if action.values and target.shape != action.values[0].shape:
                raise EpisodeError(f'{bag.path}: {topic}: command size changed from '
                                   f'{action.values[0].shape[0]} to {target.shape[0]}')
            action.receive_s.append(receive)
            action.values.append(target)
        elif topic == cfg.prompt_topic:
            prompt = str(msg.data)
        elif topic != cfg.state_topic:
            stream = images[by_topic[topic]]
            stream.header_s.append(stamp_to_sec(msg.header.stamp))
            stream.receive_s.append(receive)
            if not stream.values:
                stream.values.append((msg.encoding, int(msg.height), int(msg.width)))
    if not state.values:
        raise EpisodeError(f'{bag.path}: no {cfg.state_topic} message has the joints '
                           f'{state_names} ({skipped_states} skipped)')
    if not action.values:
        raise EpisodeError(f'{bag.path}: no usable command on {action_topic}')
    streams = {'state': state, 'action': action, **{f'image:{c}': s for c, s in images.items()}}
    return streams, prompt, (state_names, action_names)


def _align(path: Path, meta: EpisodeMeta, meta_source: str, prompt: str,
           streams: dict[str, _Stream], names: tuple[list[str], list[str]], cfg: ExtractConfig,
           action_topic: str, cameras: dict[str, str], required: set[str]) -> Episode:
    period = 1.0 / cfg.fps
    state = streams['state']
    offset = clock_offset(state.receive_s, state.header_s) if _stamped(state) else 0.0
    times = {k: _times(s, offset) for k, s in streams.items()}
    times['action'] = np.asarray(streams['action'].receive_s) - offset  # commands: no header
    orders = {k: sort_stream(t) for k, t in times.items()}
    sorted_t = {k: times[k][orders[k]] for k in times}
    is_required = {k: k in ('state', 'action') or cameras[k[6:]] in required for k in streams}
    starts = [sorted_t[k][0] for k in streams if is_required[k] and k != 'action']
    ends = [sorted_t[k][-1] for k in streams if is_required[k] and k != 'action']
    # A frame t needs a command issued before t + period; the last command serves frame t.
    starts.append(sorted_t['action'][0] - period + 2 * STAMP_TOLERANCE_S)
    ends.append(sorted_t['action'][-1] + STAMP_TOLERANCE_S)
    grid = control_grid(max(starts), min(ends), cfg.fps)  # (T,)
    if grid.size < cfg.min_frames:
        raise EpisodeError(f'{path}: only {grid.size} frames where all required streams overlap '
                           f'(min_frames={cfg.min_frames})')
    aligned, stale = {}, {}
    for key in streams:
        query = grid + (period - STAMP_TOLERANCE_S if key == 'action' else STAMP_TOLERANCE_S)
        aligned[key] = align_asof(sorted_t[key], query)
        stale[key] = int(aligned[key].stale(cfg.max_age_s).sum())
        if is_required[key] and stale[key] > cfg.max_stale_fraction * grid.size:
            topic = {'state': cfg.state_topic, 'action': action_topic}.get(key) or cameras[key[6:]]
            raise EpisodeError(
                f'{path}: {topic} is stale (older than {cfg.max_age_s} s) in {stale[key]} of '
                f'{grid.size} frames (> max_stale_fraction={cfg.max_stale_fraction})')

    def pick(key: str) -> np.ndarray:
        values = np.stack(streams[key].values)  # (N, D) in bag order
        return values[orders[key]][aligned[key].index].astype(np.float32)  # (T, D)

    state_names, action_names = names
    action = pick('action')
    if len(action_names) != action.shape[1]:
        action_names = (list(meta.joint_names) if len(meta.joint_names) == action.shape[1]
                        else state_names if len(state_names) == action.shape[1]
                        else [f'action_{i}' for i in range(action.shape[1])])
    images = {}
    for camera, topic in cameras.items():
        key = f'image:{camera}'
        index = aligned[key].index
        source = np.where(index >= 0, orders[key][np.clip(index, 0, None)], -1)  # (T,)
        encoding, height, width = streams[key].values[0]
        images[camera] = ImageRefs(topic, source, encoding, (height, width),
                                   required=topic in required)
    return Episode(
        bag=path, meta=meta, meta_source=meta_source, prompt=prompt, time_s=grid,
        state=pick('state'), action=action, state_names=list(state_names),
        action_names=list(action_names), action_topic=action_topic, images=images,
        stale={k.removeprefix('image:'): v for k, v in stale.items() if v})


def iter_images(episode: Episode) -> Iterator[tuple[str, int, np.ndarray, str]]:
    """Second pass: yield ``(camera, source_index, image, encoding)`` for each referenced frame.

    ``image`` is (H, W, C) uint8 or (H, W) uint8/uint16 as decoded by the shared image codec.
    Raises BagError (unreadable) or EpisodeError (undecodable image).
    """
    wanted = {refs.topic: (camera, set(refs.source_index[refs.source_index >= 0].tolist()))
              for camera, refs in episode.images.items()}
    counters = dict.fromkeys(wanted, -1)
    with BagReader(episode.bag, salvage=True) as bag:
        for topic, _, msg in bag.messages(list(wanted)):
            counters[topic] += 1
            camera, needed = wanted[topic]
            if counters[topic] not in needed:
                continue
            try:
                image = image_to_numpy(msg, topic)
            except ImageCodecError as exc:
                raise EpisodeError(f'{episode.bag}: {exc}') from None
            yield camera, counters[topic], image, msg.encoding

