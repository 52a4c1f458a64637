# SPDX-License-Identifier: MIT
"""The view-consistency term (stage 1): turned triplets, an exact zero for an answer that respects
the task's symmetries, a cost for one that does not, and the stage-1 loss carrying it."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ldmvfi_core.ensemble import ALL_VIEWS, View
from ldmvfi_core.train.command import build_parser, options_from_args
from ldmvfi_core.train.view_consistency import random_view, turn_triplets, view_consistency
from tests.unit.test_train_loop import logged_stage1_term
from tests.unit.test_train_loop import micro_config as micro_config

TRIPLETS = torch.randn(2, 3, 3, 6, 6, generator=torch.Generator().manual_seed(0))


def _average(frames: torch.Tensor) -> torch.Tensor:
    """Frame averaging: symmetric under every view, so perfectly consistent."""
    return (frames[:, 0] + frames[:, 2]) / 2


def _first(frames: torch.Tensor) -> torch.Tensor:
    """The first neighbour: any reversal changes the answer."""
    return frames[:, 0]


def test_a_reversed_view_swaps_the_neighbours_and_keeps_the_middle() -> None:
    turned = turn_triplets(TRIPLETS, View("x", reverse=True))
    assert torch.equal(turned[:, 0], TRIPLETS[:, 2].flip(-1))
    assert torch.equal(turned[:, 1], TRIPLETS[:, 1].flip(-1))
    assert torch.equal(turned[:, 2], TRIPLETS[:, 0].flip(-1))


@pytest.mark.parametrize("view", ALL_VIEWS[1:], ids=lambda v: f"{v.orientation or 'id'}{'-rev' if v.reverse else ''}")
def test_a_symmetric_answer_costs_nothing_and_a_lopsided_one_costs(view: View) -> None:
    consistent = view_consistency(_average(TRIPLETS), _average(turn_triplets(TRIPLETS, view)), view)
    assert float(consistent) < 1e-7
    lopsided = view_consistency(_first(TRIPLETS), _first(turn_triplets(TRIPLETS, view)), view)
    if view.reverse:  # the other neighbour: |frame0 - frame2| on average
        assert float(lopsided) == pytest.approx(float((TRIPLETS[:, 0] - TRIPLETS[:, 2]).abs().mean()))
    else:
        assert float(lopsided) < 1e-7  # the first frame, turned and turned back: consistent


def test_random_views_skip_the_identity_and_transposes_of_oblong_crops() -> None:
    generator = torch.Generator().manual_seed(1)
    square = {random_view(8, 8, generator) for _ in range(400)}
    oblong = {random_view(8, 12, generator) for _ in range(400)}
    assert square == set(ALL_VIEWS[1:])
    assert oblong == {v for v in ALL_VIEWS[1:] if "t" not in v.orientation}


def test_stage1_logs_the_term_and_its_flag(tmp_path: Path, micro_config: str) -> None:
    from ldmvfi_core.train.configs import Stage1Loss

    loss = Stage1Loss(view_consistency_weight=0.5)
    values = logged_stage1_term(tmp_path, micro_config, loss, "view_consistency")
    assert len(values) == 2 and all(v > 0 for v in values)
    args = build_parser().parse_args(["--stage", "1", "--out", "x", "--view-consistency", "0.3"])
    assert options_from_args(args).loss.view_consistency_weight == 0.3


def test_the_term_trains_the_views_to_agree_beside_the_teacher_terms(micro_config: str) -> None:
    """Ten steps from the same start with and without the term (the flow teacher, centroid and
    smoothness terms on, which see only the first copy): with it, the reconstruction of a pair
    and of its mirrored, reversed view end closer."""
    from dataclasses import replace

    from ldmvfi_core.train.configs import Stage1Loss
    from ldmvfi_core.train.loop import build_task
    from ldmvfi_core.train.runtime import setup_runtime
    from tests.unit.test_train_flow_teacher import MICRO, _opts, _TriplesWithTeacher

    data = _TriplesWithTeacher(2)
    probe = View("x", reverse=True)

    def disagreement(weight: float) -> float:
        loss = replace(Stage1Loss(), perceptual_weight=0.0, flow_teacher_weight=0.05, flow_centroid_weight=0.1,
                       offset_smoothness_weight=0.01, view_consistency_weight=weight)
        torch.manual_seed(0)
        task = build_task(_opts(Path("unused"), micro_config, loss), MICRO, setup_runtime("cpu", "fp32"), fresh=True)
        for step in range(10):
            torch.manual_seed(step)
            logs = task.train_step(data.frames, step, data.teacher)
            assert {"flow_teacher", "flow_centroid", "offset_smoothness"} <= set(logs)
            assert ("view_consistency" in logs) == (weight > 0)
        with torch.no_grad():
            task.net.eval()
            plain = task.net(data.frames)[0]
            turned = task.net(turn_triplets(data.frames, probe))[0]
        return float(view_consistency(plain, turned, probe))

    assert disagreement(2.0) < 0.5 * disagreement(0.0)  # 0.0097 against 0.166 when written
