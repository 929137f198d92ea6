"""Training metrics: windowed means (averaged over DDP ranks), TensorBoard scalars, tqdm.

Scalars (``tensorboard --logdir <out>/tb``):
    train/loss, train/action_loss, train/routing_loss, train/routing_loss_weight,
    train/routing_accuracy, train/routing_weight/<expert camera>, train/grad_norm, train/lr,
    perf/steps_per_s, perf/samples_per_s
Each is the mean over the last ``log_every`` steps and over all ranks.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from pi05_moe_training.train.distributed import DistInfo, all_reduce_mean

LOSS_KEYS = ('loss', 'action_loss', 'routing_loss', 'routing_loss_weight', 'routing_accuracy')


def metric_keys(expert_cameras: Sequence[str]) -> tuple[str, ...]:
    return (*LOSS_KEYS, *(f'routing_weight/{e}' for e in expert_cameras), 'grad_norm')


def step_metrics(info: Mapping[str, Any], grad_norm: torch.Tensor,
                 expert_cameras: Sequence[str]) -> dict[str, Any]:
    """One step's scalars from ``compute_loss``'s info (tensors stay on their device)."""
    out = {k: info[k] for k in LOSS_KEYS if k in info}
    if info.get('routing_weights') is not None:
        mean_w = info['routing_weights'].float().mean(0)  # (N,)
        out.update({f'routing_weight/{e}': mean_w[i] for i, e in enumerate(expert_cameras)})
    out['grad_norm'] = grad_norm
    return out


class MetricWindow:
    """Sums and counts per key since the last ``pop``; a key absent in a step (e.g. routing
    accuracy of a batch without labels) does not count towards that key's mean.

    Accumulates on the training device, so logging costs one sync per window, not per step.
    """

    def __init__(self, keys: Sequence[str], device: torch.device):
        self.keys = tuple(keys)
        self._index = {k: i for i, k in enumerate(self.keys)}
        self.sums = torch.zeros(len(self.keys), dtype=torch.float64, device=device)
        self.counts = torch.zeros_like(self.sums)

    def add(self, values: Mapping[str, Any]) -> None:
        for k, v in values.items():
            i = self._index[k]
            self.sums[i] += torch.as_tensor(v, device=self.sums.device).detach().double()
            self.counts[i] += 1

    def pop(self, info: DistInfo) -> dict[str, float]:
        """Means over the window and over ranks (every rank must call this together)."""
        both = all_reduce_mean(torch.stack([self.sums, self.counts]), info).cpu()
        self.sums.zero_()
        self.counts.zero_()
        return {k: float(both[0, i] / both[1, i]) for i, k in enumerate(self.keys)
                if both[1, i] > 0}


class TrainLogger:
    """TensorBoard + tqdm on rank 0; silent (but cheap to call) elsewhere."""

    def __init__(self, out: str | Path, info: DistInfo, max_steps: int, start_step: int,
                 progress: bool):
        self.enabled = info.is_main
        self.writer = None
        if self.enabled:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(Path(out) / 'tb'), purge_step=start_step)
        from pi05_moe_training.progress import progress as tqdm

        self.bar = tqdm(total=max_steps, initial=start_step, unit='step', dynamic_ncols=True,
                        disable=not (self.enabled and progress))
        self._t = time.perf_counter()
        self._step = start_step

    def advance(self) -> None:
        self.bar.update(1)

    def log(self, step: int, scalars: Mapping[str, float], lr: float, batch_size: int) -> None:
        """Write one window's means at ``step`` (steps done so far)."""
        now = time.perf_counter()
        steps_per_s = (step - self._step) / max(now - self._t, 1e-9)
        self._t, self._step = now, step
        if not self.enabled:
            return
        for k, v in scalars.items():
            self.writer.add_scalar(f'train/{k}', v, step)
        self.writer.add_scalar('train/lr', lr, step)
        self.writer.add_scalar('perf/steps_per_s', steps_per_s, step)
        self.writer.add_scalar('perf/samples_per_s', steps_per_s * batch_size, step)
        self.bar.set_postfix(loss=f'{scalars.get("loss", float("nan")):.4f}', lr=f'{lr:.2e}',
                             refresh=False)

    def write(self, text: str) -> None:
        """A line that does not break the progress bar."""
        if self.enabled:
            self.bar.write(text)

    def close(self) -> None:
        self.bar.close()
        if self.writer is not None:
            self.writer.close()
