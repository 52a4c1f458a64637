# SPDX-License-Identifier: MIT
"""The LDMVFI denoising U-Net (paper Sec. 3.2): an ADM-style U-Net with MaxViT self-attention.

Layout and parameter names follow the official ``openaimodel.UNetModel`` (``legacy=True``,
``use_max_self_attn=True``), so the ``model.diffusion_model.*`` (or EMA) tensors of the released
checkpoint load with a strict ``load_state_dict`` once the prefix is stripped:

* ``time_embed``: Linear(C, 4C), SiLU, Linear(4C, 4C) on the sinusoidal embedding of ``t``;
* ``input_blocks``: a 3x3 conv, then per level ``num_res_blocks`` x [ResBlock, MaxViT attention]
  and a stride-2 conv between levels;
* ``middle_block``: ResBlock, MaxViT attention, ResBlock;
* ``output_blocks``: per level ``num_res_blocks + 1`` x [ResBlock on cat(h, skip), attention]
  with a nearest-x2 upsample + conv closing every level but the last;
* ``out``: GroupNorm, SiLU, 3x3 conv.

The network sees ``cat([x_t, z0, z1], 1)`` (concat conditioning, paper Eq. 5) and predicts eps.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ldmvfi_core.config import UNetConfig
from ldmvfi_core.model.ae_blocks import Upsample  # the same nearest-x2 + 3x3 conv as the autoencoder's
from ldmvfi_core.model.maxvit import MaxAttentionBlock

__all__ = ["Downsample", "GroupNorm32", "ResBlock", "UNet", "Upsample", "timestep_embedding"]

GROUPS = 32
GN_EPS = 1e-5


def timestep_embedding(t: Tensor, dim: int, max_period: float = 10000.0) -> Tensor:
    """Sinusoidal timestep embedding (Vaswani et al. 2017; ADM), float32, ``[cos, sin]`` order.

    ``freqs_i = exp(-ln(max_period) * i / half)`` for ``i < half = dim // 2``. Everything is done
    in float32 in the official order (arange, scale, divide, exp, multiply by ``float32(t)``),
    which is what the official embedding gives to ~1e-7 (NOTES §8 and Clarifications).
    """
    half = dim // 2
    idx = torch.arange(half, dtype=torch.float32, device=t.device)
    freqs = torch.exp(-math.log(max_period) * idx / half)
    args = t.reshape(-1, 1).to(torch.float32) * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=-1)
    return emb


class GroupNorm32(nn.GroupNorm):
    """GroupNorm computed in float32 whatever the input dtype (keeps reduced precision stable)."""

    def forward(self, x: Tensor) -> Tensor:
        weight = None if self.weight is None else self.weight.float()
        bias = None if self.bias is None else self.bias.float()
        return F.group_norm(x.float(), self.num_groups, weight, bias, self.eps).to(x.dtype)


def _norm(channels: int) -> GroupNorm32:
    return GroupNorm32(GROUPS, channels, eps=GN_EPS)


class ResBlock(nn.Module):
    """ADM residual block with an additive timestep embedding (no scale-shift norm).

    ``h = conv(SiLU(GN(x))) + Linear(SiLU(emb)); out = skip(x) + conv(SiLU(GN(h)))``; the skip is
    the identity or a 1x1 conv when the width changes.
    """

    def __init__(self, channels: int, emb_channels: int, out_channels: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.in_layers = nn.Sequential(
            _norm(channels), nn.SiLU(), nn.Conv2d(channels, out_channels, 3, padding=1)
        )
        self.emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(emb_channels, out_channels))
        self.out_layers = nn.Sequential(
            _norm(out_channels),
            nn.SiLU(),
            nn.Dropout(dropout),
            nn.Conv2d(out_channels, out_channels, 3, padding=1),
        )
        self.skip_connection: nn.Module = (
            nn.Identity() if channels == out_channels else nn.Conv2d(channels, out_channels, 1)
        )

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        h = self.in_layers(x)
        h = h + self.emb_layers(emb).to(h.dtype)[:, :, None, None]
        h = self.out_layers(h)
        return self.skip_connection(x) + h


class Downsample(nn.Module):
    """3x3 conv, stride 2, padding 1 (``conv_resample=True``)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.op = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.op(x)


class TimestepEmbedSequential(nn.Sequential):
    """A Sequential that hands the timestep embedding to the ResBlocks it holds."""

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:  # type: ignore[override]
        for layer in self:
            x = layer(x, emb) if isinstance(layer, ResBlock) else layer(x)
        return x


