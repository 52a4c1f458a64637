# SPDX-License-Identifier: MIT
"""Hard scene-cut detection between two source frames.

The retimer never interpolates across a hard cut: between the two sides of a cut it holds the
nearest source frame and reports it. Frames are compared as the model sees them: display-referred
RGB, H x W x >=3 floats in [0, 1] (after the transfer), any size, both frames the same size. Only
channels 0-2 are used. Pixels are averaged as given, then clipped to [0, 1]; a NaN or
infinite pixel only spoils its own thumbnail cell.

Method (``cut_score``):

1. Thumbnail: each frame is area-averaged to at most ``THUMB_WIDTH`` (128) pixels wide, keeping
   the aspect ratio. This removes grain, compression noise and fine texture, and makes the cost
   independent of the plate size (~0.1 s for a pair of 4K frames).
2. Brightness: each thumbnail is scaled to mean luma ``REFERENCE_LUMA`` (gain limited to
   [1/4, 4]), so an exposure change or a flash is not a cut, and display-range content scores
   the same under either transfer (``hdr`` puts display white at 0.8, ``srgb`` at 1.0).
3. Pan: the whole-pixel shift within +-``MAX_SHIFT`` thumbnail pixels (+-6% of the width) with
   the smallest mean absolute difference aligns the two; the rest looks at the overlap only.
4. The overlap is split into a ``GRID`` x ``GRID`` (4 x 4) grid of blocks. Per block:
   ``h`` = 1 - intersection of the two blocks' joint RGB histograms (4 x 4 x 4 bins), blind to
   where things are inside the block (motion moves pixels but keeps colours); ``m`` = mean
   absolute difference, which sees a new layout in the same colours (two grey street shots).
   A block counts as changed only when both do: ``sqrt(h * m)``.
5. Score = mean of the lower half of the block scores. A cut replaces the whole frame, so even
   the half that changed least changed a lot; a vehicle or a character crossing the frame changes
   some blocks only.

The score is symmetric, 0 for identical frames and at most 1. ``is_cut`` compares it with
``CUT_THRESHOLD``.

Calibration (``python bench/cut_detection.py``; real footage decoded with PyAV to RGB in [0, 1]):

* ``bikes.mp4`` (640x272, 249 pairs): the 5 hard cuts score 29|30 0.318, 75|76 0.277,
  136|137 0.244, 186|187 0.240, 241|242 0.232. Highest non-cut 0.089 (100|101, a blurred
  vehicle filling the foreground; 95-102 all <= 0.089); the fast pan 63-75 at most 0.061.
* ``bigbuckbunny.mp4`` (1280x720, 131 pairs, large character motion): highest 0.013.
* ``vtest.avi`` (768x576, 794 pairs): highest 0.008.
* Extra negatives, ``visp_cube.mpeg`` / ``visp_mbt_cube.mp4`` (high-contrast texture, hand
  occlusion): highest 0.030 / 0.004.

``CUT_THRESHOLD`` = 0.144 is the geometric middle of the gap between the highest non-cut score
(0.089) and the lowest cut score (0.232): x1.62 above the one, /1.61 below the other. All 5 cuts
are found and no pair of the five clips is a false cut. Known limits: a cut between two shots of
one scene with the same colours and layout (a jump cut, a cut on a locked-off camera) scores low;
a whip pan faster than 6% of the width per frame relies on its motion blur keeping the colours.
"""

from __future__ import annotations

import itertools

import numpy as np
import torch
from torch import Tensor

THUMB_WIDTH = 128
GRID = 4
BINS = 4
MAX_SHIFT = 8  # thumbnail pixels: +-6% of the frame width
MAX_GAIN = 4.0
REFERENCE_LUMA = 0.45  # mean luma of typical sRGB-encoded video (0.39-0.49 on the calibration clips)
CUT_THRESHOLD = 0.144

_LUMA = np.array([0.2126, 0.7152, 0.0722])
_DARK = 1e-3  # mean luma floor, so that black frames do not divide by zero


def _edges(n: int, parts: int) -> np.ndarray:
    return np.linspace(0, n, parts + 1).round().astype(np.intp)


