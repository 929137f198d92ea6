"""DDP plumbing for ``torchrun``: process group, device, and small collective helpers.

``torchrun --nproc_per_node N`` (or ``--nnodes M --node_rank R --rdzv-endpoint host:port`` for
several nodes) sets RANK / WORLD_SIZE / LOCAL_RANK; a plain ``python`` run is world size 1 and
needs no process group.  Backend: NCCL on CUDA, gloo on CPU.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from typing import Any

import torch
import torch.distributed as dist


@dataclasses.dataclass(frozen=True)
class DistInfo:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """Rank 0 logs and writes checkpoints."""
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def resolve_device(name: str, local_rank: int) -> torch.device:
    """'auto' -> this process's GPU when CUDA is available, else the CPU."""
    if name == 'auto':
        name = 'cuda' if torch.cuda.is_available() else 'cpu'
    if name == 'cuda':
        if not torch.cuda.is_available():
            raise ValueError("device='cuda' but torch.cuda.is_available() is False")
        return torch.device('cuda', local_rank)
    return torch.device(name)


def init_distributed(device: str) -> DistInfo:
    """Join the torchrun process group when there is one; pick this process's device."""
    world_size = int(os.environ.get('WORLD_SIZE', '1'))
    rank = int(os.environ.get('RANK', '0'))
    local_rank = int(os.environ.get('LOCAL_RANK', '0'))
    dev = resolve_device(device, local_rank)
    if world_size > 1 and not dist.is_initialized():
        if dev.type == 'cuda':
            torch.cuda.set_device(dev)
        dist.init_process_group(backend='nccl' if dev.type == 'cuda' else 'gloo',
                                device_id=dev if dev.type == 'cuda' else None)
    return DistInfo(rank, world_size, local_rank, dev)


def shutdown_distributed() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_mean(values: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """The mean of ``values`` over ranks (itself at world size 1)."""
    if not info.enabled:
        return values
    out = values.clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out / info.world_size


def all_gather_objects(obj: Any, info: DistInfo) -> list[Any]:
    """``[obj of rank 0, obj of rank 1, ...]`` on every rank (``[obj]`` at world size 1)."""
    if not info.enabled:
        return [obj]
    out: list[Any] = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def parameter_hash(model: torch.nn.Module) -> str:
    """SHA-256 of every parameter's bytes, in name order: equal iff replicas are bitwise equal."""
    h = hashlib.sha256()
    for name, p in sorted(model.named_parameters()):
        h.update(name.encode())
        h.update(p.detach().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()
