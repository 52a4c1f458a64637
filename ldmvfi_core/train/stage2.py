# SPDX-License-Identifier: MIT
"""Stage 2: train the denoising U-Net in the frozen VQ-FIGAN latent space (paper Sec. 3.2).

One step on a batch ``(B, 3, 3, H, W)`` = (frame0, frame1 = target, frame2), as the official
``LatentDiffusionVFI`` with the released config (eps parameterisation, ``loss_type l2``, linear
schedule, ``scale_factor 1.0``, concat conditioning):

* the frozen encoder (eval mode, float32, no autocast) gives ``z0 = E(frame0)``,
  ``x0 = E(frame1)``, ``z2 = E(frame2)``: all **pre-quantisation** latents (after ``quant_conv``).
  The target ``x0`` is not quantised either: the official ``get_first_stage_encoding`` of a
  VQ interface returns the latent before VQ, and the codebook is only used when decoding;
* ``t ~ U{0 .. T-1}``, ``eps ~ N(0, I)``, ``x_t = sqrt(ac_t) x0 + sqrt(1 - ac_t) eps`` with the
  model's float32 ``sqrt_alphas_cumprod`` / ``sqrt_one_minus_alphas_cumprod`` buffers;
* ``loss = mean((UNet(x_t, t, cat(z0, z2)) - eps)^2)``; AdamW step; EMA update.

EMA: the official ``LitEma`` (decay 0.9999 warmed up as ``min(decay, (1 + n) / (10 + n))`` with
``n`` the number of updates so far, shadow of the parameters only). The EMA weights are the
inference weights (``inference_state``), as in the official scripts.

A fresh U-Net gets the official ADM initialisation on top of PyTorch's defaults: the last conv
of every ResBlock and the output conv start at zero.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import Tensor, nn

from ldmvfi_core.model.checkpoint import UNET_PREFIX
from ldmvfi_core.model.ldmvfi import LatentDiffusionVFI
from ldmvfi_core.model.unet import ResBlock, UNet
from ldmvfi_core.train.ema import EMA
from ldmvfi_core.train.layout import to_channels_last
from ldmvfi_core.train.losses import diffusion_loss
from ldmvfi_core.train.stage1 import clip_gradients


def init_unet(unet: UNet) -> None:
    """Zero the output conv and the second conv of every ResBlock (openaimodel ``zero_module``)."""
    convs = [m.out_layers[-1] for m in unet.modules() if isinstance(m, ResBlock)] + [unet.out[-1]]
    for conv in convs:
        assert isinstance(conv, nn.Conv2d)
        nn.init.zeros_(conv.weight)
        if conv.bias is not None:
            nn.init.zeros_(conv.bias)


class Stage2Task:
    """Owns the frozen autoencoder, the trainable U-Net, its AdamW optimiser and the EMA."""

    stage = 2

    def __init__(self, model: LatentDiffusionVFI, runtime: Any, lr: float,
                 betas: tuple[float, float] = (0.9, 0.999), weight_decay: float = 0.01, adamw: bool = True,
                 grad_clip: float = 0.0, ema_decay: float = 0.9999, channels_last: bool = False) -> None:
        self.model = model.to(runtime.device)
        if channels_last:
            to_channels_last(model.unet, model.first_stage_model.encoder)
        self.rt = runtime
        self.lr = lr
        self.grad_clip = grad_clip
        self.init_loaded: list[str] = []  # what --init-from provided (set by the loop)
        self.ae = model.first_stage_model.eval().requires_grad_(False)
        self.unet = model.unet.train()
        self.net = runtime.wrap(self.unet)
        self.params = [p for p in self.unet.parameters() if p.requires_grad]
        cls = torch.optim.AdamW if adamw else torch.optim.Adam
        self.opt = cls(self.params, lr=lr, betas=betas, weight_decay=weight_decay)
        self.ema = EMA(self.unet, ema_decay)
        self.timesteps = int(model.alphas_cumprod.shape[0])

    @torch.no_grad()
    def encode_triplet(self, frames: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Pre-VQ latents ``(z0, x0, z2)`` of frame0, frame1 (target), frame2, in float32."""
        b = frames.shape[0]
        with torch.autocast(self.rt.device.type, enabled=False):
            latent, _ = self.ae.encode(torch.cat([frames[:, 0], frames[:, 1], frames[:, 2]]).float())
        return latent[:b], latent[b : 2 * b], latent[2 * b :]

    def noisy(self, x0: Tensor, t: Tensor, eps: Tensor) -> Tensor:
        sqrt_ac: Tensor = self.model.sqrt_alphas_cumprod  # type: ignore[assignment]
        sqrt_1m: Tensor = self.model.sqrt_one_minus_alphas_cumprod  # type: ignore[assignment]
        a = sqrt_ac[t].view(-1, 1, 1, 1)
        s = sqrt_1m[t].view(-1, 1, 1, 1)
        return a * x0 + s * eps

    def train_step(self, frames: Tensor, step: int) -> dict[str, Tensor]:
        """One optimisation step; the caller seeds the RNG for ``t`` and ``eps``."""
        z0, x0, z2 = self.encode_triplet(frames)
        t = torch.randint(0, self.timesteps, (x0.shape[0],), device=x0.device)
        # Not randn_like: it fills in memory order, so channels-last latents would get other noise.
        eps = torch.randn(x0.shape, device=x0.device, dtype=x0.dtype)
        x_t = self.noisy(x0, t, eps)
        with self.rt.autocast():
            pred = self.net(x_t, t, torch.cat([z0, z2], dim=1))
            loss = diffusion_loss(pred, eps)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = clip_gradients(self.params, self.grad_clip)
        self.opt.step()
        self.ema.update(self.unet)
        return {"loss": loss.detach().float(), "grad_norm": grad_norm,
                "ema_decay": torch.tensor(self.ema.current_decay())}

    @torch.no_grad()
    def loss_at(self, frames: Tensor, t: Tensor, eps: Tensor, ema: bool = False) -> float:
        """The diffusion loss for given ``t`` and ``eps`` (evaluation; live or EMA weights)."""
        z0, x0, z2 = self.encode_triplet(frames)
        unet: nn.Module = self.unet
        if ema:
            unet = UNet(self.unet.cfg).to(x0.device)
            unet.load_state_dict(self.ema.weights(self.unet))
        was_training = unet.training
        unet.eval()
        pred = unet(self.noisy(x0, t, eps), t, torch.cat([z0, z2], dim=1))
        unet.train(was_training)
        return float(diffusion_loss(pred, eps))

    # -- state ----------------------------------------------------------------------------

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"unet": self.opt}

    def state(self) -> dict[str, Any]:
        return {
            "model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            "ema": self.ema.state_dict(UNET_PREFIX),
            "optimizers": {"unet": self.opt.state_dict()},
        }

    def load_state(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"], strict=True)
        self.ema.load_state_dict(state["ema"], UNET_PREFIX)
        if "unet" in state.get("optimizers", {}):  # a carried (slim) checkpoint has none: fresh AdamW
            self.opt.load_state_dict(state["optimizers"]["unet"])

    def inference_state(self) -> dict[str, Tensor]:
        """Autoencoder + EMA U-Net + schedule buffers, under the model's state-dict names."""
        state = {k: v.detach().cpu() for k, v in self.model.state_dict().items()}
        for n, t in self.ema.weights(self.unet).items():
            state[UNET_PREFIX + n] = t
        return state


def warn_untrained_autoencoder() -> None:
    warnings.warn("stage 2 starts from an untrained autoencoder (no --init-from): the latents are "
                  "meaningless; use this only for smoke tests", RuntimeWarning, stacklevel=2)

