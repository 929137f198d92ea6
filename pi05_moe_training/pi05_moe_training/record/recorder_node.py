"""``recorder_node``: records the configured topics into one rosbag2 MCAP bag per episode.

Thin ROS wrapper around :class:`~pi05_moe_training.record.recording.EpisodeRecorder`:

- Topics are found on the graph (every ``discovery_period_s``) and subscribed *raw* (serialised
  CDR, nothing deserialised in Python) with the QoS that matches their publishers, as
  ``ros2 bag record`` does. Callbacks only stamp (node clock: sim time under ``use_sim_time``)
  and queue; a writer thread does the disk I/O.
- Services: ``~/start`` and ``~/stop`` (std_srvs/Trigger; the reply's message is the bag path /
  a JSON summary), ``~/discard`` (Trigger: stop and delete the current bag), ``~/set_success``
  (std_srvs/SetBool: the verdict of the current episode).
- ``~/set_metadata`` (std_msgs/String, JSON object of episode metadata fields, e.g.
  ``{"prompt": "lift the hot cube", "operator": "ana"}``) changes the metadata of the current and
  later episodes.
- ``~/status`` (std_msgs/String JSON, transient-local, every ``status_period_s``): recording or
  not, the bag, messages per topic, drops, and messages lost upstream (``record/stream_loss.py``,
  also warned, rate-limited, and reported per topic in the ``~/stop`` summary and the bag).
- An output directory that cannot be created fails ``~/start`` with the reason; the node stays up.

Ctrl-C / SIGTERM close the running bag cleanly.
"""

from __future__ import annotations

import functools
import json
from typing import Any

from rclpy.node import Node
from std_msgs.msg import String
from std_srvs.srv import SetBool, Trigger

from pi05_moe_policy.nodes import qos
from pi05_moe_policy.nodes.main import run_node
from pi05_moe_policy.nodes.ros_params import declare_config
from pi05_moe_training.bags.typestore import make_typestore
from pi05_moe_training.bags.writer import BagWriterError
from pi05_moe_training.record import ros_io
from pi05_moe_training.record.recording import EpisodeRecorder, RecorderConfig
from pi05_moe_training.record.stream_loss import parse_expected_hz


