# SPDX-License-Identifier: MIT
"""What ``Interpolator.prepare`` accepts: a frame with any NaN or Inf is refused with a clear error,
huge but finite values are not (the check sums the frame first, which can overflow)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ldmvfi_core.interpolate import Interpolator
from tests.conftest import TINY


@pytest.fixture(scope="module")
def interp() -> Interpolator:
    return Interpolator.load(TINY / "weights.safetensors", device="cpu", dtype=torch.float32)


@pytest.mark.parametrize("bad", [[np.nan], [np.inf], [-np.inf], [np.inf, -np.inf]])
def test_a_frame_with_nan_or_inf_is_refused(interp: Interpolator, bad: list[float]) -> None:
    frame = np.random.default_rng(0).random((64, 96, 3), dtype=np.float32)
    frame[5, 7, : len(bad)] = bad  # +inf beside -inf: their sum is NaN, not inf
    with pytest.raises(ValueError, match="NaN or Inf"):
        interp.prepare(frame)


def test_huge_finite_values_are_accepted(interp: Interpolator) -> None:
    frame = np.full((64, 96, 3), 3e38, dtype=np.float32)  # their float32 sum overflows to inf
    assert np.isinf(frame.sum(dtype=np.float32))
    with torch.inference_mode():
        prepared = interp.prepare(frame)
    assert prepared.channels == 3
