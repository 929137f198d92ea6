"""RT-1 (seed 003) behind the methods the Policy and the training loop call on ``Pi05Model``:
``compute_loss(batch, ...) -> (loss, info)`` and ``sample_actions(batch, ...) -> (actions,
info)``, on the same batch (``pi05_moe_policy.transforms``) plus an optional image history.

Batch:
    images        float (B, C, 3, S, S) in [-1, 1]: the current frame, base camera first
    image_masks   bool  (B, C)
    image_history float (B, k-1, C, 3, S, S)  optional: the k-1 previous frames, oldest first
    image_history_masks bool (B, k-1, C)      optional (default: image_masks)
    tokens, token_mask (B, L); state (B, 32)  the prompt (task only) and the padded state
    actions (B, H, 32), action_is_pad (B, H), action_dim_mask (B, 32), camera_active (B, N)

Per frame and camera: FiLM-EfficientNet (conditioned on the instruction) -> TokenLearner (8
tokens).  Cameras: concatenated (8 per camera and frame) or, with ``use_camera_moe``, fused by
the camera router exactly as PI0.5 fuses them (8 tokens a frame).  Then a frame-causal
transformer over the k frames and H readout tokens, and per action dim a 256-way classifier
over bins of the normalised range.  The readout tokens are a small departure from RT-1 (which
reads the action off its last tokens): they let one head emit a chunk of H >= 1 actions.

History.  Training builds it from the dataset's previous frames (``TrainDataset`` adds
``image_history`` when k > 1); a batch without it repeats the current frame k times.  At
inference the model keeps the per-camera tokens of the last k - 1 calls in a ring buffer
(``reset_history``, called by ``Policy.reset``; a changed prompt or batch size also clears it):
each call encodes the current frame only.  At an episode's start the oldest frame seen is
repeated, as the dataset repeats frame 0.  ``set_history_call_stride(m)``: the history frames
are those of every m-th call (a policy called m times per training history spacing).
"""

from __future__ import annotations

import collections
import time as _time
from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from pi05_moe_policy.model.camera_router import CameraMoE, RouterOutput
from pi05_moe_policy.model.losses import action_mask, add_routing_loss, check_actions
from pi05_moe_policy.model.rt1.action_bins import ActionBins
from pi05_moe_policy.model.rt1.config import RT1Config
from pi05_moe_policy.model.rt1.efficientnet_film import FiLMEfficientNet
from pi05_moe_policy.model.rt1.instruction import InstructionEncoder
from pi05_moe_policy.model.rt1.token_learner import TokenLearner
from pi05_moe_policy.model.rt1.transformer import CausalTransformer, frame_causal_mask

ROUTING_LOSS_WEIGHT = 0.1
FOCAL_ALPHA, FOCAL_GAMMA = 0.25, 2.0


