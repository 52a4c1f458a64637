# SPDX-License-Identifier: MIT
"""Self-ensemble: the in-between as the mean over mirrored and time-reversed views of one pair.

A frame interpolator's errors are not symmetric: where the shipped model's warps sample a little
off the true motion (docs/NOTES.md, session 9), the same pair seen mirrored, or with its two
neighbours swapped, puts the misplaced detail elsewhere, and the mean of the views lands nearer
the truth. Each view is an exact symmetry of the task (a mirrored pair's middle is the mirrored
middle; the middle of (b, a) is the middle of (a, b)), so the mean is still an estimate of the same
frame, at N times the model work. Session 10 measured it on ../shared/data/eval (bench/RESULTS.md).

Views are added in order of cost: reversal first (it reuses both neighbours' encodings), then the
left-right mirror, then the top-bottom mirror (each needs its own encoding of every source frame).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:  # the CLI imports the sizes without loading torch
    from torch import Tensor

Mirror = Literal["", "x", "y", "xy"]

ENSEMBLE_SIZES = (1, 2, 4, 8)


@dataclass(frozen=True)
class View:
    """One member of the ensemble: the pair mirrored (``"x"`` left-right, ``"y"`` top-bottom) and/or
    with its neighbours swapped."""

    mirror: Mirror = ""
    reverse: bool = False


ALL_VIEWS = (
    View(),
    View(reverse=True),
    View("x"),
    View("x", reverse=True),
    View("y"),
    View("y", reverse=True),
    View("xy"),
    View("xy", reverse=True),
)


def check_ensemble(size: int) -> None:
    """An ensemble size as the commands take it."""
    if size not in ENSEMBLE_SIZES:
        raise ValueError(f"--ensemble must be one of {', '.join(map(str, ENSEMBLE_SIZES))}, got {size}")


def views_for(size: int) -> tuple[View, ...]:
    """The first ``size`` views (1: the model alone)."""
    check_ensemble(size)
    return ALL_VIEWS[:size]


def mirrors_for(size: int) -> tuple[Mirror, ...]:
    """The mirrored encodings an ensemble of ``size`` needs of every source frame (besides the frame)."""
    return tuple(dict.fromkeys(v.mirror for v in views_for(size) if v.mirror))


def mirror(x: Tensor, how: Mirror) -> Tensor:
    """``x`` (..., H, W) mirrored; its own inverse."""
    dims = [d for axis, d in (("x", -1), ("y", -2)) if axis in how]
    return x.flip(dims) if dims else x
