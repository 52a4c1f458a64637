# SPDX-License-Identifier: MIT
"""SSIM as a stage-1 training term (ours, off by default): ``1 - SSIM`` with the eval's conventions.

Why: the session-8 model beats optical flow in PSNR on UCF101 and on some Middlebury triplets
(Urban3 +0.2 dB) yet loses to it in SSIM there. L1 + perceptual training leaves the in-between
slightly soft, which PSNR barely sees and SSIM's structure term does; frame-interpolation networks
commonly add an SSIM term for this. The conventions are those of ``eval/metrics.py`` (Gaussian
11x11 window, sigma 1.5, K1 0.01, K2 0.03, population statistics, per channel over the valid
positions, channels averaged), on frames mapped from [-1, 1] to [0, 1], so ``1 - ssim_loss`` is
the score the eval gives the same images (up to float32 and the eval's 8-bit rounding).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ldmvfi_core.eval.metrics import SSIM_K1, SSIM_K2, SSIM_SIGMA, SSIM_WINDOW, gaussian_window


def _filter_valid(x: Tensor, taps: Tensor) -> Tensor:
    """Separable Gaussian over H then W of each channel, valid positions only."""
    c = x.shape[1]
    x = F.conv2d(x, taps.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)
    return F.conv2d(x, taps.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)


def ssim_loss(pred: Tensor, target: Tensor) -> Tensor:
    """``1 - mean SSIM`` of (B, C, H, W) frames in [-1, 1], as a float32 scalar (0 for equal frames).

    Computed in float32 outside autocast: the variance terms are differences of squares and lose
    everything in bfloat16."""
    if pred.shape != target.shape or min(pred.shape[-2:]) < SSIM_WINDOW:
        raise ValueError(f"ssim_loss needs equal shapes of at least {SSIM_WINDOW} px a side, "
                         f"got {tuple(pred.shape)} and {tuple(target.shape)}")
    with torch.autocast(pred.device.type, enabled=False):
        x = (pred.float() + 1.0) * 0.5
        y = (target.float() + 1.0) * 0.5
        taps = torch.as_tensor(gaussian_window(SSIM_WINDOW, SSIM_SIGMA), dtype=torch.float32, device=x.device)
        mu_x, mu_y = _filter_valid(x, taps), _filter_valid(y, taps)
        var_x = _filter_valid(x * x, taps) - mu_x * mu_x
        var_y = _filter_valid(y * y, taps) - mu_y * mu_y
        cov = _filter_valid(x * y, taps) - mu_x * mu_y
        c1, c2 = SSIM_K1**2, SSIM_K2**2  # data range 1
        ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x * mu_x + mu_y * mu_y + c1) * (var_x + var_y + c2))
        return 1.0 - ssim_map.mean()
