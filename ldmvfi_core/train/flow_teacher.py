# SPDX-License-Identifier: MIT
"""A classical optical-flow teacher for the decoder's offsets (stage 1, optional; ours, not official).

Why: trained only through the photometric loss, VQ-FIGAN's decoder learns motion very slowly.
A bilinear sample's gradient only sees the pixels next to it, so for a displacement of more than
a pixel or two the offsets get no useful signal and the decoder settles on frame averaging
(session 2: 4,600 steps and still near averaging). IFRNet (Kong et al. 2022) trains its flow
with a distillation loss from a pretrained flow network for the same reason. Here the teacher
is OpenCV's DIS flow, computed on the CPU in the data-loader workers after augmentation, from
the true middle frame to each neighbour:

    middle(p) ~ neighbour(p + F(p))

The loss pulls every tap's offset of the neighbour's warp towards ``F + shift``, where ``shift``
cancels the op's built-in tap position (with zero offsets the centre tap of a K x K kernel reads
``p + 1 - K // 2``; see ``ops/dsepconv_torch.py``), so the K x K taps sit around ``p + F``. Each
pixel is weighted by how well the teacher explains the middle frame there
(``1 - |middle - warp(neighbour, F)| / tolerance``, clipped to [0, 1]): occlusions and teacher
failures get no weight. The term only guides: the weight can be switched off after a number of
steps (``flow_teacher_until``), and inference is unchanged.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from ldmvfi_core.eval.baselines import backward_warp
from ldmvfi_core.train.data import TripletDataset, to_tensor

# Warp error (mean over RGB, [0, 1] units) at which the teacher's weight reaches zero.
WARP_TOLERANCE = 0.1


def centre_tap_shift(kernel_size: int) -> int:
    """Offset that puts the centre tap of a ``kernel_size`` dsepconv on the output pixel itself."""
    return kernel_size // 2 - 1


class DisFlow:
    """OpenCV DIS optical flow (medium preset), created lazily: one per process, not picklable."""

    def __init__(self) -> None:
        self._dis: Any = None

    def __getstate__(self) -> dict[str, Any]:
        return {"_dis": None}

    def __call__(self, src_gray: np.ndarray, dst_gray: np.ndarray) -> np.ndarray:
        """(H, W, 2) float32 flow ``(dx, dy)`` with ``src(p) ~ dst(p + flow(p))``."""
        import cv2

        if self._dis is None:
            cv2.setNumThreads(1)  # data-loader workers already run in parallel
            self._dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
        return self._dis.calc(src_gray, dst_gray, None)


def teacher_for(triplet: np.ndarray, flow: DisFlow) -> np.ndarray:
    """(3, H, W, 3) uint8 triplet -> (2, 3, H, W) float32: for frame0 and frame2, the teacher's
    vertical and horizontal displacement (px) from the middle frame, and its weight in [0, 1]."""
    import cv2

    frames = [np.ascontiguousarray(f) for f in triplet]
    grays = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames]
    middle = frames[1].astype(np.float32) / 255.0
    out = np.empty((2, 3, *triplet.shape[1:3]), np.float32)
    for slot, n in enumerate((0, 2)):
        f = flow(grays[1], grays[n])
        warped = backward_warp(frames[n].astype(np.float32) / 255.0, f)
        error = np.abs(warped - middle).mean(axis=2)
        out[slot, 0] = f[..., 1]
        out[slot, 1] = f[..., 0]
        out[slot, 2] = np.clip(1.0 - error / WARP_TOLERANCE, 0.0, 1.0)
    return out


class FlowTeacherDataset(Dataset[tuple[Tensor, Tensor]]):
    """``TripletDataset`` items with their teacher: ``(frames (3, 3, H, W), teacher (2, 3, H, W))``."""

    def __init__(self, base: TripletDataset) -> None:
        self.base = base
        self.flow = DisFlow()

    def set_epoch(self, epoch: int) -> None:
        self.base.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        triplet = self.base.triplet(index)
        return to_tensor(triplet), torch.from_numpy(teacher_for(triplet, self.flow))


def flow_teacher_loss(offsets0: tuple[Tensor, Tensor], offsets1: tuple[Tensor, Tensor], teacher: Tensor,
                      kernel_size: int) -> Tensor:
    """Weighted L1 (px) between every tap's offsets and the teacher's displacement + tap shift.

    ``offsets0/1``: ``(offset_x, offset_y)`` = (vertical, horizontal) of the warp of frame0 / the
    other neighbour, each (B, K^2, H, W); ``teacher`` (B, 2, 3, H, W) from :func:`teacher_for`.
    Returns the weighted mean over pixels, taps and both neighbours (float32)."""
    shift = float(centre_tap_shift(kernel_size))
    total = teacher.new_zeros((), dtype=torch.float32)
    weight_sum = teacher.new_zeros((), dtype=torch.float32)
    for slot, (vertical, horizontal) in enumerate((offsets0, offsets1)):
        t = teacher[:, slot].float()
        weight = t[:, 2:3]
        error = (vertical.float() - (t[:, 0:1] + shift)).abs() + (horizontal.float() - (t[:, 1:2] + shift)).abs()
        total = total + (error * weight).mean(dim=1).sum()
        weight_sum = weight_sum + weight.sum()
    return total / weight_sum.clamp_min(1.0)