class UNet(nn.Module):
    """LDMVFI's eps-prediction U-Net with MaxViT attention (``openaimodel.UNetModel``)."""

    def __init__(self, cfg: UNetConfig) -> None:
        super().__init__()
        self.cfg = cfg
        mc = cfg.model_channels
        emb_dim = cfg.time_embed_dim
        levels = len(cfg.channel_mult)

        def attention(ch: int) -> MaxAttentionBlock:
            return MaxAttentionBlock(ch, cfg.num_head_channels, cfg.window)

        self.time_embed = nn.Sequential(nn.Linear(mc, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))

        self.input_blocks = nn.ModuleList(
            [TimestepEmbedSequential(nn.Conv2d(cfg.in_channels, mc, 3, padding=1))]
        )
        skip_chans = [mc]
        ch, ds = mc, 1
        for level, mult in enumerate(cfg.channel_mult):
            for _ in range(cfg.num_res_blocks):
                layers: list[nn.Module] = [ResBlock(ch, emb_dim, mult * mc)]
                ch = mult * mc
                if ds in cfg.attention_resolutions:
                    layers.append(attention(ch))
                self.input_blocks.append(TimestepEmbedSequential(*layers))
                skip_chans.append(ch)
            if level != levels - 1:
                self.input_blocks.append(TimestepEmbedSequential(Downsample(ch)))
                skip_chans.append(ch)
                ds *= 2

        self.middle_block = TimestepEmbedSequential(
            ResBlock(ch, emb_dim, ch), attention(ch), ResBlock(ch, emb_dim, ch)
        )

        self.output_blocks = nn.ModuleList()
        for level, mult in reversed(list(enumerate(cfg.channel_mult))):
            for i in range(cfg.num_res_blocks + 1):
                layers = [ResBlock(ch + skip_chans.pop(), emb_dim, mult * mc)]
                ch = mult * mc
                if ds in cfg.attention_resolutions:
                    layers.append(attention(ch))
                if level and i == cfg.num_res_blocks:
                    layers.append(Upsample(ch))
                    ds //= 2
                self.output_blocks.append(TimestepEmbedSequential(*layers))

        self.out = nn.Sequential(_norm(ch), nn.SiLU(), nn.Conv2d(mc, cfg.out_channels, 3, padding=1))

    def check_latent_size(self, height: int, width: int) -> None:
        """Raise ValueError unless both latent sides are multiples of ``cfg.latent_multiple``."""
        m = self.cfg.latent_multiple
        if height % m or width % m:
            raise ValueError(
                f"latent size {height}x{width} is not a multiple of {m} (the U-Net downsamples "
                f"{len(self.cfg.channel_mult) - 1}x and attends in {self.cfg.window}x{self.cfg.window} "
                f"windows); pad the frames so that the latent is a multiple of {m}"
            )

    def forward(self, x: Tensor, t: Tensor, cond: Tensor) -> Tensor:
        """Predict eps from the noisy latent ``x`` (B,3,h,w), timesteps ``t`` (B,) and ``cond`` (B,6,h,w)."""
        if x.ndim != 4 or cond.ndim != 4 or x.shape[0] != cond.shape[0] or x.shape[2:] != cond.shape[2:]:
            raise ValueError(f"x {tuple(x.shape)} and cond {tuple(cond.shape)} must be (B,C,h,w) of one size")
        if x.shape[1] + cond.shape[1] != self.cfg.in_channels:
            raise ValueError(
                f"x has {x.shape[1]} and cond {cond.shape[1]} channels; the U-Net takes "
                f"{self.cfg.in_channels} in total"
            )
        self.check_latent_size(x.shape[2], x.shape[3])
        if t.ndim == 0:
            t = t.expand(x.shape[0])
        if t.shape != (x.shape[0],):
            raise ValueError(f"t must have shape ({x.shape[0]},), got {tuple(t.shape)}")

        t_emb = timestep_embedding(t, self.cfg.model_channels)
        emb = self.time_embed(t_emb.to(next(self.time_embed.parameters()).dtype))

        h = torch.cat([x, cond], dim=1)
        skips: list[Tensor] = []
        for block in self.input_blocks:
            h = block(h, emb)
            skips.append(h)
        h = self.middle_block(h, emb)
        for block in self.output_blocks:
            h = block(torch.cat([h, skips.pop()], dim=1), emb)
        return self.out(h)
