# SPDX-License-Identifier: MIT
"""Synthetic test pictures shared by several test modules."""

from __future__ import annotations

import numpy as np


def value_noise(rng: np.random.Generator, height: int, width: int, cell: int = 16) -> np.ndarray:
    """Smooth random RGB texture (bilinear value noise on a ``cell``-px grid), float64 in [0, 1]."""
    grid = rng.random((height // cell + 2, width // cell + 2, 3))
    y, x = np.arange(height) / cell, np.arange(width) / cell
    y0, x0 = y.astype(int), x.astype(int)
    fy, fx = (y - y0)[:, None, None], (x - x0)[None, :, None]
    top = grid[y0][:, x0] * (1 - fx) + grid[y0][:, x0 + 1] * fx
    bottom = grid[y0 + 1][:, x0] * (1 - fx) + grid[y0 + 1][:, x0 + 1] * fx
    return top * (1 - fy) + bottom * fy
