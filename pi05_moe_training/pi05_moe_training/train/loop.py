"""Train the PI0.5 camera-MoE policy: flow-matching loss + focal routing loss; or the RT-1
baseline (``--preset rt1`` / ``rt1_base``): cross-entropy over 256 action bins (+ the routing
loss when routed), through the same loop, checkpoints, resume and logging.

    pi05-moe train --dataset data/sim --preset small --out checkpoints/sim_small
    pi05-moe train --dataset data/sim --preset rt1 --out checkpoints/sim_rt1
    pi05-moe train --dataset data/sim --out checkpoints/sim_small --resume
    torchrun --nproc_per_node 4 -m pi05_moe_training.train.loop --dataset ... --out ...
    tensorboard --logdir checkpoints/sim_small/tb

Loss: ``action_loss + w(step) * routing_loss``; w is 0 for --routing-warmup-steps, then ramps
linearly to --routing-loss-weight (seed 001's tips).  AdamW with decoupled weight decay on
matrices, linear warm-up + cosine learning rate, global gradient-norm clipping.

Hardware: bf16 autocast (--bf16 on CUDA, --cpu-bf16 on the CPU) and --gradient-checkpointing
on any device.  Several processes (``torchrun``, one or more nodes) train with DDP, or with
FSDP2 under --fsdp (``sharded.py``): the batch size is per process, each rank reads its own
shard of every epoch (DistributedSampler), and only rank 0 logs.  --lora trains peft adapters
(``lora.py``); --init starts from an import or another run's checkpoint.

Output (--out): ``checkpoint-<step>/`` every --save-every steps and at the end, each loadable
by ``Policy.load`` (weights, config, norm stats, tokenizer) and holding the exact training state;
``latest`` points at the newest; ``tb/`` has the TensorBoard scalars.  --resume continues from
``latest`` exactly where it stopped: weights, optimiser, step, RNG states and data position
(the model config and norm stats come from the checkpoint; pass the same training flags, a
changed one is reported).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import logging
import math
import random
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pi05_moe_training.config_cli import add_config_arguments, config_from_args
from pi05_moe_training.train.checkpointing import (
    consolidated_policy,
    latest_checkpoint,
    list_checkpoints,
    load_train_config,
    load_train_state,
    load_training_policy,
    rng_state,
    save_checkpoint,
    set_rng_state,
    tmp_checkpoint_dir,
)
from pi05_moe_training.train.config import TrainConfig
from pi05_moe_training.train.distributed import (
    DistInfo,
    all_gather_objects,
    barrier,
    init_distributed,
    parameter_hash,
    shutdown_distributed,
)
from pi05_moe_training.train.logger import MetricWindow, TrainLogger, metric_keys, step_metrics
from pi05_moe_training.train.lora import add_lora, has_adapters, has_lora, mark_trainable
from pi05_moe_training.train.schedules import get_lr, routing_loss_weight
from pi05_moe_training.train.sharded import (
    full_tensor,
    is_sharded_checkpoint,
    load_sharded,
    save_sharded,
    shard_model,
)
from pi05_moe_training.train.stop_request import StopRequest
from pi05_moe_training.train.torch_dataset import ResumableSampler, TrainDataset, make_loader

log = logging.getLogger('pi05_moe.train')


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser, TrainConfig, required=('dataset', 'out'))


def main(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format='%(message)s')
    try:
        cfg = config_from_args(TrainConfig, args)
        cfg.check_paths()
        train(cfg)
    except ValueError as e:  # bad flags, dataset or checkpoint: the message says which
        print(f'pi05-moe train: error: {e}', file=sys.stderr)
        return 2
    return 0


NO_DECAY_SUFFIXES = ('expert_scales',)  # the camera MoE's gamma (model/camera_router.py)


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig, device: torch.device
                   ) -> torch.optim.AdamW:
    """AdamW; matrices decay, vectors (biases, norms) and the camera MoE's learnable scales
    gamma do not: gamma is (experts, channels), a matrix by shape, but a gain that starts at 1
    and that decay would pull towards 0."""
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    decay = [p for n, p in params if p.dim() >= 2 and not n.endswith(NO_DECAY_SUFFIXES)]
    ids = {id(p) for p in decay}
    groups = [{'params': decay, 'weight_decay': cfg.weight_decay},
              {'params': [p for _, p in params if id(p) not in ids], 'weight_decay': 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2),
                             fused=device.type == 'cuda')


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def build_policy(cfg: TrainConfig, data: TrainDataset, resume_from: Path | None) -> Any:
    """A fresh policy (preset + dataset's robot description + overrides, the dataset's norm
    stats), one started from ``--init``'s weights, or the one in the checkpoint being resumed."""
    from pi05_moe_policy import Policy

    if resume_from is not None:
        policy = load_training_policy(resume_from)  # with its adapters; sharded: no weights yet
    elif cfg.init:
        policy = init_from_checkpoint(cfg, data)
    else:
        model_cfg = cfg.model_config(data.robot_description())
        policy = Policy.from_config(model_cfg, seed=cfg.seed,
                                    norm_stats=data.norm_stats(model_cfg))
    if has_lora(policy.model) and not cfg.lora:
        raise ValueError(f'{resume_from} holds LoRA adapters: resume it with --lora')
    if cfg.lora and not has_lora(policy.model):
        torch.manual_seed(cfg.seed)
        n = add_lora(policy.model, cfg)
        print(f'train: --lora: rank {cfg.lora_rank} adapters on {n} layers of '
              f'{cfg.lora_parts}')
    if cfg.lora:
        mark_trainable(policy.model, cfg.lora_part_names)
    freeze_parts(policy.model, cfg.frozen_parts)
    return policy


