# SPDX-License-Identifier: MIT
"""Self-ensemble: the in-between as the mean over mirrored, rotated and time-reversed views of one pair.

A frame interpolator's errors are not symmetric: where the shipped model's warps sample a little
off the true motion (docs/NOTES.md, session 9), the same pair seen mirrored, rotated, or with its
two neighbours swapped puts the misplaced detail elsewhere, and the mean of the views lands nearer
the truth. Each view is an exact symmetry of the task (a mirrored pair's middle is the mirrored
middle; the middle of (b, a) is the middle of (a, b)), so the mean is still an estimate of the same
frame, at N times the model work. Session 10 measured it on ../shared/data/eval (bench/RESULTS.md).

Views are added in order of cost: reversal first (it reuses both neighbours' encodings), then the
left-right mirror, then the top-bottom mirror, then the same four orientations transposed (each
orientation needs its own encoding of every source frame).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:  # the CLI imports the sizes without loading torch
    from torch import Tensor

# How a view turns the picture: "x" mirrors left-right, "y" top-bottom, "t" then transposes
# (rows <-> columns). With "" these are the eight symmetries of a rectangle's grid.
Orientation = Literal["", "x", "y", "xy", "t", "xt", "yt", "xyt"]

ENSEMBLE_SIZES = (1, 2, 4, 8, 16)


@dataclass(frozen=True)
class View:
    """One member of the ensemble: the pair turned by ``orientation`` and/or with its neighbours swapped."""

    orientation: Orientation = ""
    reverse: bool = False


_ORIENTATIONS: tuple[Orientation, ...] = ("", "x", "y", "xy", "t", "xt", "yt", "xyt")
ALL_VIEWS = tuple(View(o, reverse) for o in _ORIENTATIONS for reverse in (False, True))


def check_ensemble(size: int) -> None:
    """An ensemble size as the commands take it."""
    if size not in ENSEMBLE_SIZES:
        raise ValueError(f"--ensemble must be one of {', '.join(map(str, ENSEMBLE_SIZES))}, got {size}")


def views_for(size: int) -> tuple[View, ...]:
    """The first ``size`` views (1: the model alone)."""
    check_ensemble(size)
    return ALL_VIEWS[:size]


def orientations_for(size: int) -> tuple[Orientation, ...]:
    """The turned encodings an ensemble of ``size`` needs of every source frame (besides the frame)."""
    return tuple(dict.fromkeys(v.orientation for v in views_for(size) if v.orientation))


def _flips(how: Orientation) -> list[int]:
    return [d for axis, d in (("x", -1), ("y", -2)) if axis in how]


def orient(x: Tensor, how: Orientation) -> Tensor:
    """``x`` (..., H, W) mirrored as ``how`` says, then transposed if it says ``t``."""
    flips = _flips(how)
    x = x.flip(flips) if flips else x
    return x.transpose(-1, -2) if "t" in how else x


def unorient(x: Tensor, how: Orientation) -> Tensor:
    """The inverse of :func:`orient`: back to the frame's own orientation."""
    x = x.transpose(-1, -2) if "t" in how else x
    flips = _flips(how)
    return x.flip(flips) if flips else x