def _thumbnail(frame: np.ndarray, width: int) -> np.ndarray:
    """Area-average ``frame``'s RGB to at most ``width`` pixels wide (float64, clipped to [0, 1])."""
    rgb = frame[..., :3]
    ys, xs = _thumbnail_edges(rgb.shape[0], rgb.shape[1], width)
    # Row bands summed one at a time: contiguous reads, no full-size copy of a 4K plate.
    rows = np.stack([rgb[y0:y1].sum(axis=0, dtype=np.float64) for y0, y1 in itertools.pairwise(ys)])
    return _cell_means(np.add.reduceat(rows, xs[:-1], axis=1), ys, xs)


def _thumbnail_edges(h: int, w: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    tw = min(width, w)
    th = min(h, max(1, round(h * tw / w)))
    return _edges(h, th), _edges(w, tw)


def _cell_means(sums: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """Per-cell sums over the ``ys`` x ``xs`` grid -> means, clipped to [0, 1]."""
    mean = sums / np.outer(np.diff(ys), np.diff(xs))[..., None]
    # Clip after averaging; a NaN or +-inf pixel only spoils its own thumbnail cell.
    return np.clip(np.nan_to_num(mean, nan=0.0, posinf=1.0, neginf=0.0), 0.0, 1.0)


def thumbnail(frame: np.ndarray | Tensor, width: int = THUMB_WIDTH) -> np.ndarray:
    """The thumbnail ``cut_score`` compares (H x W x >=3 frame in, float64 numpy out). A tensor is
    averaged on its own device and only the thumbnail comes back: the retimer scans a plate for
    cuts on the GPU (session 16: on the CPU the scan took ~0.19 s a 1080p frame before the first
    frame was rendered, as long as the rendering itself)."""
    if not isinstance(frame, Tensor):
        return _thumbnail(np.asarray(frame), width)
    if frame.ndim != 3 or frame.shape[2] < 3:
        raise ValueError(f"frame must be H x W x >=3 RGB, got shape {tuple(frame.shape)}")
    ys, xs = _thumbnail_edges(frame.shape[0], frame.shape[1], width)
    rgb = frame[..., :3]
    rows = torch.stack([rgb[y0:y1].sum(dim=0, dtype=torch.float64) for y0, y1 in itertools.pairwise(ys.tolist())])
    columns = torch.from_numpy(np.repeat(np.arange(len(xs) - 1), np.diff(xs))).to(frame.device)
    sums = rows.new_zeros((rows.shape[0], len(xs) - 1, 3)).index_add_(1, columns, rows)
    return _cell_means(sums.cpu().numpy(), ys, xs)


def _normalise_brightness(thumb: np.ndarray) -> np.ndarray:
    """Scale to mean luma ``REFERENCE_LUMA`` (gain limited to [1/MAX_GAIN, MAX_GAIN])."""
    luma = max(float((thumb @ _LUMA).mean()), _DARK)
    return thumb * float(np.clip(REFERENCE_LUMA / luma, 1.0 / MAX_GAIN, MAX_GAIN))


def _check(a: np.ndarray, b: np.ndarray) -> None:
    for name, x in (("a", a), ("b", b)):
        if not np.issubdtype(x.dtype, np.floating):
            raise TypeError(f"frame {name} must be float RGB in [0, 1], got dtype {x.dtype}")
        if x.ndim != 3 or x.shape[2] < 3 or x.shape[0] < 1 or x.shape[1] < 1:
            raise ValueError(f"frame {name} must be H x W x >=3 RGB, got shape {x.shape}")
    if a.shape[:2] != b.shape[:2]:
        raise ValueError(f"frames differ in size: {a.shape[1]}x{a.shape[0]} vs {b.shape[1]}x{b.shape[0]}")


def _overlap(t: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """The part of ``t`` that overlaps ``t`` moved by (dy, dx) pixels."""
    h, w = t.shape[:2]
    return t[max(0, dy) : h + min(0, dy), max(0, dx) : w + min(0, dx)]


def _align(ta: np.ndarray, tb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Overlapping parts of ``ta`` and ``tb`` under the whole-pixel shift that matches them best.

    Brute force over |dy|, |dx| <= ``MAX_SHIFT`` (and a quarter of the thumbnail), nearest shifts
    first; a farther shift must lower the mean absolute difference by more than rounding noise, so
    ties keep the smaller shift (and ``cut_score`` stays symmetric).
    """
    h, w = ta.shape[:2]
    r = min(MAX_SHIFT, h // 4, w // 4)
    shifts = sorted(((dy, dx) for dy in range(-r, r + 1) for dx in range(-r, r + 1)),
                    key=lambda s: s[0] ** 2 + s[1] ** 2)
    best, best_mad = (0, 0), np.inf
    for dy, dx in shifts:
        mad = float(np.abs(_overlap(ta, dy, dx) - _overlap(tb, -dy, -dx)).mean())
        if mad < best_mad * (1.0 - 1e-9):
            best, best_mad = (dy, dx), mad
    return _overlap(ta, *best), _overlap(tb, -best[0], -best[1])


def _block_scores(ta: np.ndarray, tb: np.ndarray) -> np.ndarray:
    """``sqrt(h * m)`` per block of a ``GRID`` x ``GRID`` grid (fewer blocks on tiny thumbnails)."""
    th, tw = ta.shape[:2]
    ys, xs = _edges(th, min(GRID, th)), _edges(tw, min(GRID, tw))
    block_y = np.repeat(np.arange(len(ys) - 1), np.diff(ys))
    block_x = np.repeat(np.arange(len(xs) - 1), np.diff(xs))
    block = (block_y[:, None] * (len(xs) - 1) + block_x[None, :]).ravel()
    n_blocks = (len(ys) - 1) * (len(xs) - 1)
    sizes = np.bincount(block, minlength=n_blocks).astype(np.float64)

    def histograms(t: np.ndarray) -> np.ndarray:  # joint RGB, BINS^3 bins, per block, sums to 1
        q = np.minimum((np.clip(t, 0.0, 1.0) * BINS).astype(np.intp), BINS - 1)
        colour = ((q[..., 0] * BINS + q[..., 1]) * BINS + q[..., 2]).ravel()
        counts = np.bincount(block * BINS**3 + colour, minlength=n_blocks * BINS**3)
        return counts.reshape(n_blocks, BINS**3) / sizes[:, None]

    h = np.clip(1.0 - np.minimum(histograms(ta), histograms(tb)).sum(axis=1), 0.0, 1.0)
    m = np.bincount(block, weights=np.abs(ta - tb).mean(axis=2).ravel(), minlength=n_blocks) / sizes
    return np.sqrt(h * np.clip(m, 0.0, 1.0))


def cut_score(a: np.ndarray, b: np.ndarray) -> float:
    """How much ``b`` looks like a different shot from ``a``: 0 (same) .. 1 (see module docstring).

    Args:
        a, b: display-referred frames, H x W x >=3 float (RGB in channels 0-2, nominally [0, 1]),
            the same H and W.

    Returns:
        The score; compare with ``CUT_THRESHOLD`` (or use ``is_cut``).
    """
    a, b = np.asarray(a), np.asarray(b)
    _check(a, b)
    return thumbnail_cut_score(_thumbnail(a, THUMB_WIDTH), _thumbnail(b, THUMB_WIDTH))


def thumbnail_cut_score(ta: np.ndarray, tb: np.ndarray) -> float:
    """``cut_score`` of two frames from their ``thumbnail``s (made with the default width)."""
    if ta.shape != tb.shape:
        raise ValueError(f"thumbnails differ in size: {ta.shape} vs {tb.shape}")
    per_block = np.sort(_block_scores(*_align(_normalise_brightness(ta), _normalise_brightness(tb))))
    return float(per_block[: max(1, per_block.size // 2)].mean())


def is_cut(a: np.ndarray, b: np.ndarray, threshold: float = CUT_THRESHOLD) -> bool:
    """True where ``a`` -> ``b`` is a hard cut: ``cut_score(a, b) > threshold``."""
    return cut_score(a, b) > threshold


def thumbnails_are_cut(ta: np.ndarray, tb: np.ndarray, threshold: float = CUT_THRESHOLD) -> bool:
    """``is_cut`` of two frames from their ``thumbnail``s (the retimer makes them on its device)."""
    return thumbnail_cut_score(ta, tb) > threshold
