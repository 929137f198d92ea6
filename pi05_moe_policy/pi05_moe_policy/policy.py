"""The policy API everything else uses: checkpoint, transforms and ``infer`` around the model.

    policy = Policy.from_preset('tiny', seed=0)            # random init, tests and demos
    policy = Policy.load('checkpoints/sim_small')          # a checkpoint directory
    out = policy.infer({'images': {...}, 'state': s, 'prompt': 'lift the hot cube'})
    out['actions']   # float32 (action_horizon, robot_action_dim), robot units
    out['routing']   # {expert_camera: weight}, sums to 1 ({} when use_camera_moe=False)
    out['timing']    # ms per stage

A checkpoint directory holds ``config.json`` (format ``pi05_moe/2``: the ``model`` and ``data``
configs; the older flat ``pi05_moe/1`` is migrated on load), ``model.safetensors``,
``norm_stats.json`` and the tokenizer (``tokenizer_spec.json`` [+ ``tokenizer_hf.json``]).
Nothing is fetched from a network.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pi05_moe_policy.model.factory import NetworkConfig, build_model
from pi05_moe_policy.model.precision import resolve_dtype
from pi05_moe_policy.policy_config import (
    PolicyConfig,
    checkpoint_meta,
    config_from_checkpoint,
    make_policy_config,
)
from pi05_moe_policy.transforms.actions import DeltaActions, PadStatesAndActions
from pi05_moe_policy.transforms.data_config import DataConfig
from pi05_moe_policy.transforms.normalize import Normalize, NormStats
from pi05_moe_policy.transforms.pipeline import Compose, make_transforms
from pi05_moe_policy.transforms.tokenizer import build_tokenizer, load_tokenizer, save_tokenizer

_MAX_LISTED = 20

log = logging.getLogger(__name__)


def _materialise_buffers(model: torch.nn.Module) -> None:
    """Non-persistent buffers are not in a checkpoint: after a meta-device build, make them.
    The only one is SigLIP's ``position_ids`` (``arange(num_positions)[None]``)."""
    for name, buf in list(model.named_buffers()):
        if not buf.is_meta:
            continue
        if not name.endswith('position_ids'):
            raise RuntimeError(f'buffer {name!r} is neither in the checkpoint nor known')
        owner = model.get_submodule(name.rsplit('.', 1)[0])
        owner.register_buffer('position_ids', torch.arange(buf.shape[-1]).expand(buf.shape),
                              persistent=False)


def _own_weights(model: torch.nn.Module, dtype: torch.dtype) -> None:
    """Give every floating-point tensor its own copy in ``dtype``, one tensor at a time.

    safetensors' tensors start at unaligned addresses, where CPU kernels take other paths than
    on torch's own (64-byte aligned) allocations: the loaded policy's routing weights differed
    from the saved one's in the 8th digit. A copy each (the file's tensor freed right after)
    keeps save -> load exact, at a peak of the weights plus their largest tensor.
    """
    for tensor in [*model.parameters(), *model.buffers()]:
        if tensor.is_floating_point():
            tensor.data = tensor.data.to(dtype, copy=True)


