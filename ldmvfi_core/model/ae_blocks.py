# SPDX-License-Identifier: MIT
"""Convolutional building blocks of the VQ-FIGAN autoencoder (no time embedding).

These follow the taming-transformers / LDM autoencoder conventions used by LDMVFI:
GroupNorm with 32 groups and eps 1e-6, swish ``x * sigmoid(x)``, an asymmetric
(right/bottom) zero pad before the stride-2 downsampling conv, and nearest-neighbour upsampling
followed by a 3x3 conv. Attribute names match the official checkpoint keys.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

GROUPS = 32
GN_EPS = 1e-6


def group_norm(channels: int) -> nn.GroupNorm:
    """``Normalize(C)`` of the official code: GroupNorm(32, C, eps=1e-6, affine)."""
    return nn.GroupNorm(num_groups=GROUPS, num_channels=channels, eps=GN_EPS, affine=True)


def swish(x: Tensor) -> Tensor:
    """``x * sigmoid(x)`` (SiLU). In inference it overwrites ``x``: at 4K a full-resolution
    64-channel map is 2.3 GB, and the temporaries of the written-out product were the peak."""
    if torch.is_grad_enabled():
        return x * torch.sigmoid(x)
    return F.silu(x, inplace=True)


class ResnetBlock(nn.Module):
    """Pre-activation residual block ``skip(x) + conv(swish(GN(conv(swish(GN(x))))))``.

    ``skip`` is the identity, or a 1x1 ``nin_shortcut`` conv when the channel count changes.
    """

    def __init__(self, in_channels: int, out_channels: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.norm1 = group_norm(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.norm2 = group_norm(out_channels)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.nin_shortcut: nn.Module | None = (
            nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else None
        )

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv1(swish(self.norm1(x)))
        h = self.conv2(self.dropout(swish(self.norm2(h))))
        skip = x if self.nin_shortcut is None else self.nin_shortcut(x)
        if torch.is_grad_enabled():
            return skip + h
        return h.add_(skip)  # inference: no extra full-resolution buffer


class Downsample(nn.Module):
    """Halve the resolution: zero-pad right/bottom by one pixel, then 3x3 conv, stride 2, no padding."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=0)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.pad(x, (0, 1, 0, 1), mode="constant", value=0.0))


class Upsample(nn.Module):
    """Double the resolution: nearest-neighbour x2, then 3x3 conv (padding 1)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))
