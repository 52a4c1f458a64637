# SPDX-License-Identifier: MIT
"""Full-reference image quality on 8-bit RGB: PSNR and SSIM, numpy only.

Conventions (the ones of ``data/eval/README.md`` and of most frame-interpolation papers):

* **PSNR**: ``-10 log10(MSE / 255^2 + 1e-8)`` with the MSE over every pixel and all three RGB
  channels of the 8-bit images. The ``1e-8`` caps identical images at 80 dB instead of infinity.
  A set's score is the mean of the per-image PSNRs (not the PSNR of the pooled MSE).
* **SSIM** (Wang, Bovik, Sheikh, Simoncelli, IEEE TIP 2004): Gaussian 11x11 window, sigma 1.5,
  K1 = 0.01, K2 = 0.03, L = 255, population (1/N) statistics, computed on each RGB channel
  separately over the "valid" positions (windows wholly inside the image, as the reference MATLAB
  ``ssim_index``), and the three channel means averaged. This equals
  ``skimage.metrics.structural_similarity(..., gaussian_weights=True, sigma=1.5,
  use_sample_covariance=False, data_range=255, channel_axis=-1)``. Some papers score the luma
  (Y of YCbCr) channel only, which gives different (usually higher) numbers; LDMVFI's own tables
  also report a "3-D" SSIM over the RGB volume. Neither is what this module computes.
"""

from __future__ import annotations

import numpy as np

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03
PEAK = 255.0
PSNR_EPS = 1e-8


def _check_pair(pred: np.ndarray, gt: np.ndarray) -> None:
    if pred.shape != gt.shape:
        raise ValueError(f"prediction {pred.shape} and ground truth {gt.shape} differ in size")
    if gt.ndim != 3 or gt.shape[2] != 3:
        raise ValueError(f"expected H x W x 3 RGB images, got shape {gt.shape}")
    for name, a in (("prediction", pred), ("ground truth", gt)):
        if a.dtype != np.uint8:
            raise ValueError(f"{name} must be uint8 (8-bit), got {a.dtype}")


def psnr(pred_u8: np.ndarray, gt_u8: np.ndarray) -> float:
    """PSNR in dB of two H x W x 3 uint8 images (MSE over all pixels and channels, peak 255)."""
    _check_pair(pred_u8, gt_u8)
    diff = pred_u8.astype(np.float64) - gt_u8.astype(np.float64)
    mse = float(np.mean(diff * diff))
    return float(-10.0 * np.log10(mse / PEAK**2 + PSNR_EPS))


def gaussian_window(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> np.ndarray:
    """The normalised 1-D Gaussian taps; the 2-D window is their outer product."""
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    taps = np.exp(-(x * x) / (2.0 * sigma * sigma))
    return taps / taps.sum()


def _filter_valid(image: np.ndarray, taps: np.ndarray) -> np.ndarray:
    """Separable correlation of (H, W, C) with ``taps`` along H and W, valid positions only."""
    n = len(taps)
    h, w = image.shape[:2]
    rows = sum(taps[i] * image[i : h - n + 1 + i] for i in range(n))
    return sum(taps[i] * rows[:, i : w - n + 1 + i] for i in range(n))  # type: ignore[no-any-return]


def ssim(pred_u8: np.ndarray, gt_u8: np.ndarray) -> float:
    """Mean SSIM of two H x W x 3 uint8 images: per RGB channel, then averaged (see module doc)."""
    _check_pair(pred_u8, gt_u8)
    if min(gt_u8.shape[:2]) < SSIM_WINDOW:
        raise ValueError(f"image {gt_u8.shape[1]}x{gt_u8.shape[0]} is smaller than the "
                         f"{SSIM_WINDOW}x{SSIM_WINDOW} SSIM window")
    x = pred_u8.astype(np.float64)
    y = gt_u8.astype(np.float64)
    taps = gaussian_window()
    mu_x, mu_y = _filter_valid(x, taps), _filter_valid(y, taps)
    var_x = _filter_valid(x * x, taps) - mu_x * mu_x
    var_y = _filter_valid(y * y, taps) - mu_y * mu_y
    cov = _filter_valid(x * y, taps) - mu_x * mu_y
    c1, c2 = (SSIM_K1 * PEAK) ** 2, (SSIM_K2 * PEAK) ** 2
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    # Mean per channel, then over channels: equal-size channels make this the plain map mean.
    return float(ssim_map.mean(axis=(0, 1)).mean())