class RecorderNode(Node):
    """Records episodes; see the module docstring for its interface."""

    def __init__(self, **node_kwargs: Any):
        super().__init__('recorder', **node_kwargs)
        self.cfg: RecorderConfig = declare_config(self, RecorderConfig)
        self.recorder = EpisodeRecorder(
            self.cfg.out_dir, self.cfg.episode_meta(), make_typestore(),
            storage=self.cfg.storage, compression=self.cfg.compression, prefix=self.cfg.prefix,
            max_queue_bytes=self.cfg.max_queue_mb << 20,
            expected_hz=parse_expected_hz(self.cfg.expected_hz),
            loss_warn_period_s=self.cfg.loss_warn_period_s)
        self._subscriptions_by_topic: dict[str, Any] = {}
        self._unusable: set[str] = set()  # topics whose type we cannot record (warned once)
        self._status_pub = self.create_publisher(String, '~/status', ros_io.STATUS_QOS)
        self.create_service(Trigger, '~/start', self._on_start)
        self.create_service(Trigger, '~/stop', self._on_stop)
        self.create_service(Trigger, '~/discard', self._on_discard)
        self.create_service(SetBool, '~/set_success', self._on_set_success)
        self.create_subscription(String, '~/set_metadata', self._on_set_metadata, qos.PROMPT)
        self.create_timer(self.cfg.discovery_period_s, self.discover)
        self.create_timer(self.cfg.status_period_s, self.publish_status)
        self.discover()
        if self.cfg.auto_start:
            self.start_episode()
        self.publish_status()
        self.get_logger().info(
            f'recording {len(self.cfg.topics)} topics into {self.cfg.out_dir} '
            f'({self.cfg.storage}); call ~/start and ~/stop')

    # ------------------------------------------------------------------ discovery
    def discover(self) -> None:
        """Subscribe to every configured topic that now has a publisher."""
        wanted = [t for t in self.cfg.topics
                  if t not in self._subscriptions_by_topic and t not in self._unusable]
        if not wanted:
            return
        types = dict(self.get_topic_names_and_types())
        for topic in wanted:
            if topic in types:
                self._subscribe(topic, types[topic][0])

    def _subscribe(self, topic: str, msgtype: str) -> None:
        publishers = self.get_publishers_info_by_topic(topic)
        if not publishers:
            return  # only subscribers so far: the offered QoS is unknown
        reliability, durability, offered = ros_io.offered_qos(publishers)
        try:
            cls = ros_io.message_class(msgtype)
            self.recorder.add_topic(topic, msgtype, offered,
                                    latched=durability == 'transient_local')
        except (ValueError, BagWriterError) as exc:
            self._unusable.add(topic)
            self.get_logger().error(f'{topic}: not recorded: {exc}')
            return
        profile = ros_io.subscription_profile(reliability, durability, self.cfg.queue_depth)
        self._subscriptions_by_topic[topic] = self.create_subscription(
            cls, topic, functools.partial(self._on_message, topic), profile, raw=True)
        self.get_logger().info(f'recording {topic} [{msgtype}] {reliability}/{durability}')

    def _on_message(self, topic: str, data: bytes) -> None:
        stamp = self.get_clock().now().nanoseconds
        if not self.recorder.write(topic, stamp, data) and self.recorder.recording:
            self.get_logger().warning(
                f'{topic}: message dropped, the disk is behind (queue > {self.cfg.max_queue_mb} '
                'MiB)', throttle_duration_sec=5.0)

    # ------------------------------------------------------------------ episodes
    def start_episode(self) -> str:
        path = self.recorder.start(self.get_clock().now().nanoseconds)
        if missing := [t for t in self.cfg.topics if t not in self._subscriptions_by_topic]:
            self.get_logger().warning(f'episode started before these topics were found (they '
                                      f'join when they appear): {missing}')
        self.get_logger().info(f'episode started: {path}')
        self.publish_status()
        return str(path)

    def stop_episode(self, *, success: bool | None = None, discard: bool = False) -> dict:
        summary = self.recorder.stop(success=success, discard=discard)
        self.publish_status()
        if summary is None:
            return {'bag': '', 'discarded': discard}
        info = summary.to_json()
        self.get_logger().info(f'episode saved: {json.dumps(info)}')
        lost = {t: r['missing'] for t, r in summary.streams.items() if r['missing']}
        if summary.dropped or lost:
            self.get_logger().error(f'{summary.path}: {summary.dropped} messages dropped by the '
                                    f'recorder, lost before it (missing per topic): {lost}')
        return info

    def publish_status(self) -> None:
        status = self.recorder.status()
        if alert := self.recorder.loss_alert():
            self.get_logger().warning(alert)
        if status['error']:
            self.get_logger().error(f'writing {status["bag"]} failed, messages are being lost: '
                                    f'{status["error"]}', throttle_duration_sec=5.0)
        if self.context.ok():  # not after shutdown, when close() stops the last episode
            self._status_pub.publish(String(data=json.dumps(status)))

    def destroy_node(self) -> None:
        try:  # a Ctrl-C mid-episode still leaves a complete bag
            self.stop_episode() if self.recorder.recording else None
        except BagWriterError as exc:
            self.get_logger().error(str(exc))
        super().destroy_node()

    # ------------------------------------------------------------------ interface callbacks
    def _on_start(self, _request, response):
        try:
            response.message = self.start_episode()
            response.success = True
        except BagWriterError as exc:
            response.success, response.message = False, str(exc)
            self.get_logger().error(f'~/start: {exc}')
        return response

    def _on_stop(self, _request, response):
        try:
            info = self.stop_episode()
        except BagWriterError as exc:
            response.success, response.message = False, str(exc)
            return response
        response.success = bool(info['bag'])
        response.message = json.dumps(info) if info['bag'] else 'no episode was being recorded'
        return response

    def _on_discard(self, _request, response):
        was_recording = self.recorder.recording
        self.stop_episode(discard=True)
        response.success = was_recording
        response.message = 'discarded' if was_recording else 'no episode was being recorded'
        return response

    def _on_set_success(self, request, response):
        self.recorder.update_meta(success=bool(request.data))
        response.success, response.message = True, f'success={bool(request.data)}'
        return response

    def _on_set_metadata(self, msg: String) -> None:
        try:
            changes = json.loads(msg.data)
            if not isinstance(changes, dict):
                raise ValueError('expected a JSON object')
            meta = self.recorder.update_meta(**changes)
        except (ValueError, TypeError) as exc:
            self.get_logger().error(f'~/set_metadata: rejected {msg.data[:200]!r}: {exc}')
            return
        self.get_logger().info(f'episode metadata: {meta.to_json()}')
        self.publish_status()


def main(args: list[str] | None = None) -> int:
    return run_node(RecorderNode, 'recorder_node', args)


if __name__ == '__main__':
    main()
