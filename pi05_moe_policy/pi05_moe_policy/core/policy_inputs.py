"""What policy_node subscribes to, and what it reports, given its config and a policy. Pure.

The policy is duck-typed (``camera_names``, ``base_camera``, ``expert_cameras``,
``thermal_cameras``, ``joint_names``, ``robot_state_dim``, ``robot_action_dim``,
``action_horizon``, ``control_period_s``): this module never imports torch or rclpy.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import Any

from pi05_moe_policy.core.joint_state import resolve_joint_names
from pi05_moe_policy.core.observation import RGB, THERMAL, decode_cameras
from pi05_moe_policy.core.snapshot import SnapshotBuffer

JOINTS = 'joint_states'  # the snapshot's stream name for the joint state
SKIP_REASONS = ('missing', 'future', 'stale', 'skew', 'decode', 'clock_jump')


@dataclass(frozen=True)
class InputPlan:
    """The node's inputs: joint order, camera topics and kinds, what is left out and why."""

    joint_names: list[str]
    cameras: dict[str, str]  # camera name -> topic, for the cameras the node subscribes to
    kinds: dict[str, str]  # camera name -> RGB | THERMAL
    base_camera: str
    joint_states_topic: str
    ignored: list[str]  # cameras of the parameter that the checkpoint does not have
    without: list[str]  # expert cameras of the checkpoint that have no topic

    @property
    def topics(self) -> dict[str, str]:
        """Stream name -> topic, the joint states included."""
        return {**self.cameras, JOINTS: self.joint_states_topic}

    def buffer(self, cfg: Any) -> SnapshotBuffer:
        """The snapshot buffer: the base camera and the joints required, experts optional."""
        topics = self.topics
        return SnapshotBuffer(cfg, required={n: topics[n] for n in (self.base_camera, JOINTS)},
                              optional={n: t for n, t in self.cameras.items()
                                        if n != self.base_camera})


def plan_inputs(cfg: Any, policy: Any) -> InputPlan:
    """The plan for a ``PolicyNodeConfig`` and a policy; ``ValueError`` naming the parameter
    when they do not fit together (joint count, no topic for the base camera)."""
    p = policy
    joint_names = resolve_joint_names(cfg.joint_names, p.joint_names, p.robot_action_dim)
    if p.robot_state_dim != len(joint_names):
        raise ValueError(f'the checkpoint has state dim {p.robot_state_dim} but action dim '
                         f'{p.robot_action_dim}: one joint_names list cannot order both')
    cameras = {n: t for n, t in cfg.cameras.items() if t and n in p.camera_names}
    if p.base_camera not in cameras:
        raise ValueError(f'parameter cameras={cfg.cameras!r} gives no topic for the base '
                         f'camera {p.base_camera!r} of the checkpoint')
    return InputPlan(
        joint_names=joint_names, cameras=cameras,
        kinds={n: THERMAL if n in p.thermal_cameras else RGB for n in cameras},
        base_camera=p.base_camera, joint_states_topic=cfg.joint_states_topic,
        ignored=sorted(set(cfg.cameras) - set(p.camera_names)),
        without=[n for n in p.expert_cameras if n not in cameras])


def startup_line(checkpoint: str, plan: InputPlan, policy: Any) -> str:
    """The node's first info line."""
    return (f'{checkpoint}: cameras {plan.cameras} (base {plan.base_camera!r}), '
            f'{len(plan.joint_names)} joints, horizon {policy.action_horizon} x '
            f'{policy.control_period_s:g} s; ignored (not in the checkpoint): {plan.ignored}')


def truncation_line(prompt: str, n_ids: int, max_token_len: int) -> str:
    """The warning for a prompt cut to the model's ``max_token_len`` (said once per prompt)."""
    return (f'prompt {prompt[:80]!r} ({len(prompt)} characters) is {n_ids} tokens with the '
            f'state, cut to max_token_len {max_token_len}: the model sees only its start (said '
            'once per prompt)')


def diagnostic_values(chunks: int, prompt: str, inference_ms: Mapping[str, float],
                      stage_ms: Mapping[str, float], rates_hz: Mapping[str, float],
                      warnings: Callable[..., int]) -> dict[str, object]:
    """The key/values of the node's DiagnosticStatus. ``warnings(predicate)`` counts the
    occurrences of warning keys (``RateLimitedLog.total``)."""
    values: dict[str, object] = {'chunks_published': chunks, 'prompt': prompt}
    values.update({f'inference_ms_{k}': v for k, v in inference_ms.items()})
    values.update({f'stage_ms_{k}': v for k, v in stage_ms.items()})
    values.update({f'rate_hz_{n}': r for n, r in rates_hz.items()})

    def counter(reason: str) -> Callable[[Hashable], bool]:
        return lambda key: key[0] == 'skip' and key[-1] == reason

    for reason in SKIP_REASONS:
        values[f'skipped_{reason}'] = warnings(counter(reason))
    values['dropped_joint_states'] = warnings(
        lambda key: key[0] != 'skip' and key[-1] in ('malformed', 'missing', 'nan', 'limits'))
    values['dropped_frames'] = warnings(lambda key: key[-1] == 'image')
    values['warnings'] = warnings()
    return values


def snapshot_images(values: Mapping[str, Any], left_out: Mapping[str, str], plan: InputPlan
                    ) -> tuple[dict[str, Any], dict[str, str], str | None]:
    """Decode a snapshot's camera messages: (images, left_out, base_problem).

    ``left_out``: expert camera -> why it is left out (the snapshot's reasons plus decode
    failures); ``base_problem``: why the base camera failed to decode (the inference must be
    skipped), else None.
    """
    cams = {n: m for n, m in values.items() if n != JOINTS}
    images, problems = decode_cameras(cams, plan.kinds, plan.topics)
    base_problem = problems.pop(plan.base_camera, None)
    return images, {**left_out, **problems}, base_problem
