# SPDX-License-Identifier: MIT
"""Edge-aware smoothness of the decoder's tap offsets (stage 1, ours, off by default).

Why: on Middlebury's Urban2 (22 px of camera motion) the warp puts every tap roughly in place,
but straight edges come out wavy: neighbouring pixels take offsets that disagree by fractions of
a pixel. Flow networks trained without ground truth regularise their output the same way: the
first derivatives of the displacement are penalised, less where the image itself has an edge
(weight ``exp(-edge_weight * |dI|)``), so motion boundaries stay sharp.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


def offset_smoothness(offsets: Sequence[Tensor], image: Tensor, edge_weight: float = 10.0) -> Tensor:
    """Mean edge-weighted |d/dx| + |d/dy| (px per px) of every offset map.

    ``offsets``: maps (B, K^2, H, W) in pixels (e.g. both neighbours' vertical and horizontal
    tap offsets); ``image`` (B, C, H, W) in [-1, 1], the frame whose edges excuse a jump (the
    middle frame). Returns a float32 scalar: a constant field gives 0, a ramp of slope ``a``
    along one axis on a flat image gives ``a``."""
    grey = (image.float() + 1.0) * 0.5
    edge_x = torch.exp(-edge_weight * (grey[..., :, 1:] - grey[..., :, :-1]).abs().mean(dim=1, keepdim=True))
    edge_y = torch.exp(-edge_weight * (grey[..., 1:, :] - grey[..., :-1, :]).abs().mean(dim=1, keepdim=True))
    total = image.new_zeros((), dtype=torch.float32)
    for field in offsets:
        f = field.float()
        total = total + (edge_x * (f[..., :, 1:] - f[..., :, :-1]).abs()).mean()
        total = total + (edge_y * (f[..., 1:, :] - f[..., :-1, :]).abs()).mean()
    return total / len(offsets)
