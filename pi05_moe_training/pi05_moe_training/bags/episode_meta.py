"""Episode metadata: what a bag records about itself, readable without our code. Pure.

Every bag we write carries the metadata twice, so any tool finds it:
- in ``metadata.yaml``'s ``custom_data`` map (rosbag2 >= Iron, string -> string), one
  ``pi05_moe.<field>`` key per field, lists and dicts as JSON text;
- as a ``std_msgs/msg/String`` JSON message on ``/episode/metadata`` (offered reliable +
  transient-local, depth 1, stamped at the episode's start), so ``ros2 bag play``, Foxglove and
  ``ros2 topic echo`` see it too.

Bags recorded with plain ``ros2 bag record`` have neither; the converter then falls back to its
own defaults and to the last ``/pi05_moe/prompt`` message for the prompt.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, Optional

from pi05_moe_policy import topics
from pi05_moe_policy.params import check

METADATA_TOPIC = topics.EPISODE_METADATA
METADATA_MSGTYPE = 'std_msgs/msg/String'
CUSTOM_DATA_PREFIX = 'pi05_moe.'
SCHEMA = 'pi05_moe.episode/1'

# Camera name -> image topic of the default robot (DESIGN.md "Default names").
DEFAULT_CAMERAS = {'l515': topics.L515_COLOR, 'wrist': topics.WRIST_IMAGE,
                   'thermal': topics.THERMAL_IMAGE}
DEFAULT_BASE_CAMERA = 'wrist'
DEFAULT_EXPERT_CAMERAS = ['l515', 'thermal']


@dataclass
class EpisodeMeta:
    """What one recorded episode was: the instruction, the outcome, who and what recorded it."""

    prompt: str = ''  # the language instruction given to the robot / operator
    task: str = ''  # a task id, e.g. 'lift_hot_cube' (free text)
    success: Optional[bool] = None  # None: not judged
    robot: str = ''
    operator: str = ''  # a person, or 'scripted_expert'
    base_camera: str = DEFAULT_BASE_CAMERA  # always-on camera of the camera MoE
    expert_cameras: list[str] = field(default_factory=lambda: list(DEFAULT_EXPERT_CAMERAS))
    cameras: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_CAMERAS))  # name->topic
    joint_names: list[str] = field(default_factory=list)  # [] = as in /joint_states
    notes: str = ''
    schema: str = SCHEMA

    def __post_init__(self):
        check(self.success is None or isinstance(self.success, bool), self, 'success',
              'true, false or null')
        check(all(isinstance(x, str) and x for x in self.expert_cameras)
              and len(set(self.expert_cameras)) == len(self.expert_cameras), self,
              'expert_cameras', 'distinct camera names')
        check(bool(self.base_camera) and self.base_camera not in self.expert_cameras, self,
              'base_camera', f'a camera name that is not an expert ({self.expert_cameras})')
        roles = [self.base_camera, *self.expert_cameras]
        check(all(c in self.cameras for c in roles), self, 'cameras',
              f'a topic for every camera role {roles}')
        check(all(isinstance(v, str) and v.startswith('/') for v in self.cameras.values()),
              self, 'cameras', 'absolute topic names')

    @property
    def camera_roles(self) -> dict[str, Any]:
        return {'base': self.base_camera, 'experts': list(self.expert_cameras)}

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, sort_keys=True)

    def updated(self, **changes: Any) -> EpisodeMeta:
        """A validated copy with ``changes`` applied (unknown field names raise ValueError)."""
        return from_dict({**self.to_dict(), **changes})

    def to_custom_data(self) -> dict[str, str]:
        """``metadata.yaml`` custom_data entries: strings only, lists/dicts/bools as JSON."""
        out = {}
        for key, value in self.to_dict().items():
            out[CUSTOM_DATA_PREFIX + key] = value if isinstance(value, str) else json.dumps(
                value, ensure_ascii=False)
        return out


def from_dict(data: dict[str, Any]) -> EpisodeMeta:
    """Build from a dict; unknown keys raise ``ValueError`` naming them and the known ones."""
    known = {f.name for f in dataclasses.fields(EpisodeMeta)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f'episode metadata: unknown field(s) {unknown}; known: {sorted(known)}')
    return EpisodeMeta(**data)


def from_json(text: str) -> EpisodeMeta:
    """Parse the ``/episode/metadata`` JSON (raises ``ValueError`` with the reason)."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f'episode metadata is not JSON: {exc}') from None
    if not isinstance(data, dict):
        raise ValueError(f'episode metadata must be a JSON object, got {text[:80]!r}')
    return from_dict(data)


def from_custom_data(custom: dict[str, str] | None) -> EpisodeMeta | None:
    """Parse ``custom_data`` written by :meth:`EpisodeMeta.to_custom_data`; None if absent."""
    ours = {k[len(CUSTOM_DATA_PREFIX):]: v for k, v in (custom or {}).items()
            if k.startswith(CUSTOM_DATA_PREFIX)}
    if not ours:
        return None
    str_fields = {f.name for f in dataclasses.fields(EpisodeMeta)
                  if f.type in ('str', str)}
    data = {}
    for key, value in ours.items():
        if key in str_fields:
            data[key] = value
        else:
            try:
                data[key] = json.loads(value)
            except json.JSONDecodeError as exc:
                raise ValueError(
                    f'custom_data {CUSTOM_DATA_PREFIX}{key}={value!r}: {exc}') from None
    return from_dict(data)
