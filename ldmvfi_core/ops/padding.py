# SPDX-License-Identifier: MIT
"""Pad frames to what the network needs, and crop back.

Two rules (``PaddingMode``):

* ``"reference"``: exactly the official ``VQFlowNetInterface.encode`` rule (NOTES.md §2): the
  multiple is 256 when the height is <= 256 and 512 otherwise, picked from the height alone and
  used for both axes, with PyTorch ``reflect`` padding at the bottom/right. Sizes the official
  code cannot run raise ``ValueError`` instead of crashing deep inside the network.
* ``"minimal"`` (default): pad each axis only up to the model's own multiple (256 px for the
  released and tiny configs: 32x downscale times the 8x8 attention window), also bottom/right.
  Reflection is repeated as often as needed, so every size down to 1x1 works.

Both are pure functions of the frame size: nothing is remembered between calls (the official
autoencoder keeps its pad amounts on ``self``, which breaks mixed sizes; NOTES.md §2.4).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

PaddingMode = Literal["minimal", "reference"]


@dataclass(frozen=True)
class Padding:
    """Rows/columns added at the bottom/right of a ``height`` x ``width`` frame."""

    height: int
    width: int
    bottom: int
    right: int

    @property
    def size(self) -> tuple[int, int]:
        """The frame's own (height, width), before padding."""
        return self.height, self.width

    @property
    def padded_size(self) -> tuple[int, int]:
        return self.height + self.bottom, self.width + self.right

    def pad(self, x: Tensor) -> Tensor:
        """Reflect-pad a (..., H, W) tensor at the bottom and right."""
        if x.shape[-2:] != self.size:
            raise ValueError(f"frame is {tuple(x.shape[-2:])}, padding was planned for {self.size}")
        if self.bottom:
            x = x.index_select(-2, reflect_indices(self.height, self.bottom, x.device))
        if self.right:
            x = x.index_select(-1, reflect_indices(self.width, self.right, x.device))
        return x

    def crop(self, x: Tensor) -> Tensor:
        """Undo ``pad`` on a (..., H_pad, W_pad) tensor."""
        return x[..., : self.height, : self.width]


def reflect_indices(size: int, pad: int, device: torch.device | None = None) -> Tensor:
    """Source indices for ``size + pad`` samples: identity, then mirror without repeating the edge.

    Equals PyTorch ``reflect`` padding when ``pad < size``; beyond that the mirror bounces back and
    forth (period ``2*(size-1)``), and a 1-pixel axis is simply repeated.
    """
    index = torch.arange(size + pad, device=device)
    if size == 1:
        return torch.zeros_like(index)
    period = 2 * (size - 1)
    folded = index % period
    return torch.where(folded < size, folded, period - folded)


def reference_padding(height: int, width: int) -> Padding:
    """The official rule (NOTES.md §2.1), refusing the sizes where the official code crashes."""
    multiple = 256 if height <= 256 else 512

    def amount(side: int) -> int:
        pad = 0 if side % multiple == 0 else multiple - side % multiple
        return 0 if pad == side else pad

    bottom, right = amount(height), amount(width)
    if bottom >= height or right >= width:
        raise ValueError(
            f"{height}x{width}: the official padding rule needs a reflect pad of "
            f"{bottom}x{right}, larger than the frame itself (the official code crashes here); "
            "use padding='minimal'"
        )
    latent = ((height + bottom) // 32, (width + right) // 32)
    if min(latent) < 8:
        raise ValueError(f"{height}x{width}: the official rule gives a {latent[0]}x{latent[1]} latent, "
                         "too small for the 8x8 attention windows; use padding='minimal'")
    return Padding(height, width, bottom, right)


def minimal_padding(height: int, width: int, multiple: int) -> Padding:
    """Pad each axis up to the next multiple of ``multiple`` (at least one multiple)."""
    if height < 1 or width < 1:
        raise ValueError(f"frame size {height}x{width} is empty")

    def amount(side: int) -> int:
        return -side % multiple

    return Padding(height, width, amount(height), amount(width))


def plan_padding(height: int, width: int, mode: PaddingMode, multiple: int) -> Padding:
    if mode == "reference":
        return reference_padding(height, width)
    if mode == "minimal":
        return minimal_padding(height, width, multiple)
    raise ValueError(f"unknown padding mode {mode!r}: use 'minimal' or 'reference'")
