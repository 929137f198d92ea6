"""Shared pieces of the training tests: a tiny real dataset and fast training flags.

The dataset goes through the real pipeline: two episode bags (bag_factory) converted by
``pi05_moe_training.dataset.convert``, 17 frames each at 50 Hz with 24x32 images; "hot" labels the
thermal camera active, "red" the L515.
"""

from __future__ import annotations

from pathlib import Path

from bag_factory import write_episode_bag

from pi05_moe_training.bags.reader import find_bags
from pi05_moe_training.dataset.convert import convert

FRAMES = 34  # 2 episodes x 17 control periods (checked in build_dataset)

# The tiny preset at 56x56 pixels (16 image tokens a camera) and a 10-step action chunk: the
# same code paths as 224x224, several times faster on a shared 2-core CPU.
FAST_MODEL = ['--preset', 'tiny', '--model-overrides', 'image_size=56', 'action_horizon=10']


def build_dataset(root: Path) -> Path:
    """Write the bags and convert them; returns the dataset directory."""
    bags = root / 'bags'
    write_episode_bag(bags / 'a_hot', prompt='lift the hot cube', seconds=0.5)
    write_episode_bag(bags / 'b_red', prompt='lift the red cube', seconds=0.5, t0=2000.0)
    report = convert(find_bags([bags]), root / 'dataset', progress=False)
    assert not report.skipped and report.total_frames == FRAMES, report
    return root / 'dataset'


def train_args(dataset: Path, out: Path, *extra: str) -> list[str]:
    """``pi05-moe train`` arguments: fast model, no workers, no progress bar."""
    return ['train', '--dataset', str(dataset), '--out', str(out), *FAST_MODEL,
            '--num-workers', '0', '--no-progress', *extra]
