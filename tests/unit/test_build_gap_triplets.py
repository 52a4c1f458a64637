# SPDX-License-Identifier: MIT
"""tools/build_gap_triplets.py: triplets (i, i + gap, i + 2 gap) of a clip, in the eval layout."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from ldmvfi_core.eval.run import find_triplets, read_rgb8
from tests.conftest import load_tool

tool = load_tool("build_gap_triplets")


def _clip(path: Path, count: int) -> list[np.ndarray]:
    """A lossless clip whose frame k is flat grey level 20 k (so every frame is told apart)."""
    frames = [np.full((32, 48, 3), 20 * k, np.uint8) for k in range(count)]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("png", rate=25)
        stream.width, stream.height, stream.pix_fmt = 48, 32, "rgb24"
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    return frames


def test_triplets_hold_the_frames_gap_apart_and_frame1_is_the_middle(tmp_path: Path) -> None:
    frames = _clip(tmp_path / "clip.mov", 10)
    assert tool.main([str(tmp_path / "clip.mov"), "--frames", "1-9", "--gap", "2", "--every", "3",
                      "--out", str(tmp_path / "set")]) == 0
    triplets = find_triplets(tmp_path)
    assert [t.name for t in triplets] == ["0001", "0004"]
    for triplet, start in zip(triplets, (1, 4), strict=True):
        for k in range(3):
            got = read_rgb8(tmp_path / "set" / triplet.name / f"frame{k}.png")
            assert np.array_equal(got, frames[start + 2 * k])


def test_bad_ranges_are_refused_in_one_line(tmp_path: Path) -> None:
    _clip(tmp_path / "clip.mov", 4)
    with pytest.raises(SystemExit, match="expected FIRST-LAST"):
        tool.main([str(tmp_path / "clip.mov"), "--frames", "1..3", "--gap", "1", "--out", str(tmp_path / "o")])
    with pytest.raises(SystemExit, match="too short for one triplet"):
        tool.main([str(tmp_path / "clip.mov"), "--frames", "0-3", "--gap", "2", "--out", str(tmp_path / "o")])
    with pytest.raises(SystemExit, match=r"has no frame 4 \(its last frame is 3\)"):
        tool.main([str(tmp_path / "clip.mov"), "--frames", "0-9", "--gap", "2", "--every", "9",
                   "--out", str(tmp_path / "o")])
