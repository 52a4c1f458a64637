# SPDX-License-Identifier: MIT
"""tools/build_validation_set.py: cut-safe triplets of unseen footage, written in the eval layout."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from ldmvfi_core.eval.run import find_triplets, load_triplet
from ldmvfi_core.train.video import read_video_frames
from tests.conftest import load_tool
from tests.unit.test_train_data import CUT, FRAMES, clip  # noqa: F401  (clip is a fixture)


@pytest.fixture(scope="module")
def tool() -> ModuleType:
    pytest.importorskip("OpenImageIO")
    return load_tool("build_validation_set")


def test_triplets_are_written_in_the_eval_layout_and_read_back_exactly(
        tool: ModuleType, clip: Path, tmp_path: Path) -> None:  # noqa: F811
    out = tmp_path / "val"
    manifest = tool.build({"cityCC0.mpg": clip}, out, per_clip=4, short_side=64)

    (entry,) = manifest["clips"]
    chosen = [tuple(t) for t in entry["triplets"]]
    assert len(chosen) == 4 and chosen == sorted(chosen)
    assert all(b == a + 1 and c == a + 2 for a, b, c in chosen)  # the eval sets' spacing
    assert not any(a < CUT <= c for a, _, c in chosen)  # never across the cut
    assert entry["cuts"] == [CUT] and entry["licence"] == "CC0-1.0"
    assert json.loads((out / tool.MANIFEST).read_text()) == manifest

    frames = list(read_video_frames(clip))
    assert len(frames) == FRAMES
    triplets = find_triplets(out)
    assert [(t.set_name, t.name) for t in triplets] == [("cityCC0", f"{n:02d}") for n in range(1, 5)]
    for triplet, indices in zip(triplets, chosen, strict=True):
        for stored, index in zip(load_triplet(triplet), indices, strict=True):
            assert np.array_equal(stored, frames[index])  # 8-bit PNG: the decoded frame, bit for bit


def test_choices_spread_over_the_clip() -> None:
    spread = load_tool("build_validation_set").spread_triplets
    kept = [(i, i + 1, i + 2) for i in range(20)]
    assert spread(kept, 4) == [(0, 1, 2), (5, 6, 7), (10, 11, 12), (15, 16, 17)]
    assert spread(kept[:3], 8) == kept[:3]


def test_footage_the_model_trained_on_is_refused(tool: ModuleType, clip: Path, tmp_path: Path) -> None:  # noqa: F811
    with pytest.raises(SystemExit, match=r"bikes\.mp4: in the default training data"):
        tool.validation_clip("bikes.mp4")
    with pytest.raises(SystemExit, match=r"holiday\.mov: not a known clip"):
        tool.validation_clip("holiday.mov")
    with pytest.raises(SystemExit, match=r"two_shots\.mkv: \d+ usable triplets, fewer than --per-clip 50"):
        tool.build({"cockatoo.mp4": clip}, tmp_path / "val", per_clip=50, short_side=64)
