# SPDX-License-Identifier: MIT
"""Triplet augmentation: one random crop, flip, transpose, time order and colour change for all three frames.

Every geometric and colour change is drawn once per triplet and applied to frame0, frame1 and
frame2 alike, so the three stay aligned and the middle frame stays the true middle. Time reversal
swaps frame0 and frame2 (the middle of a reversed motion is the same frame). numpy only.
"""

from __future__ import annotations

import math

import numpy as np

Size = tuple[int, int]  # (height, width)

# Rec. 709 luma weights: the grey axis for contrast and saturation.
_LUMA = np.array([0.2126, 0.7152, 0.0722], np.float32)


def check_triplet(triplet: np.ndarray) -> np.ndarray:
    """Return ``triplet`` as an array after checking it is (3, H, W, 3) uint8."""
    triplet = np.asarray(triplet)
    if triplet.dtype != np.uint8 or triplet.ndim != 4 or triplet.shape[0] != 3 or triplet.shape[3] != 3:
        raise ValueError(f"a triplet is (3, H, W, 3) uint8, got {triplet.shape} {triplet.dtype}")
    return triplet


def crop(triplet: np.ndarray, top: int, left: int, size: Size) -> np.ndarray:
    """The same (height, width) window of all three frames."""
    h, w = size
    if top < 0 or left < 0 or top + h > triplet.shape[1] or left + w > triplet.shape[2]:
        raise ValueError(f"crop {w}x{h} at ({left}, {top}) outside a {triplet.shape[2]}x{triplet.shape[1]} triplet")
    return triplet[:, top : top + h, left : left + w]


def centre_crop(triplet: np.ndarray, size: Size) -> np.ndarray:
    """The central (height, width) window of all three frames (evaluation: no augmentation)."""
    triplet = check_triplet(triplet)
    return np.ascontiguousarray(crop(triplet, (triplet.shape[1] - size[0]) // 2,
                                     (triplet.shape[2] - size[1]) // 2, size))


def colour_matrix(rng: np.random.Generator, *, brightness: float = 0.1, contrast: float = 0.1,
                  saturation: float = 0.15, hue: float = 0.03, mean_luma: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """A random affine colour change ``rgb' = A @ rgb + b`` on [0, 1] RGB.

    Brightness scales by 1 +- ``brightness``; contrast scales distances from ``mean_luma`` by
    1 +- ``contrast``; saturation scales distances from the grey axis by 1 +- ``saturation``; hue
    rotates colours about the grey axis by up to ``hue`` turns.
    """
    b = 1.0 + rng.uniform(-brightness, brightness)
    c = 1.0 + rng.uniform(-contrast, contrast)
    s = 1.0 + rng.uniform(-saturation, saturation)
    angle = 2.0 * math.pi * rng.uniform(-hue, hue)
    grey = np.outer(np.ones(3), _LUMA).astype(np.float64)  # rgb -> (luma, luma, luma)
    saturate = grey + s * (np.eye(3) - grey)
    # Rotation about the (1, 1, 1) axis (Rodrigues): hue shift that keeps greys grey.
    k = np.array([[0.0, -1.0, 1.0], [1.0, 0.0, -1.0], [-1.0, 1.0, 0.0]]) / math.sqrt(3.0)
    rotate = np.eye(3) + math.sin(angle) * k + (1.0 - math.cos(angle)) * (k @ k)
    a = b * c * (rotate @ saturate)
    offset = np.full(3, b * (1.0 - c) * mean_luma)
    return a.astype(np.float32), offset.astype(np.float32)


def apply_colour(triplet: np.ndarray, matrix: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """``matrix @ rgb + offset`` on [0, 1] RGB of every pixel, back to uint8."""
    x = triplet.astype(np.float32) * (1.0 / 255.0)
    y = x @ matrix.T + offset
    return np.clip(np.rint(y * 255.0), 0, 255).astype(np.uint8)


def add_mattes(triplet: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Black letterbox bars (top and bottom) or pillarbox bars (left and right), the same in all
    three frames, as in plates with an extraction matte or a letterboxed delivery.

    Each bar is 0 to 1/6 of the frame (at least one of them 4 px or more); code value 0 exactly.
    Why: an in-between must keep such bars at 0. Models trained without them lifted the bars of
    letterboxed eval clips by 1-3 code values, and SSIM on those flat black bands punishes that hard.
    """
    out = np.array(triplet)  # a copy: the input may be a view of the cache
    pillars = rng.random() < 0.25
    extent = out.shape[2] if pillars else out.shape[1]
    limit = max(4, extent // 6)
    first, second = int(rng.integers(4, limit + 1)), int(rng.integers(0, limit + 1))
    if rng.random() < 0.5:
        first, second = second, first
    if pillars:
        out[:, :, :first] = 0
        out[:, :, extent - second:] = 0
    else:
        out[:, :first] = 0
        out[:, extent - second:] = 0
    return out


def augment(triplet: np.ndarray, rng: np.random.Generator, *, size: Size = (256, 256), flips: bool = True,
            transpose: bool = True, time_reverse: bool = True, colour: bool = True,
            mattes: float = 0.0) -> np.ndarray:
    """Randomly crop (to ``size``), flip, transpose, time-reverse and colour-jitter a triplet alike.

    Args:
        triplet: (3, H, W, 3) uint8, frame0, frame1 (middle), frame2; H, W at least ``size``.
        rng: the only source of randomness; the draws are in a fixed order, so the result is a
            function of the generator's state.
        size: output (height, width).
        flips: horizontal and vertical flips, each with probability 1/2.
        transpose: swap x and y with probability 1/2 (square ``size`` only).
        time_reverse: swap frame0 and frame2 with probability 1/2.
        colour: with probability 0.8, one ``colour_matrix`` change for all three frames.
        mattes: probability of black bars (``add_mattes``), put on after the colour change so
            they stay at 0. Drawn last, and only when non-zero, so the other draws (and the
            data of runs without mattes) are unchanged.

    Returns:
        (3, size[0], size[1], 3) uint8, contiguous.
    """
    triplet = check_triplet(triplet)
    h, w = size
    swap_xy = transpose and h == w and rng.random() < 0.5
    if triplet.shape[1] < h or triplet.shape[2] < w:
        raise ValueError(f"triplet {triplet.shape[2]}x{triplet.shape[1]} is smaller than the crop {w}x{h}")
    top = int(rng.integers(0, triplet.shape[1] - h + 1))
    left = int(rng.integers(0, triplet.shape[2] - w + 1))
    out = crop(triplet, top, left, size)
    if flips and rng.random() < 0.5:
        out = out[:, :, ::-1]
    if flips and rng.random() < 0.5:
        out = out[:, ::-1]
    if swap_xy:
        out = out.transpose(0, 2, 1, 3)
    if time_reverse and rng.random() < 0.5:
        out = out[::-1]
    if colour and rng.random() < 0.8:
        mean_luma = float((out[..., :3].reshape(-1, 3).mean(axis=0) @ _LUMA) / 255.0)
        matrix, offset = colour_matrix(rng, mean_luma=mean_luma)
        out = apply_colour(out, matrix, offset)
    if mattes > 0 and rng.random() < mattes:
        out = add_mattes(out, rng)
    return np.ascontiguousarray(out)
