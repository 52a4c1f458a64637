# SPDX-License-Identifier: MIT
"""Carrying a training checkpoint between GPU loans: slim, split, verify, resume."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ldmvfi_core.train.carry import main, pack, unpack
from ldmvfi_core.train.checkpoint import latest_checkpoint, load_checkpoint
from ldmvfi_core.train.configs import Stage1Loss
from ldmvfi_core.train.loop import run_training
from tests.unit.test_train_loop import FixedTriplets, _opts
from tests.unit.test_train_loop import micro_config as micro_config

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")


def test_packed_parts_rebuild_a_slim_checkpoint_that_resumes(tmp_path: Path, micro_config: str) -> None:
    data = FixedTriplets(4)
    first = tmp_path / "first"
    run_training(_opts(1, first, micro_config, steps=3), dataset=data)
    parts = pack(first, tmp_path / "parts", part_mib=0.05)
    assert len(parts) > 1 and all(p.stat().st_size <= 0.05 * 2**20 for p in parts)

    restored = unpack(tmp_path / "parts", tmp_path / "second")
    slim, full = load_checkpoint(restored), load_checkpoint(latest_checkpoint(first))  # type: ignore[arg-type]
    assert slim["optimizers"] == {} and slim["step"] == full["step"] == 3
    for key, value in full["model"].items():
        assert torch.equal(slim["model"][key], value), key

    result = run_training(_opts(1, tmp_path / "second", micro_config, steps=5, resume="auto"), dataset=data)
    assert result["step"] == 5


def test_a_damaged_part_is_refused(tmp_path: Path, micro_config: str, capsys: pytest.CaptureFixture[str]) -> None:
    run_training(_opts(1, tmp_path / "run", micro_config, steps=1), dataset=FixedTriplets(4))
    parts = pack(tmp_path / "run", tmp_path / "parts", part_mib=0.05)
    data = bytearray(parts[0].read_bytes())
    data[-1] ^= 0xFF  # flip every bit of one byte (a plain overwrite could leave it unchanged)
    parts[0].write_bytes(bytes(data))
    with pytest.raises(ValueError, match="do not match"):
        unpack(tmp_path / "parts", tmp_path / "out")
    assert main(["unpack", str(tmp_path / "parts"), str(tmp_path / "out")]) == 2  # one line, no traceback
    err = capsys.readouterr().err
    assert err.startswith("carry unpack: ") and "do not match" in err and err.count("\n") == 1


def test_an_untrained_discriminator_is_left_behind_and_a_trained_one_is_carried(tmp_path: Path,
                                                                                 micro_config: str) -> None:
    data = FixedTriplets(4)
    early = Stage1Loss(disc_start=10)
    run_training(_opts(1, tmp_path / "early", micro_config, steps=2, loss=early), dataset=data)
    pack(tmp_path / "early", tmp_path / "early_parts", part_mib=1)
    assert load_checkpoint(unpack(tmp_path / "early_parts", tmp_path / "early_back"))["discriminator"] is None
    resumed = run_training(_opts(1, tmp_path / "early_back", micro_config, steps=3, resume="auto", loss=early),
                           dataset=data)
    assert resumed["step"] == 3
    assert load_checkpoint(latest_checkpoint(tmp_path / "early_back"))["discriminator"]  # type: ignore[arg-type]

    late = Stage1Loss(disc_start=1)  # the discriminator has taken a step: it must travel
    run_training(_opts(1, tmp_path / "late", micro_config, steps=2, loss=late), dataset=data)
    pack(tmp_path / "late", tmp_path / "late_parts", part_mib=1)
    carried = load_checkpoint(unpack(tmp_path / "late_parts", tmp_path / "late_back"))["discriminator"]
    trained = load_checkpoint(latest_checkpoint(tmp_path / "late"))["discriminator"]  # type: ignore[arg-type]
    assert carried.keys() == trained.keys()
    assert all(torch.equal(carried[k], trained[k]) for k in trained)


def test_the_average_can_travel_in_place_of_the_live_weights(tmp_path: Path, micro_config: str) -> None:
    data = FixedTriplets(4)
    run_training(_opts(1, tmp_path / "run", micro_config, steps=2, ae_ema=0.9), dataset=data)
    full = load_checkpoint(latest_checkpoint(tmp_path / "run"))  # type: ignore[arg-type]
    shadow = full["ema"]["shadow"]
    assert any(not torch.equal(full["model"][k], v) for k, v in shadow.items())  # two different copies

    both = pack(tmp_path / "run", tmp_path / "both", part_mib=1)
    average = pack(tmp_path / "run", tmp_path / "average", part_mib=1, weights="average")
    assert sum(p.stat().st_size for p in average) < 0.75 * sum(p.stat().st_size for p in both)
    carried = load_checkpoint(unpack(tmp_path / "average", tmp_path / "back"))
    assert carried["ema"] is None and carried.keys() == full.keys()
    for key, value in full["model"].items():  # the average where there is one, the rest (buffers) as saved
        assert torch.equal(carried["model"][key], shadow.get(key, value)), key

    resumed = run_training(_opts(1, tmp_path / "back", micro_config, steps=3, resume="auto", ae_ema=0.9),
                           dataset=data)  # a new average starts at the carried weights
    assert resumed["step"] == 3

    run_training(_opts(1, tmp_path / "plain", micro_config, steps=1), dataset=data)
    with pytest.raises(ValueError, match=r"step_0+1\.pt: no average of the autoencoder"):
        pack(tmp_path / "plain", tmp_path / "plain_parts", weights="average")
