# SPDX-License-Identifier: MIT
"""The edge-aware offset smoothness term: analytic values, edges excuse jumps, and the stage-1
loss carries it when asked."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ldmvfi_core.train.command import build_parser, options_from_args
from ldmvfi_core.train.smoothness import offset_smoothness
from tests.unit.test_train_loop import logged_stage1_term
from tests.unit.test_train_loop import micro_config as micro_config

FLAT = torch.zeros(1, 3, 8, 12)


def test_constant_offsets_cost_nothing_and_a_ramp_costs_its_slope() -> None:
    assert float(offset_smoothness([torch.full((1, 4, 8, 12), 3.5)], FLAT)) == 0.0
    ramp = (torch.arange(12.0) * 0.25).expand(1, 4, 8, 12)
    assert float(offset_smoothness([ramp], FLAT)) == pytest.approx(0.25)
    vertical_ramp = (torch.arange(8.0)[:, None] * 0.5).expand(1, 4, 8, 12)
    assert float(offset_smoothness([ramp, vertical_ramp], FLAT)) == pytest.approx((0.25 + 0.5) / 2)  # mean of maps


def test_an_image_edge_excuses_a_jump_in_the_offsets() -> None:
    step = torch.zeros(1, 4, 8, 12)
    step[..., 6:] = 2.0  # the offsets jump between columns 5 and 6
    edge = -torch.ones(1, 3, 8, 12)
    edge[..., 6:] = 1.0  # ... where the image jumps from black to white
    off_edge = -torch.ones(1, 3, 8, 12)
    off_edge[..., 3:] = 1.0  # an image edge elsewhere
    at_edge, elsewhere = float(offset_smoothness([step], edge)), float(offset_smoothness([step], off_edge))
    assert elsewhere == pytest.approx(2.0 / 11)  # one jump of 2 px among 11 column differences
    assert at_edge < 1e-4 * elsewhere


def test_stage1_logs_the_term_and_its_flag(tmp_path: Path, micro_config: str) -> None:
    from ldmvfi_core.train.configs import Stage1Loss

    values = logged_stage1_term(tmp_path, micro_config, Stage1Loss(offset_smoothness_weight=0.1),
                                "offset_smoothness")
    assert len(values) == 2 and all(v > 0 for v in values)
    args = build_parser().parse_args(["--stage", "1", "--out", "x", "--offset-smoothness", "0.02"])
    assert options_from_args(args).loss.offset_smoothness_weight == 0.02
