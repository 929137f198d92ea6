"""Dataset size, conversion speed and loading speed of `pi05-moe convert` on given bags.

    python bench/bench_dataset.py BAGS_DIR --out /tmp/ds [--frames 600] [--workers 0]

Prints the dataset's size on disk, the conversion time (bags/s, frames/s) and two loading
figures of ``EpisodeDataset`` with every camera's images: a full pass in a shuffled order (what
one training epoch reads, in this process or through a DataLoader with ``--workers``) and a
sequential pass (evaluation). Run it with another checkout first on PYTHONPATH to measure that
checkout's layout on the same bags (issue #18: the PNG layout before LeRobot v3.0).
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

import numpy as np


def size_mb(root: Path) -> float:
    return sum(p.stat().st_size for p in root.rglob('*') if p.is_file()) / 2 ** 20


def load_pass(ds, order: np.ndarray, workers: int) -> tuple[float, float]:
    """(wall s, CPU s of this process) to read the frames of ``order`` with their images. The
    CPU time is the steadier figure on a shared machine (workers=0 only)."""
    start, cpu = time.perf_counter(), time.process_time()
    if workers == 0:
        for i in order:
            ds[int(i)]
    else:
        import torch

        loader = torch.utils.data.DataLoader(torch.utils.data.Subset(ds, order.tolist()),
                                             batch_size=None, num_workers=workers)
        for _ in loader:
            pass
    return time.perf_counter() - start, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('bags')
    parser.add_argument('--out', required=True)
    parser.add_argument('--frames', type=int, default=0, help='frames per pass (0 = all)')
    parser.add_argument('--workers', type=int, default=0)
    parser.add_argument('--repeat', type=int, default=3, help='passes each; the best is shown')
    args = parser.parse_args()

    import pi05_moe_training
    from pi05_moe_training.bags.reader import find_bags
    from pi05_moe_training.dataset.convert import convert
    from pi05_moe_training.dataset.episodes import EpisodeDataset

    print(f'code: {Path(pi05_moe_training.__file__).parent}')
    bags = find_bags([args.bags])
    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    start, cpu = time.perf_counter(), time.process_time()
    report = convert(bags, out, progress=False)
    took, cpu = time.perf_counter() - start, time.process_time() - cpu
    frames = report.total_frames
    bag_mb = sum(size_mb(b) for b in bags)
    print(f'bags: {len(bags)} ({bag_mb:.1f} MB), {frames} frames')
    print(f'convert: {took:.1f} s = {len(bags) / took:.2f} bags/s, {frames / took:.0f} frames/s '
          f'(CPU {cpu:.1f} s)')
    print(f'dataset: {size_mb(out):.2f} MB ({size_mb(out) / len(bags):.2f} MB/episode)')
    ds = EpisodeDataset(out, horizon=50, cameras=['wrist', 'l515', 'thermal'])
    n = len(ds) if args.frames <= 0 else min(args.frames, len(ds))
    shuffled = np.random.default_rng(0).permutation(len(ds))[:n]
    load_pass(ds, shuffled[:20], 0)  # open files, warm caches
    for name, order in (('shuffled', shuffled), ('sequential', np.arange(n))):
        wall, cpu = min(load_pass(ds, order, args.workers) for _ in range(args.repeat))
        print(f'load {name}: {n} frames x 3 cameras in {wall:.2f} s = {n / wall:.0f} frames/s, '
              f'CPU {1e3 * cpu / n:.2f} ms/frame ({args.workers} workers, best of '
              f'{args.repeat})')


if __name__ == '__main__':
    main()
