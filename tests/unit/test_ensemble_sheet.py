# SPDX-License-Identifier: MIT
"""``tools/ensemble_sheet.py``: one row per named triplet, alone | ensemble | truth, exact crops."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import OpenImageIO as oiio
import pytest

from ldmvfi_core.io.images import write_image
from tests.conftest import TINY, load_tool


def _triplet(folder: Path, seed: int, size: tuple[int, int] = (176, 256)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    frames = [rng.integers(0, 256, (*size, 3), dtype=np.uint8) for _ in range(3)]
    for name, frame in zip(("frame0.png", "frame1.png", "frame2.png"), frames, strict=True):
        write_image(folder / name, frame.astype(np.float32) / 255.0)
    return frames[1]


def test_the_sheet_holds_the_centre_crops_and_the_truth(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tool = load_tool("ensemble_sheet")
    truths = {name: _triplet(tmp_path / "eval" / "set" / name, seed) for seed, name in enumerate(("a", "b"))}
    out = tmp_path / "sheet.png"
    monkeypatch.setattr("sys.argv", ["ensemble_sheet.py", str(tmp_path / "eval"), "--names", "b", "a",
                                     "--ensemble", "2", "--steps", "2", "--model", str(TINY / "weights.safetensors"),
                                     "--out", str(out)])
    tool.main()
    sheet = oiio.ImageBuf(str(out)).get_pixels(oiio.UINT8)
    assert sheet.shape == (2 * tool.CROP_H, 3 * tool.CROP_W, 3)
    # the truth column is the exact centre crop of each true middle frame, rows in the order named
    for row, name in enumerate(("b", "a")):
        rows = slice(row * tool.CROP_H, (row + 1) * tool.CROP_H)
        assert np.array_equal(sheet[rows, 2 * tool.CROP_W :], tool.centre(truths[name]))
    assert not np.array_equal(sheet[:, : tool.CROP_W], sheet[:, tool.CROP_W : 2 * tool.CROP_W])  # 1 vs 2 views
    monkeypatch.setattr("sys.argv", ["ensemble_sheet.py", str(tmp_path / "eval"), "--names", "zz", "--out", str(out)])
    with pytest.raises(SystemExit, match="no triplet named zz"):
        tool.main()
