# SPDX-License-Identifier: MIT
"""Learning rates on a resume: the ramp after a checkpoint without optimiser state (a carried one),
``--lr`` taking effect over a restored optimiser's rate, and a warning when the default rate
(scaled by batch x processes) differs from the one the checkpoint was trained at."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest

from ldmvfi_core.train.carry import pack, unpack
from ldmvfi_core.train.checkpoint import latest_checkpoint, load_checkpoint
from ldmvfi_core.train.configs import STAGE1_OPTIM
from ldmvfi_core.train.loop import LOG_NAME, Rewarm, build_parser, checkpoint_rate, options_from_args, run_training
from tests.unit.test_train_loop import FixedTriplets, _opts
from tests.unit.test_train_loop import micro_config as micro_config

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")
LR = 1e-3


class _Task:
    lr = LR

    def optimizers(self) -> dict[str, object]:
        return {}


def _rates(run: Path) -> dict[int, float]:
    rows = [json.loads(line) for line in (run / LOG_NAME).read_text().splitlines()]
    return {r["step"]: r["lr"] for r in rows if "loss" in r}


def test_ramp_is_linear_from_the_resumed_step() -> None:
    ramp = Rewarm(_Task(), start=100, steps=4)
    assert [ramp.factor(s) for s in range(100, 106)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    assert ramp.until == 104
    off = Rewarm(_Task(), start=100, steps=0)
    assert off.factor(100) == 1.0 and off.until is None


def test_a_slim_checkpoint_resumes_with_a_ramp_and_a_full_one_without(tmp_path: Path, micro_config: str) -> None:
    data = FixedTriplets(4)
    first = tmp_path / "first"
    run_training(_opts(1, first, micro_config, steps=2, lr=LR), dataset=data)
    pack(first, tmp_path / "parts")
    unpack(tmp_path / "parts", tmp_path / "slim")
    run_training(_opts(1, tmp_path / "slim", micro_config, steps=6, lr=LR, resume="auto", rewarm_steps=3),
                 dataset=data)
    # the log's step n is written after the step that took the model from n - 1 to n
    assert _rates(tmp_path / "slim") == pytest.approx({3: LR / 3, 4: 2 * LR / 3, 5: LR, 6: LR})

    run_training(_opts(1, first, micro_config, steps=4, lr=LR, resume="auto", rewarm_steps=3), dataset=data)
    assert _rates(first) == pytest.approx({1: LR, 2: LR, 3: LR, 4: LR})  # Adam's state came along: no ramp


def test_lr_given_on_a_resume_replaces_the_restored_rate(tmp_path: Path, micro_config: str) -> None:
    data = FixedTriplets(4)
    run = tmp_path / "run"
    run_training(_opts(2, run, micro_config, steps=1, lr=LR, perceptual="off"), dataset=data)
    run_training(_opts(2, run, micro_config, steps=2, lr=LR / 10, resume="auto"), dataset=data)
    assert _rates(run)[2] == pytest.approx(LR / 10)


def test_rewarm_flag() -> None:
    parse = build_parser().parse_args
    assert options_from_args(parse(["--stage", "1", "--out", "x"])).rewarm_steps == 200
    assert options_from_args(parse(["--stage", "1", "--out", "x", "--rewarm-steps", "0"])).rewarm_steps == 0


def test_resuming_with_another_batch_warns_that_the_default_rate_changed(tmp_path: Path, micro_config: str) -> None:
    data = FixedTriplets(4)
    run = tmp_path / "run"
    run_training(_opts(1, run, micro_config, steps=1, lr=None, batch_size=2), dataset=data)
    first = load_checkpoint(latest_checkpoint(run))  # type: ignore[arg-type]
    assert checkpoint_rate(first) == pytest.approx(STAGE1_OPTIM.base_lr * 2)
    older = {k: v for k, v in first.items() if k != "lr"}  # a checkpoint from before the "lr" key
    assert checkpoint_rate(older) == pytest.approx(STAGE1_OPTIM.base_lr * 2)

    with pytest.warns(RuntimeWarning, match=r"trained at 2e-05 .*pass --lr 2e-05"):
        run_training(_opts(1, run, micro_config, steps=2, lr=None, batch_size=4, resume="auto"), dataset=data)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # --lr chose the rate: nothing to say
        run_training(_opts(1, run, micro_config, steps=3, lr=5e-4, batch_size=2, resume="auto",
                           perceptual="off"), dataset=data)
