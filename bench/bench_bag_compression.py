"""Size and CPU cost of zstd MCAP chunk compression, on the messages of a real bag.

    python bench/bench_bag_compression.py BAG [--repeat 3]

Rewrites every message of BAG (e.g. a `pi05-moe sim-demos` episode) with the project's
BagWriter, uncompressed and with ``compression='zstd'``, then reads each back. Prints the bag
size, the CPU seconds of this process (the writer thread included) and the wall time of writing
and of reading, best of ``--repeat``.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('bag')
    parser.add_argument('--repeat', type=int, default=3)
    args = parser.parse_args()

    from pi05_moe_training.bags.reader import BagReader
    from pi05_moe_training.bags.typestore import make_typestore
    from pi05_moe_training.bags.writer import BagWriter

    with BagReader(args.bag) as bag:
        topics = dict(bag.info.topics)
        messages = list(bag.raw_messages())
        duration = (bag.info.end_ns - bag.info.start_ns) * 1e-9
    payload = sum(len(d) for _, _, d in messages) / 2 ** 20
    print(f'{args.bag}: {len(messages)} messages, {payload:.1f} MiB of CDR, {duration:.1f} s')
    store = make_typestore()
    tmp = Path(tempfile.mkdtemp(prefix='bench_bag_'))
    try:
        for compression in ('none', 'zstd'):
            best = None
            for k in range(args.repeat):
                path = tmp / f'{compression}_{k}'
                wall, cpu = time.perf_counter(), time.process_time()
                writer = BagWriter(path, store, compression=compression)
                for topic, msgtype in topics.items():
                    writer.add_topic(topic, msgtype)
                for topic, stamp, data in messages:
                    writer.write(topic, stamp, data, block=True)
                writer.close()
                wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
                read = time.perf_counter()
                with BagReader(path) as copy:
                    assert sum(1 for _ in copy.raw_messages()) == len(messages)
                read = time.perf_counter() - read
                size = sum(f.stat().st_size for f in path.iterdir()) / 2 ** 20
                if best is None or cpu < best[1]:
                    best = (wall, cpu, read, size)
                shutil.rmtree(path)
            wall, cpu, read, size = best
            print(f'{compression}: {size:.1f} MiB ({size / duration:.1f} MiB/s of recording), '
                  f'write {wall:.2f} s wall / {cpu:.2f} s CPU '
                  f'({100 * cpu / duration:.0f}% of one core in real time), read {read:.2f} s')
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == '__main__':
    main()