class RT1Model(nn.Module):
    """The network; see the module docstring for the batch."""

    def __init__(self, config: RT1Config):
        super().__init__()
        cfg = config
        self.config = cfg
        d = cfg.token_dim
        self.instruction = InstructionEncoder(cfg.vocab_size, d, cfg.text_depth,
                                              cfg.text_num_heads, cfg.max_text_len)
        self.vision = FiLMEfficientNet(cfg, cond_dim=d)
        self.token_learner = TokenLearner(d, cfg.tokens_per_image, cfg.token_learner_hidden)
        self.camera_moe = CameraMoE(cfg) if cfg.use_camera_moe else None
        seq = cfg.history * cfg.tokens_per_frame + cfg.action_horizon
        self.transformer = CausalTransformer(d, cfg.depth, cfg.num_heads, cfg.mlp_dim, seq,
                                             cfg.dropout)
        self.readout = nn.Parameter(torch.zeros(cfg.action_horizon, d))
        # One Linear(D, bins) per action dim, stored as one tensor: (A, bins, D) and (A, bins).
        self.head_weight = nn.Parameter(torch.zeros(cfg.action_dim, cfg.num_bins, d))
        self.head_bias = nn.Parameter(torch.zeros(cfg.action_dim, cfg.num_bins))
        self.bins = ActionBins(cfg.num_bins, cfg.action_low, cfg.action_high)
        self.history_call_stride = 1  # calls between two history frames (set_history_...)
        self._history: collections.deque = collections.deque(maxlen=max(cfg.history - 1, 1))
        self._history_key: tuple | None = None
        if self.head_weight.device.type != 'meta':
            nn.init.normal_(self.readout, std=0.02)
            nn.init.normal_(self.head_weight, std=0.02)

    @property
    def dtype(self) -> torch.dtype:
        return self.head_weight.dtype

    @property
    def device(self) -> torch.device:
        return self.head_weight.device

    def set_gradient_checkpointing(self, enabled: bool = True) -> None:
        if enabled:
            raise ValueError('gradient checkpointing is not implemented for RT-1 (it fits '
                             'without: train without --gradient-checkpointing)')

    # ------------------------------------------------------------------ encoders
    def encode_instruction(self, batch: dict[str, torch.Tensor]
                           ) -> tuple[torch.Tensor, torch.Tensor]:
        """-> the FiLM conditioning vector (B, D) and the prompt's token states (B, L, D)."""
        return self.instruction(batch['tokens'], batch['token_mask'])

    def encode_cameras(self, images: torch.Tensor, masks: torch.Tensor, cond: torch.Tensor
                       ) -> torch.Tensor:
        """images (B, F, C, 3, S, S), masks (B, F, C), cond (B, D) -> per-camera tokens
        (B, F, C, K, D), zeros for a missing camera."""
        b, f, c = images.shape[:3]
        pix = images.flatten(0, 2)  # (B*F*C, 3, S, S)
        cond_rep = cond[:, None, None].expand(b, f, c, -1).flatten(0, 2)  # (B*F*C, D)
        feats = self.vision(pix, cond_rep)  # (B*F*C, G*G, D)
        tok = self.token_learner(feats)  # (B*F*C, K, D)
        tok = tok.view(b, f, c, *tok.shape[1:])  # (B, F, C, K, D)
        return tok * masks.to(tok.dtype)[..., None, None]

    def fuse_cameras(self, cam: torch.Tensor, masks: torch.Tensor, text: torch.Tensor,
                     token_mask: torch.Tensor, state: torch.Tensor
                     ) -> tuple[torch.Tensor, RouterOutput | None]:
        """cam (B, F, C, K, D) -> frame tokens (B, F, Tf, D) and the router's output for every
        frame ((B*F, N) tensors) or None.  Concatenated: Tf = C*K; routed: Tf = K.  Every frame
        is routed with the current prompt and state (as in training, where only the current
        state is known)."""
        b, f, c, k, d = cam.shape
        if self.camera_moe is None:
            return cam.flatten(2, 3), None  # (B, F, C*K, D)
        def rep(x: torch.Tensor) -> torch.Tensor:  # (B, ...) -> (B*F, ...), each frame's copy
            return x[:, None].expand(b, f, *x.shape[1:]).flatten(0, 1)

        flat = cam.flatten(0, 1)  # (B*F, C, K, D)
        fused, route = self.camera_moe(flat[:, 0], flat[:, 1:],
                                       masks.flatten(0, 1)[:, 1:].bool(), rep(text),
                                       rep(token_mask.bool()),
                                       rep(state.to(cam.dtype)))  # (B*F, K, D)
        return fused.view(b, f, k, d), route

    def decode(self, frames: torch.Tensor) -> torch.Tensor:
        """frames (B, F, Tf, D) -> logits (B, H, A, bins) from the H readout tokens."""
        b, f, tf, d = frames.shape
        h = self.config.action_horizon
        x = torch.cat([frames.flatten(1, 2), self.readout.to(frames.dtype)[None].expand(b, h, d)],
                      dim=1)  # (B, F*Tf + H, D)
        mask = frame_causal_mask(f, tf, h, x.device)  # (N, N)
        out = self.transformer(x, mask)[:, -h:]  # (B, H, D)
        return torch.einsum('bhd,and->bhan', out, self.head_weight.to(out.dtype)) \
            + self.head_bias.to(out.dtype)  # (B, H, A, bins)

    def history_frames(self, batch: dict[str, torch.Tensor]
                       ) -> tuple[torch.Tensor, torch.Tensor]:
        """The k frames of a training batch: (B, k, C, 3, S, S) and masks (B, k, C)."""
        k = self.config.history
        images, masks = batch['images'], batch['image_masks'].bool()
        past = batch.get('image_history')
        if past is None:  # no history given: the current frame k times
            return (images[:, None].expand(-1, k, *images.shape[1:]),
                    masks[:, None].expand(-1, k, -1))
        if past.dim() != 6 or past.shape[1] != k - 1:
            raise ValueError(f'batch["image_history"] must be (B, {k - 1}, C, 3, S, S) for '
                             f'RT1Config.history={k}, got {tuple(past.shape)}')
        past_masks = batch.get('image_history_masks')
        past_masks = (masks[:, None].expand(-1, k - 1, -1) if past_masks is None
                      else past_masks.bool())
        return (torch.cat([past, images[:, None]], dim=1),
                torch.cat([past_masks, masks[:, None]], dim=1))

    # ------------------------------------------------------------------ training
    def compute_loss(self, batch: dict[str, torch.Tensor],
                     routing_loss_weight: float = ROUTING_LOSS_WEIGHT,
                     focal_alpha: float = FOCAL_ALPHA, focal_gamma: float = FOCAL_GAMMA,
                     rtc_max_delay: int = 0, **_flow_matching: Any
                     ) -> tuple[torch.Tensor, dict[str, Any]]:
        """Cross-entropy over the bins of every real action dim (``action_dim_mask``) and
        unpadded step, plus ``routing_loss_weight`` x the focal routing loss (labels given,
        router on).  The flow-matching arguments the loop passes (``time_beta``, ``noise``)
        do not apply and are ignored.  info: loss, action_loss (the cross-entropy),
        bin_accuracy, routing_* as ``Pi05Model.compute_loss``'s."""
        if rtc_max_delay:
            raise ValueError('training-time RTC (--rtc-max-delay) does not apply to RT-1')
        cfg = self.config
        actions = check_actions(batch, cfg.action_horizon, cfg.action_dim)  # (B, H, A)
        b, h, a = actions.shape
        dev = actions.device
        cond, text = self.encode_instruction(batch)
        images, masks = self.history_frames(batch)
        cam = self.encode_cameras(images, masks, cond)  # (B, k, C, K, D)
        frames, route = self.fuse_cameras(cam, masks, text, batch['token_mask'], batch['state'])
        logits = self.decode(frames).float()  # (B, H, A, bins)
        target = self.bins.discretise(actions)  # (B, H, A)
        ce = F.cross_entropy(logits.flatten(0, 2), target.flatten(), reduction='none')
        ce = ce.view(b, h, a)
        mf = action_mask(batch, (b, h, a), dev).float()  # (B, H, A)
        action_loss = (ce * mf).sum() / mf.sum().clamp_min(1.0)
        hit = (logits.argmax(-1) == target).float()
        info: dict[str, Any] = {
            'action_loss': action_loss.detach(),
            'bin_accuracy': ((hit * mf).sum() / mf.sum().clamp_min(1.0)).detach()}
        current = None  # the current frame's routing: (probs, weights), each (B, N)
        if route is not None:
            k = cfg.history
            current = (route.probs.view(b, k, -1)[:, -1], route.weights.view(b, k, -1)[:, -1])
        loss = add_routing_loss(action_loss, info, current, batch.get('camera_active'),
                                routing_loss_weight, focal_alpha, focal_gamma)
        return loss, info

    forward = compute_loss

    # ------------------------------------------------------------------ inference
    def reset_history(self) -> None:
        """Forget the frames of the episode so far (``Policy.reset`` calls it)."""
        self._history.clear()
        self._history_key = None

    def set_history_call_stride(self, calls: int) -> None:
        """Use the frame of every ``calls``-th previous call as history: the spacing of
        training's history frames (``history_stride`` dataset frames) when the policy runs
        more often than that, e.g. 2 when inferring every 5 control periods with
        ``history_stride`` 10.  Forgets the history."""
        if not (isinstance(calls, int) and calls >= 1):
            raise ValueError(f'history call stride must be an int >= 1, got {calls!r}')
        self.history_call_stride = calls
        self._history = collections.deque(maxlen=max(self.config.history - 1, 1) * calls)
        self.reset_history()

    @torch.no_grad()
    def sample_actions(self, batch: dict[str, torch.Tensor], noise: Any = None,
                       num_steps: int | None = None, use_history: bool = True,
                       sparse_threshold: float = 0.0, **_rtc: Any
                       ) -> tuple[torch.Tensor, dict[str, Any]]:
        """The argmax bins' centres (B, H, A) float32 (normalised units) for the current
        frame, with the ring buffer's previous frames (``use_history``; False: the current
        frame repeated, as a training batch without history).  ``noise``, ``num_steps`` and
        the RTC arguments of ``Pi05Model.sample_actions`` are accepted and ignored (RT-1 is
        deterministic; a committed prefix cannot condition it).  ``sparse_threshold`` > 0
        (skipping low-weight expert cameras) is refused: the history needs every camera's
        tokens of every frame.  info: routing_weights (B, N) of the current frame or None,
        timing {vision, transformer} in ms, cameras_encoded (every camera, each call)."""
        if sparse_threshold:
            raise ValueError(f'sparse_threshold={sparse_threshold!r}: RT-1 encodes every '
                             'camera (its history needs them); use 0')
        cfg = self.config
        t0 = _time.perf_counter()
        images, masks = batch['images'], batch['image_masks'].bool()  # (B, C, ...), (B, C)
        b = images.shape[0]
        cond, text = self.encode_instruction(batch)
        cam = self.encode_cameras(images[:, None], masks[:, None], cond)[:, 0]  # (B, C, K, D)
        key = (b, tuple(batch['tokens'].flatten().tolist()))
        if not use_history or self._history_key != key:
            self.reset_history()
        self._history_key = key if use_history else None
        # (tokens (B, C, K, D), masks (B, C)) of the calls m, 2m, ... (k-1)m ago (m: the
        # history call stride), oldest first; before the episode had those, its oldest frame
        seen, m, now = list(self._history), self.history_call_stride, (cam, masks)
        past = [seen[-j * m] for j in range(cfg.history - 1, 0, -1) if j * m <= len(seen)]
        past = [seen[0] if seen else now] * (cfg.history - 1 - len(past)) + past
        if use_history and cfg.history > 1:
            self._history.append(now)
        cams = torch.stack([c for c, _ in past] + [cam], dim=1)  # (B, k, C, K, D)
        all_masks = torch.stack([m for _, m in past] + [masks], dim=1)  # (B, k, C)
        t1 = _time.perf_counter()
        frames, route = self.fuse_cameras(cams, all_masks, text, batch['token_mask'],
                                          batch['state'])
        logits = self.decode(frames)  # (B, H, A, bins)
        actions = self.bins.undiscretise(logits.argmax(-1))  # (B, H, A)
        t2 = _time.perf_counter()
        weights = None
        if route is not None:
            weights = route.weights.view(b, cfg.history, -1)[:, -1].float()  # (B, N)
        return actions, {'routing_weights': weights, 'cameras_encoded': int(images.shape[1]),
                         'timing': {'vision': (t1 - t0) * 1e3, 'transformer': (t2 - t1) * 1e3}}