def set_torch_threads(num_threads: int | str | None) -> int:
    """Set torch's intra-op threads: None leaves them alone, 'auto' takes half the usable cores
    (at least 1), an int is used as is.  Returns the thread count in force.

    Why 'auto': on a small CPU shared with camera/sim/executor processes, an OpenMP pool that
    claims every core stalls at each barrier when another process holds a core; measured here
    on 2 shared cores (load ~6), the small preset took ~3.5 s per chunk with 2 threads and
    ~0.15 s with 1.
    """
    if num_threads is None:
        return torch.get_num_threads()
    if num_threads == 'auto':
        try:
            cores = len(os.sched_getaffinity(0))
        except AttributeError:  # not on Linux
            cores = os.cpu_count() or 1
        n = max(1, cores // 2)
    elif isinstance(num_threads, int) and not isinstance(num_threads, bool) and num_threads > 0:
        n = num_threads
    else:
        raise ValueError(f"num_threads must be None, 'auto' or a positive int, got "
                         f'{num_threads!r}')
    torch.set_num_threads(n)
    return n


def check_state_dict(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Raise ValueError listing missing / unexpected keys and shape mismatches."""
    want = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in state.items()}
    missing = sorted(set(want) - set(got))
    unexpected = sorted(set(got) - set(want))
    wrong = sorted(k for k in set(want) & set(got) if want[k] != got[k])
    if not (missing or unexpected or wrong):
        return
    lines = ['checkpoint tensors do not match the config:']
    for title, keys, fmt in (
            ('missing', missing, lambda k: f'{k} {want[k]}'),
            ('unexpected', unexpected, lambda k: f'{k} {got[k]}'),
            ('shape mismatch', wrong, lambda k: f'{k}: checkpoint {got[k]} vs config {want[k]}')):
        if keys:
            lines.append(f'  {title} ({len(keys)}):')
            lines += [f'    {fmt(k)}' for k in keys[:_MAX_LISTED]]
            if len(keys) > _MAX_LISTED:
                lines.append(f'    ... and {len(keys) - _MAX_LISTED} more')
    raise ValueError('\n'.join(lines))


ADAPTER_CONFIG = 'lora/adapter_config.json'  # a LoRA training checkpoint (training/train/lora)

# SigLIP's own level: transformers 5.5 names the tower's weights ``vision_model.encoder...``,
# other versions ``encoder...``. Checkpoints store them without it.
_TOWER = 'vision.vision_tower.'
_TOWER_LEVEL = _TOWER + 'vision_model.'


def canonical_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``state`` with SigLIP's names independent of the transformers version (no
    ``vision_model.`` level under ``vision.vision_tower``)."""
    return {(_TOWER + k[len(_TOWER_LEVEL):] if k.startswith(_TOWER_LEVEL) else k): v
            for k, v in state.items()}


def to_model_layout(state: dict[str, torch.Tensor], model: torch.nn.Module
                    ) -> dict[str, torch.Tensor]:
    """``state`` (either layout) under the names ``model``'s transformers version uses."""
    state = canonical_state_dict(state)
    if not any(k.startswith(_TOWER_LEVEL) for k in model.state_dict()):
        return state
    return {(_TOWER_LEVEL + k[len(_TOWER):] if k.startswith(_TOWER) else k): v
            for k, v in state.items()}


class Policy:
    """Transforms + the network (``Pi05Model``, or ``RT1Model`` for the RT-1 baseline) +
    normalisation stats + tokenizer, behind ``infer``/``reset``.

    Attributes for robot adapters: ``config`` (a ``PolicyConfig``: ``.model`` the network,
    ``.data`` cameras/robot/prompt; also ``model_config`` and ``data_config``),
    ``base_camera``, ``expert_cameras``, ``camera_names``, ``thermal_cameras``,
    ``robot_state_dim``, ``robot_action_dim``, ``action_horizon``, ``joint_names`` (tuple or
    None), ``control_period_s``, ``device``, ``dtype``.  For training: ``model``,
    ``transform`` (``make_transforms``: ``sample``/``collate``), ``compute_loss``.
    """

    def __init__(self, model: torch.nn.Module, data_config: DataConfig, norm_stats: NormStats,
                 tokenizer: Any, seed: int = 0):
        PolicyConfig(model.config, data_config)  # the two must fit each other
        self.model = model.eval()
        self.data_config = data_config
        self.norm_stats = norm_stats
        self.tokenizer = tokenizer
        self.seed = int(seed)
        self.transform = make_transforms(model.config, data_config, norm_stats, tokenizer)
        if tokenizer.vocab_size > model.config.vocab_size:
            raise ValueError(f'tokenizer vocab ({tokenizer.vocab_size}) exceeds '
                             f'ModelConfig.vocab_size={model.config.vocab_size}')
        self._generator = torch.Generator().manual_seed(self.seed)
        self.num_steps: int | None = None  # None: the checkpoint's ModelConfig.num_steps
        self.sparse_threshold = 0.0  # 0: every camera encoded (set_inference)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_preset(cls, name: str, seed: int = 0, norm_stats: Any = None,
                    device: str | torch.device = 'cpu', dtype: Any = None,
                    num_threads: int | str | None = None, **config_overrides: Any) -> Policy:
        """Random init of a preset (``tiny``, ``small``, ``pi05_base``; the RT-1 baseline's
        ``rt1``, ``rt1_base``) with config overrides:
        flat ModelConfig or DataConfig field names, each routed to its config (an unknown
        name raises ValueError).  Norm stats default to the identity (q01=-1, q99=1).
        ``num_threads``: see ``set_torch_threads`` (None leaves torch's setting alone)."""
        cfg = make_policy_config(name, **config_overrides)
        return cls.from_config(cfg, seed=seed, norm_stats=norm_stats, device=device,
                               dtype=dtype, num_threads=num_threads)

    @classmethod
    def from_config(cls, cfg: PolicyConfig, seed: int = 0, norm_stats: Any = None,
                    device: str | torch.device = 'cpu', dtype: Any = None,
                    num_threads: int | str | None = None) -> Policy:
        """Random init of ``cfg`` (a ``PolicyConfig``), seeded."""
        set_torch_threads(num_threads)
        data = cfg.data
        stats = (NormStats.identity(data.robot_state_dim, data.robot_action_dim)
                 if norm_stats is None else NormStats.from_dict(norm_stats))
        stats.validate(data.robot_state_dim, data.robot_action_dim)
        tokenizer = build_tokenizer(data.tokenizer_type, cfg.model.vocab_size,
                                    data.tokenizer_path)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = build_model(cfg.model)  # Pi05Model, or RT1Model for the rt1 presets
        policy = cls(model, data, stats, tokenizer, seed=seed)
        return policy.to(device=device, dtype=resolve_dtype(dtype, device))

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = 'cpu', dtype: Any = None,
             seed: int = 0, num_threads: int | str | None = None,
             allow_adapters: bool = False) -> Policy:
        """``allow_adapters``: read a LoRA training checkpoint's base weights and leave its
        adapters (``lora/``) to the caller (training does); by default such a directory is
        refused, since its policy without the adapters is not the trained one."""
        from safetensors.torch import load_file

        set_torch_threads(num_threads)
        d = Path(path)
        if not d.is_dir():
            raise ValueError(f'checkpoint {str(d)!r} is not a directory')
        if (d / 'dcp').is_dir() and not (d / 'model.safetensors').is_file():
            raise ValueError(f'checkpoint {str(d)!r} is sharded (--fsdp, weights in dcp/): '
                             f'consolidate it with `pi05-moe export {d} --out DIR` and load DIR')
        for f in ('config.json', 'model.safetensors', 'norm_stats.json'):
            if not (d / f).is_file():
                raise ValueError(f'checkpoint {str(d)!r} is missing {f}')
        if (d / ADAPTER_CONFIG).is_file() and not allow_adapters:
            raise ValueError(f'checkpoint {str(d)!r} holds LoRA adapters ({ADAPTER_CONFIG}) '
                             'beside its base weights: merge them with `pi05-moe export '
                             f'{d} --out DIR` and load DIR')
        cfg = config_from_checkpoint(json.loads((d / 'config.json').read_text()),
                                     str(d / 'config.json'))
        stats = NormStats.load(d / 'norm_stats.json')
        tokenizer = load_tokenizer(d)
        # Built on the meta device and then given the file's tensors (assign): no random init
        # and no second copy of the weights, so pi05_base loads in bf16 within ~1x its size.
        with torch.device('meta'):
            model = build_model(cfg.model)
        state = to_model_layout(load_file(str(d / 'model.safetensors')), model)
        check_state_dict(model, state)
        model.load_state_dict(state, assign=True)
        del state
        _materialise_buffers(model)
        _own_weights(model, resolve_dtype(dtype, device) or torch.float32)
        policy = cls(model, cfg.data, stats, tokenizer, seed=seed)
        return policy.to(device=device)

    def save(self, path: str | Path, weights_dtype: Any = None,
             state_dict: dict[str, torch.Tensor] | None = None, weights: bool = True) -> Path:
        """Write the checkpoint directory; ``weights_dtype`` ('float16', 'bfloat16') stores the
        floating-point weights in that dtype (half the size; :meth:`load` casts them back).
        ``state_dict``: the weights to write instead of the model's own (a LoRA run's base
        weights, a sharded run's gathered ones). Names are written in the canonical layout
        (``canonical_state_dict``). ``weights=False`` writes all but ``model.safetensors`` (a
        sharded training checkpoint keeps its weights in ``dcp/``)."""
        from safetensors.torch import save_file

        store = resolve_dtype(weights_dtype)
        d = Path(path)
        d.mkdir(parents=True, exist_ok=True)
        meta = checkpoint_meta(self.config)
        (d / 'config.json').write_text(json.dumps(meta, indent=1))
        if weights:
            source = self.model.state_dict() if state_dict is None else state_dict
            state = {k: (v.to(store) if store is not None and v.is_floating_point() else v)
                     .detach().cpu().contiguous()
                     for k, v in canonical_state_dict(source).items()}
            save_file(state, str(d / 'model.safetensors'))
            # safetensors writes 0600; give the weights the permissions the other files got
            os.chmod(d / 'model.safetensors', (d / 'config.json').stat().st_mode & 0o777)
        self.norm_stats.save(d / 'norm_stats.json')
        save_tokenizer(self.tokenizer, d)
        return d

    def to(self, device: str | torch.device | None = None, dtype: Any = None) -> Policy:
        """Move (and cast) the model. ``dtype``: a name ('float32', 'bf16', ...), a torch dtype,
        None (unchanged) or 'auto' (the fastest for the device: model/precision.py)."""
        target = self.model.device if device is None else device
        self.model.to(device=device, dtype=resolve_dtype(dtype, target))
        return self

    def set_noise_scale(self, noise_scale: float) -> Policy:
        """Change the sampling temperature (``ModelConfig.noise_scale``, validated); saved with
        the checkpoint."""
        self.model.config = self.model_config.replace(noise_scale=noise_scale)
        return self

    def set_truncation_handler(self, handler: Any) -> None:
        """Report prompts cut to max_token_len to ``handler(text, n_ids)`` (None: Python
        logging), as ``PolicyProcess`` does."""
        self.transform.set_truncation_handler(handler)

    def set_inference(self, num_steps: int | None = None, sparse_threshold: float = 0.0,
                      torch_compile: bool = False, inference_hz: float = 0.0) -> Policy:
        """How :meth:`infer` samples by default (not saved with the checkpoint).

        ``num_steps``: Euler steps of a chunk (None or 0: the checkpoint's
        ``ModelConfig.num_steps``); fewer steps cost proportionally less denoising.
        ``sparse_threshold`` in [0, 1): expert cameras whose routing weight is below it are
        not encoded (camera MoE checkpoints only; 0 encodes every camera).
        ``torch_compile``: compile the denoising step (``Pi05Model.compile_for_inference``;
        the next chunk pays the compilation, then each step costs less; cannot be undone; a
        network without a compiled path, RT-1, runs eager with a warning).
        ``inference_hz``: how often :meth:`infer` is called (0: unknown, every call). A network
        with an image history (RT-1) then takes the frames of calls as far apart as its
        training history (``history_stride`` control periods; ``set_history_call_stride``)."""
        if num_steps is not None and not (isinstance(num_steps, (int, np.integer))
                                          and num_steps >= 0):
            raise ValueError(f'num_steps must be an int >= 0 (0: the checkpoint\'s), got '
                             f'{num_steps!r}')
        if not (isinstance(sparse_threshold, (int, float)) and 0.0 <= sparse_threshold < 1.0):
            raise ValueError(f'sparse_threshold must lie in [0, 1), got {sparse_threshold!r}')
        if sparse_threshold > 0 and self.model.camera_moe is None:
            raise ValueError(f'sparse_threshold={sparse_threshold!r} needs a camera-MoE '
                             'checkpoint (use_camera_moe); this one concatenates its cameras')
        if not (isinstance(inference_hz, (int, float)) and math.isfinite(inference_hz)
                and inference_hz >= 0):
            raise ValueError(f'inference_hz must be a rate >= 0 (0: unknown), got '
                             f'{inference_hz!r}')
        self.num_steps = int(num_steps) if num_steps else None
        self.sparse_threshold = float(sparse_threshold)
        stride = getattr(self.model_config, 'history_stride', 0)
        if stride and hasattr(self.model, 'set_history_call_stride'):
            periods_per_call = 1.0 / (inference_hz * self.control_period_s) if inference_hz else 0
            self.model.set_history_call_stride(
                max(1, round(stride / periods_per_call)) if periods_per_call else 1)
        if torch_compile and hasattr(self.model, 'compile_for_inference'):
            self.model.compile_for_inference()
        elif torch_compile:  # a graph's setting meets a network without one (RT-1): run eager
            log.warning('torch_compile: %s has no compiled inference path; it runs eager',
                        type(self.model).__name__)
        return self

    # ------------------------------------------------------------------ description
    @property
    def config(self) -> PolicyConfig:
        """Both configs (a fresh object each time: change the network's with
        ``set_noise_scale``)."""
        return PolicyConfig(self.model.config, self.data_config)

    @property
    def model_config(self) -> NetworkConfig:
        return self.model.config

    @property
    def device(self) -> torch.device:
        return self.model.device

    @property
    def dtype(self) -> torch.dtype:
        return self.model.dtype

    @property
    def base_camera(self) -> str:
        return self.data_config.base_camera

    @property
    def expert_cameras(self) -> tuple[str, ...]:
        return self.data_config.expert_cameras

    @property
    def camera_names(self) -> tuple[str, ...]:
        return self.data_config.camera_names

    @property
    def thermal_cameras(self) -> tuple[str, ...]:
        return self.data_config.thermal_cameras

    @property
    def robot_state_dim(self) -> int:
        return self.data_config.robot_state_dim

    @property
    def robot_action_dim(self) -> int:
        return self.data_config.robot_action_dim

    @property
    def action_horizon(self) -> int:
        return self.model_config.action_horizon

    @property
    def joint_names(self) -> tuple[str, ...] | None:
        return self.data_config.joint_names

    @property
    def control_period_s(self) -> float:
        return self.data_config.control_period_s

    def fake_obs(self, seed: int = 0, height: int = 240, width: int = 320,
                 prompt: str = 'lift the hot cube') -> dict[str, Any]:
        """A valid random observation (every camera, thermal as uint16 centi-Kelvin around
        room temperature) for smoke tests and demos."""
        rng = np.random.default_rng(seed)
        images = {}
        for name in self.camera_names:
            if name in self.thermal_cameras:
                images[name] = rng.integers(29000, 31000, (height, width), dtype=np.uint16)
            else:
                images[name] = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        state = rng.uniform(-1, 1, self.robot_state_dim).astype(np.float32)
        return {'images': images, 'state': state, 'prompt': prompt}

    # ------------------------------------------------------------------ run time
    def reset(self) -> None:
        """Start a new episode: the noise generator restarts from the seed, and a model with
        an image history (RT-1) forgets the frames it has seen."""
        self._generator = torch.Generator().manual_seed(self.seed)
        if hasattr(self.model, 'reset_history'):
            self.model.reset_history()

    def compute_loss(self, batch: dict[str, torch.Tensor], **kwargs: Any
                     ) -> tuple[torch.Tensor, dict[str, Any]]:
        return self.model.compute_loss(batch, **kwargs)

    def infer(self, obs: dict[str, Any], noise: Any = None, num_steps: int | None = None,
              prefix: Any = None, prefix_start_s: float = 0.0, delay_steps: int = 0
              ) -> dict[str, Any]:
        """obs: {"images": {camera: array}, "state": (robot_state_dim,), "prompt": str}.

        noise: optional (action_horizon, action_dim) or (1, H, action_dim) for reproducible
        output.  Returns actions (H, robot_action_dim) float32 in robot units, routing
        {expert: weight}, timing {stage: ms} and cameras_encoded (how many cameras went
        through the vision tower: fewer than given with ``set_inference(sparse_threshold)``).

        Real-time chunking (RTC): ``prefix`` (H_prefix, robot_action_dim), robot units, are
        the *committed* actions: what the executor will still command from the chunk it runs
        now, one row per control period (``control_period_s``), row 0 for the slot that
        starts ``prefix_start_s`` seconds after this observation's time (<= 0: a row whose
        slot began before the observation is dropped; the rows are aligned to the new chunk's
        rows by rounding to whole periods).  ``delay_steps`` d: how many of the new chunk's
        rows will have passed when it takes effect (the inference delay in control periods,
        e.g. ``core.rtc.DelayEstimator``); those rows must equal the committed ones, the
        later committed rows are followed with decaying weight.  The prefix goes through the
        same transforms as training actions (delta dims relative to this observation's
        state, then normalised) and conditions the chunk as the checkpoint's
        ``ModelConfig.rtc_mode`` says (``guidance``: test-time inpainting, ``training``: fed
        clean, ``none``: ignored).  None (the default) samples an unconditioned chunk.
        ``timing`` then also holds ``rtc_rows`` (aligned committed rows used) and
        ``rtc_delay``.
        """
        t0 = time.perf_counter()
        cfg = self.model_config
        raw = self.transform.check_obs(obs)  # checked images, state (robot units), prompt
        sample = self.transform.inputs(raw)
        dev = self.device
        batch = {k: v[None].to(dev) for k, v in sample.items()}
        shape = (1, cfg.action_horizon, cfg.action_dim)
        if noise is None:
            noise_t = torch.randn(shape, generator=self._generator) * cfg.noise_scale
        else:
            noise_t = torch.as_tensor(np.asarray(noise) if not isinstance(noise, torch.Tensor)
                                      else noise, dtype=torch.float32)
            if noise_t.numel() != int(np.prod(shape)):
                raise ValueError(f'noise must have shape {shape[1:]} or {shape}, got '
                                 f'{tuple(noise_t.shape)}')
            noise_t = noise_t.reshape(shape)
        rtc = self._prefix_inputs(raw['state'], prefix, prefix_start_s, delay_steps, dev)
        if rtc:
            batch['action_dim_mask'] = (torch.arange(cfg.action_dim, device=dev)
                                        < self.robot_action_dim)[None]  # (1, 32)
        t1 = time.perf_counter()
        was_training = self.model.training
        self.model.eval()  # no Gumbel noise at inference
        try:
            actions, info = self.model.sample_actions(
                batch, noise=noise_t.to(dev),
                num_steps=self.num_steps if num_steps is None else num_steps,
                sparse_threshold=self.sparse_threshold, **rtc)
        finally:
            self.model.train(was_training)
        t2 = time.perf_counter()
        out = self.transform.unnormalize_actions(actions[0].float().cpu().numpy(), raw['state'])
        routing = {}
        if info['routing_weights'] is not None:
            w = info['routing_weights'][0].cpu().tolist()
            routing = dict(zip(self.expert_cameras, (float(x) for x in w)))
        t3 = time.perf_counter()
        timing = {'transform': (t1 - t0) * 1e3, **info['timing'], 'model': (t2 - t1) * 1e3,
                  'postprocess': (t3 - t2) * 1e3, 'total': (t3 - t0) * 1e3}
        if rtc:
            timing['rtc_rows'] = float(rtc['prefix_actions'].shape[1])
            timing['rtc_delay'] = float(rtc['prefix_len'])
        return {'actions': np.ascontiguousarray(out, dtype=np.float32), 'routing': routing,
                'timing': timing, 'cameras_encoded': info['cameras_encoded']}

    def _prefix_inputs(self, state: np.ndarray, prefix: Any, start_s: float, delay: int,
                       dev: torch.device) -> dict[str, Any]:
        """``sample_actions``' RTC arguments from committed actions in robot units ({} when
        there is no usable prefix).  See :meth:`infer`."""
        if prefix is None:
            return {}
        a = np.asarray(prefix, dtype=np.float32)  # (H_prefix, robot_action_dim)
        if a.ndim != 2 or a.shape[1] != self.robot_action_dim or not np.isfinite(a).all():
            raise ValueError(f'prefix must be finite (H_prefix, {self.robot_action_dim}) '
                             f'robot-unit actions, got shape {a.shape}')
        period = self.control_period_s
        if not (np.isfinite(start_s) and start_s < 0.5 * period):
            raise ValueError(f'prefix_start_s must be a number of seconds < half a control '
                             f'period ({0.5 * period:g}), got {start_s!r}')
        if not (isinstance(delay, (int, np.integer)) and delay >= 0):
            raise ValueError(f'delay_steps must be an int >= 0, got {delay!r}')
        a = a[int(round(-start_s / period)):][:self.action_horizon]  # rows from the obs time
        if len(a) == 0:
            return {}
        steps = [s for s in self.transform.inputs.steps
                 if isinstance(s, (DeltaActions, Normalize, PadStatesAndActions))]
        norm = Compose(steps)({'state': state, 'actions': a})['actions']  # (d_max, 32)
        return {'prefix_actions': torch.from_numpy(np.ascontiguousarray(norm))[None].to(dev),
                'prefix_len': min(int(delay), len(a))}