# --freeze part -> the modules it names (model/pi05.py)
PARTS = {'vision': ('vision',), 'vlm': ('gemma.language_model',),
         'expert': ('gemma.action_expert',)}


def freeze_parts(model: torch.nn.Module, parts: tuple[str, ...]) -> None:
    """requires_grad off for every parameter under the named parts (the optimiser skips them)."""
    prefixes = tuple(f'{p}.' for part in parts for p in PARTS[part])
    for name, param in model.named_parameters():
        if name.startswith(prefixes):
            param.requires_grad_(False)


def init_from_checkpoint(cfg: TrainConfig, data: TrainDataset) -> Any:
    """The ``--init`` checkpoint's network and tokenizer, the dataset's robot and norm stats;
    every tensor whose name and shape fit is copied, the rest (a new camera MoE, other robot
    dims) start fresh and are listed."""
    from pi05_moe_policy import Policy
    from pi05_moe_policy.checkpoints import load_policy
    from pi05_moe_policy.model.factory import build_model, config_fields
    from pi05_moe_policy.policy_config import PolicyConfig, split_overrides
    from pi05_moe_policy.transforms.normalize import NormStats

    init = Path(cfg.init)
    # a --lora or --fsdp training checkpoint: adapters merged, shards gathered
    src = (consolidated_policy(init) if has_adapters(init) or is_sharded_checkpoint(init)
           else load_policy(cfg.init))
    fresh = cfg.model_config(data.robot_description())  # the dataset's data side
    model_over, data_over = split_overrides(cfg.model_kwargs(),
                                            config_fields(type(src.model_config)))
    keep = {f: getattr(src.data_config, f) for f in
            ('tokenizer_type', 'tokenizer_path', 'max_token_len', 'preprocessing',
             'normalization', 'state_in_prompt') if f not in data_over}
    data_cfg = fresh.data.replace(**keep)
    rtc = ({'rtc_mode': 'training', 'rtc_max_delay': cfg.rtc_max_delay}
           if cfg.rtc_max_delay else {})  # the checkpoint must say how it was trained
    model_cfg = src.model_config.replace(num_experts=data_cfg.num_experts,
                                         **{**model_over, **rtc})
    pcfg = PolicyConfig(model_cfg, data_cfg)
    torch.manual_seed(cfg.seed)
    stats = NormStats.from_dict(data.norm_stats(pcfg))
    policy = Policy(build_model(model_cfg), data_cfg, stats, src.tokenizer, seed=cfg.seed)
    ours, theirs = policy.model.state_dict(), src.model.state_dict()
    fits = {k: v for k, v in theirs.items() if k in ours and ours[k].shape == v.shape}
    policy.model.load_state_dict(fits, strict=False)
    new = sorted(set(ours) - set(fits))
    shown = ', '.join(new[:6]) + (', ...' if len(new) > 6 else '')
    print(f'train: --init {cfg.init}: {len(fits)} tensors copied, {len(new)} new'
          + (f' ({shown})' if new else ''))
    changed = src.norm_stats.changes(stats, data_cfg.joint_names)
    if changed:  # the network's inputs and outputs are rescaled until it relearns them
        print(f'train: --init: the norm stats come from the dataset and differ from '
              f'{cfg.init}\'s in {len(changed)} places: ' + '; '.join(changed[:6])
              + ('; ...' if len(changed) > 6 else ''))
    return policy


