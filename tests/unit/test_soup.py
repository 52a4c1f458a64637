# SPDX-License-Identifier: MIT
"""Weight averaging of training checkpoints (ldmvfi_core.train.soup): exact means, refusals."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ldmvfi_core.config import LDMVFIConfig
from ldmvfi_core.model.ldmvfi import LatentDiffusionVFI
from ldmvfi_core.train.checkpoint import FORMAT, VERSION, TrainCheckpointError, load_checkpoint, save_checkpoint
from ldmvfi_core.train.loop import load_init_weights
from ldmvfi_core.train.soup import average_checkpoints, main


def _checkpoint(path: Path, model: dict[str, torch.Tensor], step: int, config: dict | None = None,
                ema: dict | None = None, stage: int | None = None) -> Path:
    state = {"format": FORMAT, "version": VERSION, "stage": stage or (2 if ema else 1), "step": step, "seed": 0,
             "config": config or {"name": "toy"}, "train": {"lr": 5e-5}, "model": model,
             "discriminator": None, "ema": ema, "optimizers": {"ae": {}}, "data": {}, "rng": {}}
    return save_checkpoint(state, path)


def _toy(value: float, count: int = 3) -> dict[str, torch.Tensor]:
    return {"w": torch.full((2, 3), value), "half": torch.full((4,), value, dtype=torch.float16),
            "counter": torch.tensor([count], dtype=torch.int64)}


def test_mean_and_weighted_mean_are_exact(tmp_path: Path) -> None:
    a = _checkpoint(tmp_path / "a.pt", _toy(1.0), 100)
    b = _checkpoint(tmp_path / "b.pt", _toy(2.0), 250)
    c = _checkpoint(tmp_path / "c.pt", _toy(6.0), 180)
    soup = average_checkpoints([a, b, c])
    assert torch.equal(soup["model"]["w"], torch.full((2, 3), 3.0))
    assert soup["model"]["half"].dtype == torch.float16 and float(soup["model"]["half"][0]) == 3.0
    assert torch.equal(soup["model"]["counter"], torch.tensor([3]))
    counted = average_checkpoints([a, _checkpoint(tmp_path / "d.pt", _toy(1.0, count=7), 1)])
    assert torch.equal(counted["model"]["counter"], torch.tensor([7]))  # a counter keeps the largest
    assert soup["step"] == 250 and soup["soup"]["steps"] == [100, 250, 180]
    weighted = average_checkpoints([a, b], weights=[3, 1])
    assert torch.allclose(weighted["model"]["w"], torch.full((2, 3), 1.25))
    assert weighted["soup"]["weights"] == [0.75, 0.25]


def test_stage2_soups_average_the_ema_shadows_too(tmp_path: Path) -> None:
    def ema(value: float, updates: int) -> dict:
        return {"decay": 0.9999, "num_updates": updates, "shadow": {"u": torch.full((3,), value)}}

    a = _checkpoint(tmp_path / "a.pt", _toy(1.0), 10, ema=ema(2.0, 10))
    b = _checkpoint(tmp_path / "b.pt", _toy(3.0), 30, ema=ema(4.0, 30))
    soup = average_checkpoints([a, b])
    assert soup["stage"] == 2 and torch.equal(soup["model"]["w"], torch.full((2, 3), 2.0))
    assert torch.equal(soup["ema"]["shadow"]["u"], torch.full((3,), 3.0)) and soup["ema"]["num_updates"] == 30


def test_averages_mix_a_start_without_one_with_arms_that_kept_one(tmp_path: Path) -> None:
    def ema(value: float) -> dict:
        return {"decay": 0.998, "num_updates": 50, "shadow": {"w": torch.full((2, 3), value)}}

    start = _checkpoint(tmp_path / "start.pt", _toy(1.0), 10)
    arm = _checkpoint(tmp_path / "arm.pt", _toy(3.0), 20, ema=ema(5.0), stage=1)  # stage 1 with --ae-ema
    mix = average_checkpoints([start, arm], weights=[3, 1], averages=True)
    assert torch.allclose(mix["model"]["w"], torch.full((2, 3), 0.75 * 1.0 + 0.25 * 5.0))  # the arm's average
    assert torch.allclose(mix["model"]["half"].float(), torch.full((4,), 0.75 + 0.25 * 3.0))  # no average: live
    assert mix["ema"] is None
    live = average_checkpoints([start, arm], weights=[3, 1])  # without the flag, the live weights
    assert torch.allclose(live["model"]["w"], torch.full((2, 3), 1.5))


def test_soup_is_a_loadable_checkpoint_and_a_stage2_starting_point(tmp_path: Path) -> None:
    """Real model weights: the soup saved through the CLI loads with weights_only and
    --init-from reads the mean autoencoder from it."""
    config = LDMVFIConfig.tiny()
    torch.manual_seed(0)
    one = LatentDiffusionVFI(config).state_dict()
    two = {k: v + 0.5 if v.is_floating_point() else v for k, v in one.items()}
    ae = {k: v for k, v in one.items() if k.startswith("first_stage_model.")}
    ae2 = {k: v for k, v in two.items() if k.startswith("first_stage_model.")}
    a = _checkpoint(tmp_path / "a.pt", ae, 10, config.to_official())
    b = _checkpoint(tmp_path / "b.pt", ae2, 20, config.to_official())
    main([str(tmp_path / "soup" / "s.pt"), str(a), str(b)])
    state = load_checkpoint(tmp_path / "soup" / "s.pt")
    assert state["optimizers"] == {} and state["discriminator"] is None
    init = load_init_weights(str(tmp_path / "soup" / "s.pt"))
    for name, tensor in ae.items():
        expected = tensor + 0.25 if tensor.is_floating_point() else tensor
        assert torch.allclose(init[name], expected, atol=1e-6), name


def test_refuses_mixed_lineages_with_one_line_naming_the_file(tmp_path: Path) -> None:
    a = _checkpoint(tmp_path / "a.pt", _toy(1.0), 1)
    other_config = _checkpoint(tmp_path / "cfg.pt", _toy(1.0), 1, {"name": "other"})
    other_shape = _checkpoint(tmp_path / "shape.pt", {**_toy(1.0), "w": torch.zeros(3, 2)}, 1)
    missing = _checkpoint(tmp_path / "keys.pt", {"w": torch.zeros(2, 3)}, 1)
    for bad, words in [(other_config, "config"), (other_shape, "shape"), (missing, "tensor names")]:
        with pytest.raises(TrainCheckpointError, match=words) as err:
            average_checkpoints([a, bad])
        assert str(bad) in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(ValueError, match="at least two"):
        average_checkpoints([a])
    with pytest.raises(ValueError, match="one non-negative weight each"):
        average_checkpoints([a, a], weights=[1.0])
    with pytest.raises(SystemExit, match="no such checkpoint"):
        main([str(tmp_path / "out.pt"), str(a), str(tmp_path / "absent.pt")])


def test_stage1_resumes_from_a_soup_of_two_runs(tmp_path: Path) -> None:
    """Two micro runs from different seeds, their soup, then --resume from it: training goes on
    from the averaged weights (fresh Adam moments, as from a carried checkpoint)."""
    import json

    from ldmvfi_core.train.checkpoint import list_checkpoints
    from ldmvfi_core.train.loop import run_training
    from tests.unit.test_train_loop import MICRO, FixedTriplets, _opts

    config = tmp_path / "micro.json"
    config.write_text(json.dumps(MICRO.to_official()))
    data = FixedTriplets(4)
    ends = []
    for seed in (0, 1):
        run_training(_opts(1, tmp_path / f"run{seed}", str(config), steps=2, seed=seed, perceptual="off"), data)
        ends.append(list_checkpoints(tmp_path / f"run{seed}")[-1][1])
    soup_path = tmp_path / "soup" / "checkpoints" / "step_00000002.pt"
    main([str(soup_path), *map(str, ends)])
    soup = load_checkpoint(soup_path)["model"]
    res = run_training(_opts(1, tmp_path / "soup", str(config), steps=3, resume="auto", perceptual="off"), data)
    assert res["step"] == 3
    trained = load_checkpoint(list_checkpoints(tmp_path / "soup")[-1][1])["model"]
    name = "first_stage_model.decoder.conv_out.weight"
    one, two = (load_checkpoint(p)["model"][name] for p in ends)
    assert torch.allclose(soup[name], (one + two) / 2) and not torch.equal(one, two)
    moved = (trained[name] - soup[name]).norm()
    assert 0 < moved < 0.25 * (one - two).norm()  # one step on from the mean, not a fresh start
