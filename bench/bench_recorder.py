"""Maximum sustained recording rate of recorder_node (prints a table; not a test).

For increasing rates, a separate process publishes three 224x224 rgb8 image streams and a
joint-state stream (10/3 x the image rate) reliably over DDS for a few seconds while
recorder_node records one episode; the bag is then read back and every published header stamp
looked up. The maximum sustained rate is the highest level with nothing lost or dropped and
the recorder less than MAX_DRAIN_S behind the publisher when it stops ("drain s").

The publisher offers reliable KEEP_LAST 100 (like many drivers, a bounded history): a sample
that the recorder's DDS thread has not acknowledged within 100 newer ones is overwritten at the
publisher. On a starved CPU that is where losses appear first, on the fastest stream (joint
states); the "lost" column names the topics.

Usage: source env.sh && python bench/bench_recorder.py [--rates 30 60 120 240] [--seconds 5]
"""

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'test' / 'ros'))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'test'))

from recorder_harness import record  # noqa: E402

from pi05_moe_policy import topics  # noqa: E402
from pi05_moe_policy.core.stamps import stamp_to_ns  # noqa: E402
from pi05_moe_training.bags.reader import BagReader  # noqa: E402

CAMERAS = [topics.L515_COLOR, topics.WRIST_IMAGE, topics.THERMAL_IMAGE]
JOINTS = topics.JOINT_STATES
MAX_DRAIN_S = 1.0  # "sustained": the recorder is at most this far behind when publishing ends


def measure(rate: float, seconds: float, size: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        run = record(Path(tmp), CAMERAS, JOINTS, image_hz=rate, joint_hz=rate * 10 / 3,
                     seconds=seconds, size=size)
        with BagReader(run.bag) as bag:
            got = {t: set() for t in run.published}
            for topic, _, msg in bag.messages(list(run.published)):
                got[topic].add(stamp_to_ns(msg.header.stamp))
            bag_mb = sum(f.stat().st_size for f in run.bag.iterdir()) / 2**20
    sent = sum(len(v) for v in run.published.values())
    lost_by_topic = {t: len(set(v) - got[t]) for t, v in run.published.items()}
    lost = sum(lost_by_topic.values())
    elapsed = run.publisher['elapsed_s']
    return {'rate': rate, 'sent': sent, 'lost': lost, 'dropped': run.summary['dropped'],
            'msg_s': sent / elapsed, 'mb_s': bag_mb / elapsed,
            'images_s': sum(len(run.published[c]) for c in CAMERAS) / elapsed,
            'late_ms': run.publisher['late_ms'], 'drain_s': run.publisher['drain_s'],
            'lost_by_topic': {t: n for t, n in lost_by_topic.items() if n}}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--rates', type=float, nargs='+', default=[30, 60, 120, 240],
                   help='image rates per camera (Hz)')
    p.add_argument('--seconds', type=float, default=5.0)
    p.add_argument('--size', type=int, default=224)
    args = p.parse_args()
    print(f'{"cam Hz":>7} {"sent":>6} {"msg/s":>7} {"img/s":>6} {"MB/s":>6} {"lost":>5} '
          f'{"dropped":>7} {"drain s":>7} {"pub late ms":>11}')
    best = None
    for rate in args.rates:
        r = measure(rate, args.seconds, args.size)
        print(f'{r["rate"]:7.0f} {r["sent"]:6d} {r["msg_s"]:7.1f} {r["images_s"]:6.1f} '
              f'{r["mb_s"]:6.1f} {r["lost"]:5d} {r["dropped"]:7d} {r["drain_s"]:7.1f} '
              f'{r["late_ms"]:11.1f}' + (f'  lost: {r["lost_by_topic"]}' if r['lost'] else ''),
              flush=True)
        if r['lost'] or r['dropped'] or r['drain_s'] > MAX_DRAIN_S:
            break
        best = r
    if best is None:
        print('maximum sustained rate: below the lowest level tried')
    else:
        print(f'maximum sustained rate: {best["msg_s"]:.0f} msg/s = {best["images_s"]:.0f} '
              f'images/s of {args.size}x{args.size} rgb8, {best["mb_s"]:.1f} MB/s to disk, '
              'nothing lost')


if __name__ == '__main__':
    main()