def warn_config_changes(saved: dict[str, Any], cfg: TrainConfig) -> None:
    changed = {k: (saved.get(k), v) for k, v in cfg.to_dict().items()
               if k != 'resume' and saved.get(k) != v}
    for k, (old, new) in sorted(changed.items()):
        log.warning('resume: %s changed from %r to %r', k, old, new)


def train(cfg: TrainConfig) -> Path:
    """Run training; returns the last checkpoint directory (on every rank)."""
    dist_info = init_distributed(cfg.device)
    try:
        with StopRequest() as stop:
            return _train(cfg, dist_info, stop)
    finally:
        shutdown_distributed()


@dataclasses.dataclass
class Position:
    """Where a run is: optimiser steps done, and the data position within the epochs."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0


def resume_source(cfg: TrainConfig) -> Path | None:
    """The checkpoint to resume from (None: a fresh run); refuses to mix runs in one --out."""
    out = Path(cfg.out)
    resume_from = latest_checkpoint(out) if cfg.resume else None
    if cfg.resume and resume_from is None:
        raise ValueError(f'--resume: no checkpoint in {str(out)!r}')
    if not cfg.resume and list_checkpoints(out):
        raise ValueError(f'{str(out)!r} already holds checkpoints; pass --resume to continue '
                         'that run or choose a new --out')
    return resume_from


def restore(resume_from: Path, cfg: TrainConfig, model: torch.nn.Module,
            optimizer: torch.optim.Optimizer, dist_info: DistInfo, batches_per_epoch: int
            ) -> Position:
    """Load the optimiser (and, when sharded, the weights) and the position of
    ``resume_from``; RNGs continue exactly when the world size and dataset are unchanged, else
    the data order restarts at the next epoch."""
    warn_config_changes(load_train_config(resume_from), cfg)
    state = load_train_state(resume_from)
    if is_sharded_checkpoint(resume_from):
        if not cfg.fsdp:
            raise ValueError(f'{resume_from} is a sharded (--fsdp) checkpoint: resume it with '
                             '--fsdp, or `pi05-moe export` it and start from that with --init')
        load_sharded(resume_from, model, optimizer)
    else:
        optimizer.load_state_dict(state['optimizer'])
    pos = Position(state['step'], state['epoch'], state['batch_in_epoch'])
    if (state['world_size'], state['batches_per_epoch']) == (dist_info.world_size,
                                                             batches_per_epoch):
        set_rng_state(state['rng'][dist_info.rank])
    else:
        log.warning('resume: world size or dataset changed; the data order restarts at '
                    'the next epoch and RNGs are reseeded (not an exact continuation)')
        pos.epoch, pos.batch_in_epoch = pos.epoch + 1, 0
        seed_everything(cfg.seed + dist_info.rank + 1_000_003 * pos.step)
    log.info('resumed from %s at step %d', resume_from, pos.step)
    return pos


def setup_hardware(model: torch.nn.Module, cfg: TrainConfig, dist_info: DistInfo
                   ) -> tuple[torch.nn.Module, Any, bool]:
    """Gradient checkpointing, TF32 and bf16 autocast, DDP across processes (FSDP shards
    before the optimiser is made: ``sharded.shard_model``).
    Returns (the model to call, the autocast context, whether bf16 is on)."""
    device = dist_info.device
    if cfg.gradient_checkpointing:
        model.set_gradient_checkpointing(True)
    if device.type == 'cuda':
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    use_bf16 = cfg.bf16 if device.type == 'cuda' else cfg.cpu_bf16
    autocast = (torch.autocast(device.type, dtype=torch.bfloat16) if use_bf16
                else contextlib.nullcontext())
    ddp_model = model
    if dist_info.enabled and not cfg.fsdp:
        from torch.nn.parallel import DistributedDataParallel

        # The VLM's last-layer MLP and final norm never feed the action loss.
        ddp_model = DistributedDataParallel(
            model, device_ids=[device.index] if device.type == 'cuda' else None,
            find_unused_parameters=True)
    return ddp_model, autocast, use_bf16


def train_step(ddp_model: torch.nn.Module, model: torch.nn.Module,
               optimizer: torch.optim.Optimizer, batch: dict[str, torch.Tensor], step: int,
               cfg: TrainConfig, device: torch.device, autocast: Any
               ) -> tuple[dict[str, Any], torch.Tensor, float]:
    """One optimiser step at ``step``'s learning rate and routing weight.
    Returns (the loss info, the gradient norm before clipping, the learning rate)."""
    lr = get_lr(step, cfg)
    for group in optimizer.param_groups:
        group['lr'] = lr
    batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
    with autocast:
        loss, info = ddp_model(batch, **cfg.loss_kwargs(routing_loss_weight(step, cfg)))
    loss.backward()
    grad_norm = torch.nn.utils.clip_grad_norm_(
        [p for p in model.parameters() if p.grad is not None],
        cfg.grad_clip if cfg.grad_clip > 0 else math.inf)
    grad_norm = full_tensor(grad_norm)  # a DTensor under FSDP
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return info, grad_norm, lr


def _train(cfg: TrainConfig, dist_info: DistInfo, stop: StopRequest) -> Path:
    device, out = dist_info.device, Path(cfg.out)
    resume_from = resume_source(cfg)
    data = TrainDataset(cfg.dataset, cfg.oversample_start_s, cfg.oversample_factor)
    policy = build_policy(cfg, data, resume_from)
    data.bind(policy)  # checks the dataset against the model; samples go through its transform
    model = policy.model.to(device).train()
    if cfg.fsdp:
        if not dist_info.enabled:
            raise ValueError('--fsdp shards over the processes of torchrun (world size 1 here)')
        shard_model(model)  # parameters become DTensor shards; the optimiser holds those
    optimizer = make_optimizer(model, cfg, device)

    # Where we are: a fresh start, or exactly where the checkpoint stopped.
    pos = Position()
    seed_everything(cfg.seed + dist_info.rank)  # ranks draw different flow noise
    sampler = ResumableSampler(data, dist_info.world_size, dist_info.rank, cfg.seed)
    batches_per_epoch = sampler.num_samples // cfg.batch_size
    if batches_per_epoch == 0:
        raise ValueError(f'the dataset has {len(data)} samples: too few for batch_size='
                         f'{cfg.batch_size} x {dist_info.world_size} process(es)')
    if resume_from is not None:
        pos = restore(resume_from, cfg, model, optimizer, dist_info, batches_per_epoch)
    ddp_model, autocast, use_bf16 = setup_hardware(model, cfg, dist_info)

    experts = policy.expert_cameras if policy.model_config.use_camera_moe else ()
    window = MetricWindow(metric_keys(experts), device)
    logger = TrainLogger(out, dist_info, cfg.max_steps, pos.step, cfg.progress)
    global_batch = cfg.batch_size * dist_info.world_size
    total = sum(p.numel() for p in model.parameters())
    trained = sum(p.numel() for p in model.parameters() if p.requires_grad)
    logger.write(f'training {trained / 1e6:.1f}M of {total / 1e6:.1f}M params on '
                 f'{dist_info.world_size} x {device} ({"bf16" if use_bf16 else "fp32"}'
                 f'{", FSDP" if cfg.fsdp else ""}), '
                 f'{len(data)} samples, global batch {global_batch}, '
                 f'{batches_per_epoch} steps/epoch')
    last = resume_from
    while pos.step < cfg.max_steps:
        sampler.set_position(pos.epoch, pos.batch_in_epoch * cfg.batch_size)
        loader = make_loader(data, sampler, cfg.batch_size, cfg.num_workers,
                             seed=cfg.seed + 7919 * pos.epoch + dist_info.rank,
                             pin_memory=device.type == 'cuda')
        for batch in loader:
            info, grad_norm, lr = train_step(ddp_model, model, optimizer, batch, pos.step, cfg,
                                             device, autocast)
            pos.step += 1
            pos.batch_in_epoch += 1
            window.add(step_metrics(info, grad_norm, experts))
            logger.advance()
            if pos.step % cfg.log_every == 0 or pos.step == cfg.max_steps:
                scalars = window.pop(dist_info)
                if not math.isfinite(scalars['loss']):
                    raise FloatingPointError(f'loss is {scalars["loss"]} at step {pos.step}; '
                                             f'the last good checkpoint is {last}')
                logger.log(pos.step, scalars, lr, global_batch)
            saved = pos.step % cfg.save_every == 0 or pos.step == cfg.max_steps
            if saved:
                last = _save(out, pos, policy, cfg, optimizer, dist_info, batches_per_epoch)
            # Under DDP the ranks agree at each log step (a collective, not one every step).
            if (not dist_info.enabled or pos.step % cfg.log_every == 0) and any(
                    all_gather_objects(stop.requested, dist_info)):
                if not saved:
                    last = _save(out, pos, policy, cfg, optimizer, dist_info, batches_per_epoch)
                logger.write(f'stopped by {stop.signal_name or "a signal"} at step {pos.step}: '
                             f'checkpoint {last}; --resume continues from it')
                logger.close()
                raise KeyboardInterrupt
            if pos.step >= cfg.max_steps:
                break
        else:  # the epoch ran out
            pos.epoch, pos.batch_in_epoch = pos.epoch + 1, 0
    logger.write(f'done: step {pos.step}, checkpoint {last}')
    logger.close()
    return last


def _save(out: Path, pos: Position, policy: Any, cfg: TrainConfig,
          optimizer: torch.optim.Optimizer, dist_info: DistInfo, batches_per_epoch: int) -> Path:
    """Every rank contributes its RNG state (and, under DDP, its parameter hash, to prove the
    replicas are still identical); rank 0 writes."""
    step, epoch, batch_in_epoch = pos.step, pos.epoch, pos.batch_in_epoch
    rngs = all_gather_objects(rng_state(), dist_info)
    hashes = all_gather_objects(parameter_hash(policy.model), dist_info) \
        if dist_info.enabled and not cfg.fsdp else []
    path = out / f'checkpoint-{step}'
    if cfg.fsdp:  # every rank writes its shards, then rank 0 adds the rest
        if dist_info.is_main:
            tmp_checkpoint_dir(out, step, clear=True)
        barrier(dist_info)
        save_sharded(policy.model, optimizer, tmp_checkpoint_dir(out, step))
        barrier(dist_info)
        if dist_info.is_main:
            state = {'rng': rngs, 'epoch': epoch, 'batch_in_epoch': batch_in_epoch,
                     'batches_per_epoch': batches_per_epoch, 'world_size': dist_info.world_size}
            path = save_checkpoint(out, step, policy, cfg.to_dict(), state, cfg.keep_last,
                                   sharded=True)
        barrier(dist_info)
        return path
    if dist_info.is_main:
        if len(set(hashes)) > 1:
            raise RuntimeError(f'DDP replicas diverged at step {step}: parameter hashes {hashes}')
        state = {'optimizer': optimizer.state_dict(), 'rng': rngs, 'epoch': epoch,
                 'batch_in_epoch': batch_in_epoch, 'batches_per_epoch': batches_per_epoch,
                 'world_size': dist_info.world_size, 'replica_hashes': hashes}
        path = save_checkpoint(out, step, policy, cfg.to_dict(), state, cfg.keep_last)
    barrier(dist_info)  # nobody reads a checkpoint before it exists
    return path


def cli() -> int:
    """``python -m pi05_moe_training.train.loop`` (what torchrun runs)."""
    parser = argparse.ArgumentParser(prog='pi05_moe_training.train.loop', description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    return main(parser.parse_args())


if __name__ == '__main__':
    sys.exit(cli())
