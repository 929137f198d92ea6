"""``TrainConfig``: every knob of ``pi05-moe train``, validated, one place.

The CLI flags are generated from this dataclass (``--batch-size`` <- ``batch_size``), and each
checkpoint carries it as ``train_config.json``, so flags, code and checkpoints cannot drift.
"""

from __future__ import annotations

import dataclasses
import json
import math
import warnings
from dataclasses import dataclass
from typing import Any

from pi05_moe_policy.params import check, param, strict_from_dict

DEVICES = ('auto', 'cpu', 'cuda')


def parse_override(text: str) -> Any:
    """A model override's value: JSON (``false``, ``112``, ``["a", "b"]``) or a bare string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


FREEZABLE = ('vision', 'vlm', 'expert')
# the Gemma projections (SigLIP's are q_proj, k_proj, v_proj, out_proj, fc1, fc2)
LORA_TARGETS = ('q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj')


@dataclass
class TrainConfig:
    """Training of the PI0.5 camera-MoE policy (flow-matching + focal routing loss).

    The loss settings live here, not in the policy's config: a checkpoint's network and data
    description do not depend on how it was trained (its train_config.json records that)."""

    # --- data and output ---
    dataset: str = param('', 'dataset directory written by `pi05-moe convert`')
    out: str = param('', 'output directory: checkpoint-<step>/, latest -> newest, tb/')
    resume: bool = param(False, 'continue from <out>/latest: model, optimiser, step, RNG '
                                'and data order')
    # --- model ---
    init: str = param('', 'start from this checkpoint\'s weights (e.g. `pi05-moe import` output, '
                          'any form the nodes take): its network and tokenizer with the '
                          'dataset\'s robot, cameras and norm stats; tensors that do not fit '
                          '(a new camera MoE) start fresh. --preset is then ignored')
    freeze: str = param('', 'comma-separated parts to keep fixed: vision (SigLIP + projector), '
                            'vlm (the Gemma prefix stream), expert (the action expert)')
    lora: bool = param(False, 'LoRA (peft) on --lora-parts: their base weights freeze, adapters '
                              'train; the camera MoE and the other parts train in full. '
                              'Checkpoints keep the adapters apart; `pi05-moe export` merges them')
    lora_rank: int = param(16, 'LoRA rank r')
    lora_alpha: float = param(16.0, 'LoRA alpha (the update is scaled by alpha / rank)')
    lora_dropout: float = param(0.0, 'dropout on the LoRA input')
    lora_targets: list[str] = param(list(LORA_TARGETS), 'names of the Linear layers that get '
                                    'adapters inside --lora-parts')
    lora_parts: str = param('vlm,expert', 'comma-separated parts that get adapters: vision, '
                                          'vlm, expert')
    preset: str = param('small', 'model preset: tiny | small | pi05_base, or the RT-1 '
                                 'baseline: rt1 (CPU-sized) | rt1_base (RT-1\'s sizes)')
    model_overrides: dict[str, str] = param(
        {}, 'ModelConfig / DataConfig field overrides as KEY=VALUE, VALUE in JSON '
            '(e.g. use_camera_moe=false camera_router_temperature=0.5)')
    seed: int = param(0, 'seed of the initial weights, the data order and the flow noise')
    delta_actions: bool = param(
        True, 'predict each joint action relative to the current joint state (openpi delta '
              'actions: chunks start where the arm is); joints in --absolute-joints stay absolute')
    absolute_joints: list[str] = param(
        ['gripper'], 'action names kept absolute with --delta-actions (grippers)')
    oversample_start_s: float = param(
        0.0, "frames in each episode's first S seconds are drawn --oversample-factor times per "
             'epoch: before the arm moves, only the cameras tell where the target is')
    oversample_factor: int = param(1, 'how often those frames are drawn per epoch (1 = as '
                                      'often as the others)')
    # --- optimisation (AdamW, warm-up + cosine, clipping) ---
    max_steps: int = param(20_000, 'optimiser steps to train for (the cosine ends here)')
    batch_size: int = param(8, 'samples per step and per process (global = x world size)')
    lr: float = param(3e-4, 'peak learning rate, reached after warmup_steps')
    min_lr: float = param(3e-5, 'learning rate at the end of the cosine decay')
    warmup_steps: int = param(500, 'linear learning-rate warm-up steps')
    weight_decay: float = param(0.01, 'AdamW decoupled weight decay of weight matrices '
                                      '(biases, norms and gate scales get none)')
    beta1: float = param(0.9, 'AdamW beta1')
    beta2: float = param(0.95, 'AdamW beta2')
    grad_clip: float = param(1.0, 'clip the global gradient norm to this (0 = no clipping)')
    # --- routing loss (seed 000: weight 0.1; seed 001: warm up, then ramp linearly) ---
    routing_loss_weight: float = param(0.1, 'weight of the focal routing loss once ramped')
    routing_warmup_steps: int = param(1000, 'steps with routing-loss weight 0')
    routing_ramp_steps: int = param(1000, 'steps of the linear ramp from 0 to the full weight')
    routing_focal_alpha: float = param(0.25, 'focal routing loss alpha (seed 000)')
    routing_focal_gamma: float = param(2.0, 'focal routing loss gamma (seed 000)')
    # --- flow matching (openpi: time ~ Beta(1.5, 1) * 0.999 + 0.001) ---
    time_beta_alpha: float = param(1.5, 'alpha of the Beta distribution of flow times')
    time_beta_beta: float = param(1.0, 'beta of the Beta distribution of flow times')
    # --- training-time real-time chunking (Black et al. 2025; model/rtc.py) ---
    rtc_max_delay: int = param(
        0, 'training-time RTC: the first d ~ U{0..D} actions of each chunk are given clean '
           '(flow time 0) and kept out of the loss; the checkpoint records rtc_mode=training, '
           'so policy_node feeds the committed prefix clean. 0 = off')
    rtc_zero_delay_prob: float = param(
        0.0, 'training-time RTC: the share of samples drawn with delay 0 (no prefix) on top of '
             "U{0..D}'s own, so the model keeps its skill without a committed chunk (the "
             'first chunk, rtc off); a 4000-step fine-tune at 0 lost it (README)')
    # --- hardware ---
    device: str = param('auto', "'auto' (cuda when available), 'cpu' or 'cuda'")
    bf16: bool = param(True, 'bf16 autocast on CUDA (the CPU trains in fp32 unless --cpu-bf16)')
    cpu_bf16: bool = param(False, 'bf16 autocast on the CPU too (only faster than fp32 on CPUs '
                                  'with AMX or avx512_bf16)')
    gradient_checkpointing: bool = param(False, 'recompute the SigLIP and Gemma layers in '
                                                'backward (less activation memory, about a '
                                                'third slower)')
    fsdp: bool = param(False, 'under torchrun: shard parameters, gradients and optimiser state '
                              'over the processes with FSDP2 (fully_shard) instead of DDP; '
                              'checkpoints are sharded (torch.distributed.checkpoint), '
                              '`pi05-moe export` consolidates them')
    num_workers: int = param(2, 'DataLoader worker processes per training process')
    # --- logging and checkpoints ---
    log_every: int = param(10, 'steps between TensorBoard scalars (averaged over the window)')
    save_every: int = param(1000, 'steps between checkpoints (one is always written at the end)')
    keep_last: int = param(3, 'checkpoints kept on disk (0 = keep all)')
    progress: bool = param(True, 'show a tqdm progress bar')

    def __post_init__(self) -> None:
        parts = [s for s in self.freeze.split(',') if s.strip()] if self.freeze else []
        check(all(s.strip() in FREEZABLE for s in parts), self, 'freeze',
              f'a comma-separated subset of {", ".join(FREEZABLE)}')
        for name in ('max_steps', 'batch_size', 'log_every', 'save_every'):
            value = getattr(self, name)
            check(isinstance(value, int) and value > 0, self, name, 'an int > 0')
        for name in ('warmup_steps', 'routing_warmup_steps', 'routing_ramp_steps',
                     'num_workers', 'keep_last', 'seed', 'rtc_max_delay'):
            value = getattr(self, name)
            check(isinstance(value, int) and value >= 0, self, name, 'an int >= 0')
        check(_finite(self.lr) and self.lr > 0, self, 'lr', 'a learning rate > 0')
        check(_finite(self.min_lr) and 0 <= self.min_lr <= self.lr, self, 'min_lr',
              f'0 <= min_lr <= lr={self.lr}')
        check(_finite(self.rtc_zero_delay_prob) and 0 <= self.rtc_zero_delay_prob <= 1, self,
              'rtc_zero_delay_prob', 'a probability in [0, 1]')
        for name in ('weight_decay', 'grad_clip', 'routing_loss_weight', 'routing_focal_alpha',
                     'routing_focal_gamma'):
            check(_finite(getattr(self, name)) and getattr(self, name) >= 0, self, name,
                  'a finite number >= 0')
        for name in ('time_beta_alpha', 'time_beta_beta'):
            check(_finite(getattr(self, name)) and getattr(self, name) > 0, self, name,
                  'a finite number > 0')
        for name in ('beta1', 'beta2'):
            check(_finite(getattr(self, name)) and 0 <= getattr(self, name) < 1, self, name,
                  'a number in [0, 1)')
        check(self.device in DEVICES, self, 'device', f'one of {DEVICES}')
        check(_finite(self.oversample_start_s) and self.oversample_start_s >= 0, self,
              'oversample_start_s', 'a finite number of seconds >= 0')
        check(isinstance(self.oversample_factor, int) and self.oversample_factor >= 1, self,
              'oversample_factor', 'an int >= 1')
        self._check_lora()
        self._check_model()

    def _check_lora(self) -> None:
        parts = [s.strip() for s in self.lora_parts.split(',') if s.strip()]
        check(bool(parts) and all(p in FREEZABLE for p in parts), self, 'lora_parts',
              f'a non-empty comma-separated subset of {", ".join(FREEZABLE)}')
        check(isinstance(self.lora_rank, int) and self.lora_rank > 0, self, 'lora_rank',
              'an int > 0')
        check(_finite(self.lora_alpha) and self.lora_alpha > 0, self, 'lora_alpha',
              'a finite number > 0')
        check(_finite(self.lora_dropout) and 0 <= self.lora_dropout < 1, self, 'lora_dropout',
              'a number in [0, 1)')
        check(bool(self.lora_targets) and all(isinstance(t, str) and t.isidentifier()
                                              for t in self.lora_targets),
              self, 'lora_targets', 'one or more module names (e.g. q_proj v_proj)')

    @property
    def lora_part_names(self) -> tuple[str, ...]:
        return tuple(s.strip() for s in self.lora_parts.split(',') if s.strip())

    def _check_model(self) -> None:
        """The preset and the override names; the values are validated by the policy's configs
        when the run combines them with the dataset's robot description."""
        from pi05_moe_policy.model.factory import NETWORK_PRESETS, config_class, config_fields
        from pi05_moe_policy.policy_config import DATA_FIELDS

        check(self.preset in NETWORK_PRESETS, self, 'preset', f'one of {sorted(NETWORK_PRESETS)}')
        model_fields = config_fields(config_class(self.preset))
        known = set(model_fields) | set(DATA_FIELDS)
        if config_class(self.preset).__name__ == 'RT1Config':  # the RT-1 baseline
            check(self.rtc_max_delay == 0, self, 'rtc_max_delay',
                  '0 with an RT-1 preset (RT-1 takes no committed prefix)')
            check(set(self.frozen_parts) <= {'vision'}, self, 'freeze',
                  'only vision with an RT-1 preset (it has no vlm or expert)')
            check(not self.lora, self, 'lora', 'False with an RT-1 preset (no Gemma layers)')
        check(set(self.model_overrides) <= known, self, 'model_overrides',
              f'{config_class(self.preset).__name__} or DataConfig fields (the loss is set with '
              f'--routing-* and '
              f'--time-beta-* flags); unknown: {sorted(set(self.model_overrides) - known)}')

    def check_paths(self) -> None:
        """The fields a run needs but a default-constructed config lacks."""
        check(bool(self.dataset), self, 'dataset', 'a dataset directory (--dataset DIR)')
        check(bool(self.out), self, 'out', 'an output directory (--out DIR)')

    def model_kwargs(self) -> dict[str, Any]:
        """The policy config fields this config overrides (flat names, values parsed)."""
        return {k: parse_override(v) for k, v in self.model_overrides.items()}

    def loss_kwargs(self, routing_loss_weight: float) -> dict[str, Any]:
        """``Pi05Model.compute_loss``'s loss arguments at a step's routing-loss weight."""
        return {'routing_loss_weight': routing_loss_weight,
                'focal_alpha': self.routing_focal_alpha, 'focal_gamma': self.routing_focal_gamma,
                'time_beta': (self.time_beta_alpha, self.time_beta_beta),
                'rtc_max_delay': self.rtc_max_delay,
                'rtc_zero_delay_prob': self.rtc_zero_delay_prob}

    @property
    def frozen_parts(self) -> tuple[str, ...]:
        return tuple(s.strip() for s in self.freeze.split(',') if s.strip())

    def model_config(self, robot: dict[str, Any] | None = None) -> Any:
        """The ``PolicyConfig`` of a fresh run: the preset, then ``robot`` (the dataset's robot
        description: dims, joint names, control period, cameras), then the overrides."""
        from pi05_moe_policy.policy_config import make_policy_config

        robot = dict(robot or {})
        if self.delta_actions and robot:
            robot['delta_action_mask'] = self.delta_action_mask(robot)
        rtc = ({'rtc_mode': 'training', 'rtc_max_delay': self.rtc_max_delay}
               if self.rtc_max_delay else {})
        return make_policy_config(self.preset, **{**robot, **self.model_kwargs(), **rtc})

    def delta_action_mask(self, robot: dict[str, Any]) -> list[bool]:
        """Per action dim of ``robot``: delta unless named in absolute_joints or beyond the
        state dims (an action can only be relative to a state of the same index)."""
        names = robot.get('joint_names') or [''] * robot['robot_action_dim']
        unknown = [n for n in self.absolute_joints if n not in names]
        if unknown and robot.get('joint_names'):
            warnings.warn(f'absolute_joints {unknown}: no action of that name (actions: '
                          f'{list(names)}); every such joint is predicted as a delta',
                          stacklevel=2)
        return [name not in self.absolute_joints and i < robot['robot_state_dim']
                for i, name in enumerate(names)]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        return strict_from_dict(cls, data)


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)
