"""Sustained lossless recording rate at 640x480 rgb8, and what the recorder sees of the loss.

For increasing camera rates, a separate process publishes three 640x480 rgb8 streams (921.6 kB a
frame) and a joint-state stream (10/3 x the camera rate) over DDS for ``--seconds`` while the
real ``recorder_node`` records one episode. Per level it prints what was sent, what reached the
bag (every published header stamp is looked up), what the recorder itself reported as lost
upstream (its per-topic stamp-gap report, ``record/stream_loss.py``), what its own queue
dropped, and the throughput. The sustained lossless rate is the highest level at which nothing
was lost anywhere and the recorder caught up within MAX_DRAIN_S of the publisher stopping.

The "reported" column must match "lost" (that is the point of the loss monitor): a mismatch
means loss the recorder could not see (e.g. the last frames of a stream, after its last stamp).

Settings that move the figure (see docs/recording.md): ``--depth`` (publisher history),
``--reliability``, and the DDS transport (``RMW_IMPLEMENTATION``, Fast DDS shared memory,
Cyclone ``CYCLONEDDS_URI``, socket buffer sizes) in the environment this runs in.

Usage: source env.sh && python bench/bench_recorder_loss.py [--rates 5 10 15 30] [--seconds 10]
       [--depth 100] [--reliability reliable|best_effort]
Do not run it on a machine that others share: it saturates cores and the disk.
"""

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'test' / 'ros'))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'test'))

from recorder_harness import record  # noqa: E402

from pi05_moe_training.bags.reader import BagReader  # noqa: E402

CAMERAS = ['/l515/color/image_raw', '/wrist/image_raw', '/thermal/image_raw']
JOINTS = '/joint_states'
WIDTH, HEIGHT = 640, 480
MAX_DRAIN_S = 1.0


def measure(rate: float, seconds: float, depth: int, reliability: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        run = record(Path(tmp), CAMERAS, JOINTS, image_hz=rate, joint_hz=rate * 10 / 3,
                     seconds=seconds, reliability=reliability,
                     publisher_args=('--width', str(WIDTH), '--height', str(HEIGHT),
                                     '--depth', str(depth)))
        with BagReader(run.bag) as bag:
            got = {t: set() for t in run.published}
            for topic, _, msg in bag.messages(list(run.published)):
                got[topic].add(msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec)
            bag_mb = sum(f.stat().st_size for f in run.bag.iterdir()) / 2**20
    lost = {t: len(set(v) - got[t]) for t, v in run.published.items()}
    reported = {t: r['missing'] for t, r in run.summary['streams'].items() if t in lost}
    elapsed = run.publisher['elapsed_s']
    sent = sum(len(v) for v in run.published.values())
    return {'rate': rate, 'sent': sent, 'lost': sum(lost.values()),
            'reported': sum(reported.values()), 'dropped': run.summary['dropped'],
            'images_s': sum(len(run.published[c]) for c in CAMERAS) / elapsed,
            'mb_s': bag_mb / elapsed, 'drain_s': run.publisher['drain_s'],
            'lost_by_topic': {t: n for t, n in lost.items() if n},
            'reported_by_topic': {t: n for t, n in reported.items() if n}}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--rates', type=float, nargs='+', default=[5, 10, 15, 30],
                   help='image rates per camera (Hz)')
    p.add_argument('--seconds', type=float, default=10.0)
    p.add_argument('--depth', type=int, default=100, help='publisher history depth')
    p.add_argument('--reliability', choices=('reliable', 'best_effort'), default='reliable')
    args = p.parse_args()
    print(f'3 x {WIDTH}x{HEIGHT} rgb8 + joints, {args.reliability}, publisher depth '
          f'{args.depth}, {args.seconds:g} s per level')
    print(f'{"cam Hz":>7} {"sent":>6} {"img/s":>6} {"MB/s":>6} {"lost":>5} {"reported":>8} '
          f'{"dropped":>7} {"drain s":>7}')
    best = None
    for rate in args.rates:
        r = measure(rate, args.seconds, args.depth, args.reliability)
        print(f'{r["rate"]:7.0f} {r["sent"]:6d} {r["images_s"]:6.1f} {r["mb_s"]:6.1f} '
              f'{r["lost"]:5d} {r["reported"]:8d} {r["dropped"]:7d} {r["drain_s"]:7.1f}'
              + (f'  lost: {r["lost_by_topic"]} reported: {r["reported_by_topic"]}'
                 if r['lost'] or r['reported'] else ''), flush=True)
        if r['lost'] or r['reported'] or r['dropped'] or r['drain_s'] > MAX_DRAIN_S:
            break
        best = r
    if best is None:
        print('sustained lossless rate: below the lowest level tried')
    else:
        print(f'sustained lossless rate: {best["rate"]:g} Hz per camera = '
              f'{best["images_s"]:.0f} images/s of {WIDTH}x{HEIGHT} rgb8, '
              f'{best["mb_s"]:.1f} MB/s to disk, nothing lost')


if __name__ == '__main__':
    main()
