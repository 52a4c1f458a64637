# SPDX-License-Identifier: MIT
"""Learning rates: the schedule (ramp after a checkpoint without optimiser state, linear decay),
``--lr`` on a resume taking effect over a restored optimiser's rate, and a warning when the
default rate (scaled by batch x processes) differs from the one the checkpoint was trained at."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest

from ldmvfi_core.train.carry import pack, unpack
from ldmvfi_core.train.checkpoint import latest_checkpoint, load_checkpoint
from ldmvfi_core.train.command import build_parser, options_from_args
from ldmvfi_core.train.configs import STAGE1_OPTIM
from ldmvfi_core.train.loop import LOG_NAME, checkpoint_rate, run_training
from ldmvfi_core.train.schedule import RateSchedule
from tests.unit.test_train_loop import FixedTriplets, _opts
from tests.unit.test_train_loop import micro_config as micro_config

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")
LR = 1e-3


def _rates(run: Path) -> dict[int, float]:
    rows = [json.loads(line) for line in (run / LOG_NAME).read_text().splitlines()]
    return {r["step"]: r["lr"] for r in rows if "loss" in r}


def test_ramp_is_linear_from_the_resumed_step() -> None:
    ramp = RateSchedule(LR, ramp_start=100, ramp_steps=4)
    assert [ramp.at(s) / LR for s in range(100, 106)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    assert ramp.ramp_until == 104
    off = RateSchedule(LR, ramp_start=100)
    assert off.at(100) == LR and off.ramp_until is None


def test_decay_is_linear_between_its_steps_and_combines_with_the_ramp() -> None:
    decay = RateSchedule(1.0, decay_start=10, decay_end=20, final=0.1)
    assert [decay.at(s) for s in (0, 10, 15, 20, 30)] == pytest.approx([1.0, 1.0, 0.55, 0.1, 0.1])
    both = RateSchedule(1.0, ramp_start=14, ramp_steps=2, decay_start=10, decay_end=20, final=0.1)
    assert both.at(14) == pytest.approx(0.64 / 2) and both.at(15) == pytest.approx(0.55)
    with pytest.raises(ValueError, match="together"):
        RateSchedule(1.0, decay_start=10, decay_end=20)
    with pytest.raises(ValueError, match="after the start"):
        RateSchedule(1.0, decay_start=20, decay_end=20, final=0.1)


def test_a_decay_resumed_midway_continues(tmp_path: Path, micro_config: str) -> None:
    data = FixedTriplets(4)
    straight, sliced = tmp_path / "straight", tmp_path / "sliced"
    kw = dict(lr=LR, lr_decay=(1, 5), lr_final=LR / 5, perceptual="off")
    run_training(_opts(1, straight, micro_config, steps=6, **kw), dataset=data)
    run_training(_opts(1, sliced, micro_config, steps=3, **kw), dataset=data)
    run_training(_opts(1, sliced, micro_config, steps=6, resume="auto", **kw), dataset=data)
    expected = {n: RateSchedule(LR, decay_start=1, decay_end=5, final=LR / 5).at(n - 1) for n in range(1, 7)}
    assert _rates(straight) == pytest.approx(expected) == _rates(sliced)
    assert expected[6] == pytest.approx(LR / 5) and expected[1] == LR


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
    decayed = options_from_args(parse(["--stage", "1", "--out", "x", "--lr-decay", "100", "900", "--lr-final", "5e-5"]))
    assert decayed.lr_decay == (100, 900) and decayed.lr_final == 5e-5


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
