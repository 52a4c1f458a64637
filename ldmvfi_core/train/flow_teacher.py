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

The per-tap term centres the tap grid on the flow but leaves the kernel's weights free: a kernel
that leans to one side samples off the flow all the same. ``flow_centroid_loss`` (``--flow-centroid``)
checks where each warp samples on average, its tap-weighted centroid (``warp_centroid``), against
the same teacher. On Middlebury the shipped model of session 9 samples 0.25-1.57 px (L1, mean
0.77) off DIS flow from the true middle frame, the flow baseline 0.11-0.78 (mean 0.30)
(``tools/detail_probe.py``), and its detail is misplaced rather than blurred.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from ldmvfi_core.eval.baselines import backward_warp
from ldmvfi_core.model.autoencoder import DecoderHeads
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


# |sum of tap weights| below which a warp takes no part in the centroid term: with almost no
# weight (e.g. frame0 where the visibility mask gives everything to frame1) its centroid is noise.
CENTROID_MIN_WEIGHT = 0.05


def warp_centroid(vertical: Tensor, horizontal: Tensor, offset_x: Tensor, offset_y: Tensor, mask: Tensor
                  ) -> tuple[Tensor, Tensor, Tensor]:
    """Where one dsepconv warp samples on average: ``(dy, dx, total)``, each (B, H, W).

    ``vertical``/``horizontal`` (B, K, H, W), ``offset_x``/``offset_y`` (vertical, horizontal) and
    ``mask`` (B, K^2, H, W): one neighbour's warp as the decoder's heads give it (``1 - mask`` for
    frame1). Tap (fy, fx) samples the unpadded frame at ``p + (offset_x + fy, offset_y + fx) -
    (K - 1) // 2 + 1 - K // 2`` (``ops/dsepconv_torch.py``, frames replicate-padded by K // 2) with
    weight ``vertical[fy] * horizontal[fx] * mask``; ``(dy, dx)`` is the weight-averaged
    displacement and ``total`` the summed weight. On a linear ramp the warp's output is exactly
    ``total * ramp(p + (dy, dx))``, so this is the displacement the warp applies.
    """
    k = vertical.shape[1]
    weights = (vertical[:, :, None] * horizontal[:, None, :]).flatten(1, 2) * mask
    base = 1 - (k - 1) // 2 - k // 2
    taps = torch.arange(k, device=vertical.device, dtype=weights.dtype)
    tap_y = taps.repeat_interleave(k).view(1, -1, 1, 1) + base
    tap_x = taps.repeat(k).view(1, -1, 1, 1) + base
    total = weights.sum(dim=1)
    safe = torch.where(total.abs() < 1e-6, torch.full_like(total, 1e-6), total)
    dy = (weights * (offset_x + tap_y)).sum(dim=1) / safe
    dx = (weights * (offset_y + tap_x)).sum(dim=1) / safe
    return dy, dx, total


def flow_centroid_loss(heads: DecoderHeads, teacher: Tensor) -> Tensor:
    """Weighted L1 (px) between each warp's centroid and the teacher's displacement.

    ``teacher`` (B, 2, 3, H, W) from :func:`teacher_for`. A pixel counts with the teacher's
    weight there times the warp's share of the blend (``|total|``, detached, clipped to 1);
    warps with ``|total| < CENTROID_MIN_WEIGHT`` do not count. Float32."""
    mask = heads.mask.float()
    warps = ((heads.heads0, mask), (heads.heads1, 1.0 - mask))
    total_error = teacher.new_zeros((), dtype=torch.float32)
    weight_sum = teacher.new_zeros((), dtype=torch.float32)
    for slot, ((vertical, horizontal, offset_x, offset_y), share) in enumerate(warps):
        dy, dx, total = warp_centroid(vertical.float(), horizontal.float(), offset_x.float(), offset_y.float(),
                                      share)
        t = teacher[:, slot].float()
        strength = total.detach().abs()
        weight = t[:, 2] * torch.where(strength < CENTROID_MIN_WEIGHT, torch.zeros_like(strength),
                                       strength.clamp(max=1.0))
        error = (dy - t[:, 0]).abs() + (dx - t[:, 1]).abs()
        total_error = total_error + (error * weight).sum()
        weight_sum = weight_sum + weight.sum()
    return total_error / weight_sum.clamp_min(1.0)
