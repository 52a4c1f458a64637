# SPDX-License-Identifier: MIT
"""tools/error_by_motion.py: its bins cover every pixel once, and errors land in the right bin."""

from __future__ import annotations

from types import ModuleType

import numpy as np
import pytest

from tests.conftest import load_tool

pytest.importorskip("cv2")


@pytest.fixture(scope="module")
def tool() -> ModuleType:
    return load_tool("error_by_motion")


def test_bins_partition_the_frame_and_keep_the_border_apart(tool: ModuleType) -> None:
    motion = np.zeros((64, 80), np.float32)
    motion[30:34, 30:40] = 12.0  # a patch moving 12 px, inside the border
    motion[0:4, :] = 25.0  # fast, but in the border
    masks = tool.bin_masks(motion, border=8)
    labels = tool.bin_labels(border=8)
    assert len(masks) == len(labels) == len(tool.BINS)  # motion bins, then the border
    assert np.array_equal(np.sum(masks, axis=0), np.ones_like(motion, dtype=int))  # each pixel once
    by_label = dict(zip(labels, masks, strict=True))
    assert by_label["10-20 px"].sum() == 40 and by_label[">= 20 px"].sum() == 0
    assert by_label["border 8 px"].sum() == 64 * 80 - 48 * 64


def test_squared_error_goes_to_the_bin_where_the_pixels_are(tool: ModuleType) -> None:
    motion = np.zeros((64, 64), np.float32)
    motion[20:30, 20:30] = 6.0
    masks = tool.bin_masks(motion, border=8)
    truth = np.full((64, 64, 3), 100, np.uint8)
    pred = truth.copy()
    pred[25, 25] = (103, 100, 96)  # 9 + 0 + 16 inside the moving patch
    pred[40, 40, 0] = 110  # 100 in the still part
    sums = dict(zip(tool.bin_labels(border=8), tool.squared_error_by_bin(pred, truth, masks), strict=True))
    assert sums == {"0-4 px": 100.0, "4-10 px": 25.0, "10-20 px": 0.0, ">= 20 px": 0.0, "border 8 px": 0.0}
