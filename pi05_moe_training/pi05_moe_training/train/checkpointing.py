"""Training checkpoints: a ``Policy.load``-able directory plus the state to resume exactly.

    <out>/checkpoint-<step>/   config.json, model.safetensors, norm_stats.json, tokenizer
                               (``Policy.save``), train_config.json, train_state.pt
    <out>/latest -> checkpoint-<step>   (a relative symlink, replaced atomically)

A LoRA run adds ``lora/`` (``lora.py``); a sharded run keeps its weights and optimiser in
``dcp/`` instead of ``model.safetensors`` and ``train_state.pt``'s optimiser (``sharded.py``).

``train_state.pt`` holds the step, the optimiser, every rank's RNG states (python, numpy,
torch, CUDA), the data position (epoch, batch within the epoch) and each rank's parameter hash.
The learning rate and routing weight are pure functions of the step (``schedules.py``), so
there is no scheduler state beyond the step.  A checkpoint is written to ``*.tmp`` and renamed,
so a crash never leaves a half-written ``checkpoint-<step>``.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pi05_moe_training.train.lora import (
    base_state_dict,
    has_adapters,
    has_lora,
    load_adapters,
    merge_adapters,
    save_adapters,
)
from pi05_moe_training.train.sharded import (
    is_sharded_checkpoint,
    load_consolidated,
    policy_skeleton,
)

LATEST = 'latest'
TRAIN_STATE = 'train_state.pt'
TRAIN_CONFIG = 'train_config.json'
_CKPT_RE = re.compile(r'^checkpoint-(\d+)$')


def checkpoint_dir(out: str | Path, step: int) -> Path:
    return Path(out) / f'checkpoint-{step}'


def rng_state() -> dict[str, Any]:
    """This process's RNG states, as tensors and plain values (``torch.load``-safe)."""
    np_state = np.random.get_state(legacy=False)
    state = {
        'python': random.getstate(),
        'numpy': {'key': torch.from_numpy(np_state['state']['key'].astype(np.int64)),
                  'pos': int(np_state['state']['pos']),
                  'has_gauss': int(np_state['has_gauss']), 'gauss': float(np_state['gauss'])},
        'torch': torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(_as_tuple(state['python']))
    n = state['numpy']
    np.random.set_state({'bit_generator': 'MT19937',
                         'state': {'key': n['key'].numpy().astype(np.uint32), 'pos': n['pos']},
                         'has_gauss': n['has_gauss'], 'gauss': n['gauss']})
    torch.set_rng_state(state['torch'])
    if 'cuda' in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state['cuda'])


def _as_tuple(x: Any) -> Any:
    """random.setstate wants the nested tuples back (a save/load may give lists)."""
    return tuple(_as_tuple(v) for v in x) if isinstance(x, (list, tuple)) else x


def tmp_checkpoint_dir(out: str | Path, step: int, clear: bool = False) -> Path:
    """Where ``checkpoint-<step>`` is written before the rename; ``clear`` empties it."""
    tmp = Path(out) / f'checkpoint-{step}.tmp'
    if clear and tmp.exists():
        shutil.rmtree(tmp)
    return tmp


def save_checkpoint(out: str | Path, step: int, policy: Any, train_config: dict[str, Any],
                    train_state: dict[str, Any], keep_last: int = 0,
                    sharded: bool = False) -> Path:
    """Write ``checkpoint-<step>`` (rank 0 only), point ``latest`` at it, prune old ones.
    ``sharded``: every rank has written its shards into the tmp directory already
    (``sharded.save_sharded``); only the policy files without weights are added."""
    final = checkpoint_dir(out, step)
    tmp = tmp_checkpoint_dir(out, step, clear=not sharded)
    if sharded:
        policy.save(tmp, weights=False)
    elif has_lora(policy.model):
        policy.save(tmp, state_dict=base_state_dict(policy.model))  # unmerged: exact resume
    else:
        policy.save(tmp)
    if has_lora(policy.model):
        save_adapters(policy.model, tmp, weights=not sharded)
    (tmp / TRAIN_CONFIG).write_text(json.dumps(train_config, indent=1))
    torch.save({**train_state, 'step': step}, tmp / TRAIN_STATE)
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    _point_latest(Path(out), final.name)
    if keep_last > 0:
        for old in list_checkpoints(out)[:-keep_last]:
            shutil.rmtree(old)
    return final


def _point_latest(out: Path, name: str) -> None:
    link = out / LATEST
    tmp = out / f'.{LATEST}.tmp'
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    tmp.symlink_to(name)
    os.replace(tmp, link)


def list_checkpoints(out: str | Path) -> list[Path]:
    """``checkpoint-<step>`` directories under ``out``, oldest step first."""
    out = Path(out)
    if not out.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in out.iterdir()
             if p.is_dir() and (m := _CKPT_RE.match(p.name))]
    return [p for _, p in sorted(found)]


def latest_checkpoint(out: str | Path) -> Path | None:
    """What ``latest`` points at (or the highest step when the link is missing)."""
    link = Path(out) / LATEST
    if link.is_dir():
        return link.resolve()
    found = list_checkpoints(out)
    return found[-1] if found else None


def load_train_state(ckpt: str | Path) -> dict[str, Any]:
    """On the CPU: RNG states must be CPU tensors, and ``optimizer.load_state_dict`` moves
    its state to each parameter's device itself."""
    path = Path(ckpt) / TRAIN_STATE
    if not path.is_file():
        raise ValueError(f'{str(ckpt)!r} has no {TRAIN_STATE}: not a training checkpoint')
    return torch.load(path, map_location='cpu', weights_only=True)


def load_training_policy(ckpt: str | Path) -> Any:
    """A checkpoint as the training loop continues it: with its LoRA adapters when it has some;
    a sharded one with fresh weights (``restore`` loads the shards once the model is
    sharded)."""
    from pi05_moe_policy import Policy

    sharded = is_sharded_checkpoint(ckpt)
    policy = policy_skeleton(ckpt) if sharded else Policy.load(ckpt, allow_adapters=True)
    if has_adapters(ckpt):
        load_adapters(policy.model, ckpt, weights=not sharded)
    return policy


def consolidated_policy(ckpt: str | Path) -> Any:
    """Any training checkpoint as a plain policy (``pi05-moe export``): shards gathered, LoRA
    adapters merged."""
    policy = load_training_policy(ckpt)
    if is_sharded_checkpoint(ckpt):
        load_consolidated(policy, ckpt)
    merge_adapters(policy.model)
    return policy


def load_train_config(ckpt: str | Path) -> dict[str, Any]:
    return json.loads((Path(ckpt) / TRAIN_CONFIG).read_text())


def resolve_run_checkpoint(path: str) -> Path:
    """A Policy.load directory, or a training output whose ``latest`` checkpoint is used.

    Raises ValueError (one line, naming the path) when it is neither.
    """
    d = Path(path)
    if (d / 'config.json').is_file():
        return d
    if d.is_dir():
        latest = latest_checkpoint(d)
        if latest is not None:
            return latest
    raise ValueError(f'--checkpoint {path!r}: not a checkpoint directory (no config.json) nor a '
                     'training output with checkpoints')
