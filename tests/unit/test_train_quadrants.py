# SPDX-License-Identifier: MIT
"""--quarter-every: every Nth step trains on the four quadrants of each crop."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch

from ldmvfi_core.train import stage1
from ldmvfi_core.train.command import build_parser, options_from_args
from ldmvfi_core.train.loop import run_training
from ldmvfi_core.train.quadrants import quadrants, quartered_at
from tests.unit.test_train_loop import FixedTriplets, _opts, micro_config  # noqa: F401 (a fixture)


def test_quadrants_are_the_four_corners_of_each_crop_in_reading_order() -> None:
    x = torch.arange(2 * 3 * 2 * 4 * 6, dtype=torch.float32).reshape(2, 3, 2, 4, 6)  # (B, frame, C, H, W)
    q = quadrants(x)
    assert q.shape == (8, 3, 2, 2, 3)
    for b in range(2):
        corners = [x[b, ..., :2, :3], x[b, ..., :2, 3:], x[b, ..., 2:, :3], x[b, ..., 2:, 3:]]
        for k, corner in enumerate(corners):
            assert torch.equal(q[4 * b + k], corner), (b, k)
    with pytest.raises(ValueError, match="5x4"):
        quadrants(torch.zeros(1, 4, 5))


def test_quartered_steps_follow_the_step_count() -> None:
    assert [quartered_at(s, 2) for s in range(5)] == [True, False, True, False, True]
    assert all(quartered_at(s, 1) for s in range(3)) and not any(quartered_at(s, 0) for s in range(3))


def test_training_alternates_quadrants_and_whole_crops(tmp_path: Path, micro_config: str,  # noqa: F811
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[int, ...]] = []
    original = stage1.Stage1Task.train_step

    def spy(self: stage1.Stage1Task, frames: torch.Tensor, step: int, *extras: torch.Tensor) -> dict:
        seen.append(tuple(frames.shape))
        return original(self, frames, step, *extras)

    monkeypatch.setattr(stage1.Stage1Task, "train_step", spy)
    args = build_parser().parse_args(["--stage", "1", "--out", "x", "--quarter-every", "2"])
    opts = _opts(1, tmp_path / "run", micro_config, crop=128, steps=2, perceptual="off",
                 quarter_every=options_from_args(args).quarter_every)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = run_training(opts, FixedTriplets(4, size=128))
    assert result["step"] == 2
    assert seen == [(8, 3, 3, 64, 64), (2, 3, 3, 128, 128)]  # step 0 quartered, step 1 whole


def test_a_crop_whose_quadrants_miss_the_frame_multiple_is_refused(tmp_path: Path,
                                                                   micro_config: str) -> None:  # noqa: F811
    with pytest.raises(ValueError, match="multiple of 128, not 64"):
        run_training(_opts(1, tmp_path / "run", micro_config, quarter_every=2, perceptual="off"), FixedTriplets(2))
