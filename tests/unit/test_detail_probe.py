# SPDX-License-Identifier: MIT
"""tools/detail_probe.py tells blur from misplaced detail: checked on a texture blurred and shifted."""

from __future__ import annotations

from types import ModuleType

import numpy as np
import pytest

from tests.conftest import load_tool

pytest.importorskip("cv2")


@pytest.fixture(scope="module")
def tool() -> ModuleType:
    return load_tool("detail_probe")


def test_blur_loses_detail_and_a_shift_keeps_it_in_the_wrong_place(tool: ModuleType) -> None:
    import cv2

    rng = np.random.default_rng(0)
    truth = cv2.GaussianBlur(rng.random((128, 128, 3), dtype=np.float32), (0, 0), 0.7)  # fine texture
    blurred = cv2.GaussianBlur(truth, (0, 0), 1.5)
    shifted = np.roll(truth, 2, axis=1)
    assert tool.detail_energy(blurred) / tool.detail_energy(truth) < 0.2
    assert tool.detail_energy(shifted) / tool.detail_energy(truth) == pytest.approx(1.0, rel=0.05)  # wrapped seam
    for image in (blurred, shifted):
        low, high = tool.error_split(image, truth)
        assert high > 10 * low  # a fine texture's error is fine too
    assert tool.error_split(shifted, truth)[1] > tool.error_split(blurred, truth)[1]
    assert tool.error_split(truth, truth) == (0.0, 0.0)


def test_a_flat_offset_is_low_pass_error(tool: ModuleType) -> None:
    truth = np.random.default_rng(1).random((64, 64, 3), dtype=np.float32)
    low, high = tool.error_split(truth + 0.1, truth)
    assert low == pytest.approx(0.01, rel=1e-3) and high < 1e-8


def test_placement_of_the_flow_baseline_on_a_known_translation(tool: ModuleType) -> None:
    """A textured pan of 3 px a frame: flow samples the neighbours where the motion says; ours
    (the tiny random-weight model here) gets a finite distance in px."""
    from ldmvfi_core.interpolate import Interpolator
    from tests.conftest import TINY
    from tests.textures import value_noise

    big = value_noise(np.random.default_rng(3), 96, 128, cell=6)
    frames = tuple((big[16:80, 16 + 3 * k : 80 + 3 * k] * 255.0 + 0.5).astype(np.uint8) for k in (-1, 0, 1))
    ours, flow = tool.placement_px(Interpolator.load(TINY / "weights.safetensors"), frames)
    assert flow < 0.3
    assert np.isfinite(ours) and ours >= 0.0
