# SPDX-License-Identifier: MIT
"""Re-opening the latent path of a stage-1 checkpoint (ldmvfi_core.train.reopen)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from ldmvfi_core.model.checkpoint import AE_PREFIX
from ldmvfi_core.model.ldmvfi import LatentDiffusionVFI
from ldmvfi_core.train.checkpoint import TrainCheckpointError, list_checkpoints, load_checkpoint
from ldmvfi_core.train.loop import run_training
from ldmvfi_core.train.reopen import main, reopen_latent, reopened_names
from tests.unit.test_train_loop import MICRO, FixedTriplets, _opts


def _latent_spread(model_state: dict[str, torch.Tensor], frames: torch.Tensor) -> tuple[float, float]:
    """(std of the latent across frames at a position, std across positions) of the autoencoder in
    ``model_state``: the probe of tools/ae_probe.py check, on random frames."""
    model = LatentDiffusionVFI(MICRO)
    model.load_state_dict({**model.state_dict(), **model_state})
    with torch.no_grad():
        z, _ = model.first_stage_model.encode(frames)
    return float(z.std(dim=0).mean()), float(z.flatten(2).std(dim=2).mean())


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A two-step micro stage-1 run: (its config file, its last checkpoint)."""
    root = tmp_path_factory.mktemp("reopen")
    config = root / "micro.json"
    config.write_text(json.dumps(MICRO.to_official()))
    run_training(_opts(1, root / "run", str(config), steps=2, perceptual="off"), FixedTriplets(4))
    return config, list_checkpoints(root / "run")[-1][1]


def test_reopens_both_ends_of_the_latent_and_keeps_the_rest(trained: tuple[Path, Path]) -> None:
    source = load_checkpoint(trained[1])
    # a collapsed latent as in the shipped lineage: quant_conv maps every frame to its bias
    source["model"][AE_PREFIX + "quant_conv.weight"].zero_()
    frames = torch.rand(4, 3, 64, 64) * 2 - 1
    across_frames, across_positions = _latent_spread(source["model"], frames)
    assert across_frames == 0.0 and across_positions == 0.0
    out = reopen_latent(source, seed=3)
    names = set(reopened_names(source["model"]))
    assert {AE_PREFIX + n for n in ("quant_conv.weight", "post_quant_conv.bias", "decoder.conv_in.weight",
                                   "quantize.embedding.weight")} <= names
    for name, tensor in source["model"].items():
        if name in names:
            assert not torch.equal(out["model"][name], tensor), name
        else:
            assert torch.equal(out["model"][name], tensor), name
    n_embed = MICRO.autoencoder.n_embed
    assert float(out["model"][AE_PREFIX + "quantize.embedding.weight"].abs().max()) <= 1.0 / n_embed
    again_frames, _ = _latent_spread(out["model"], frames)
    assert again_frames > 1e-3  # the latent tells frames apart again
    assert out["optimizers"] == {} and out["codebook_usage"] is None and out["step"] == source["step"]
    assert out["reopened"]["step"] == source["step"] and sorted(out["reopened"]["tensors"]) == sorted(names)
    same_seed = reopen_latent(load_checkpoint(trained[1]), seed=3)
    assert all(torch.equal(same_seed["model"][n], out["model"][n]) for n in names)  # seeded


def test_stage1_resumes_from_a_reopened_checkpoint(trained: tuple[Path, Path], tmp_path: Path) -> None:
    config, source = trained
    target = tmp_path / "reopened" / "checkpoints" / "step_00000002.pt"
    main([str(target), str(source)])
    reopened = load_checkpoint(target)["model"]
    res = run_training(_opts(1, tmp_path / "reopened", str(config), steps=3, resume="auto", perceptual="off"),
                       FixedTriplets(4))
    assert res["step"] == 3
    after = load_checkpoint(list_checkpoints(tmp_path / "reopened")[-1][1])["model"]
    name = AE_PREFIX + "quant_conv.weight"
    assert not torch.equal(after[name], reopened[name])  # the fresh end trains


def test_refuses_a_stage2_checkpoint_with_one_line(trained: tuple[Path, Path]) -> None:
    state = load_checkpoint(trained[1])
    state["stage"] = 2
    with pytest.raises(TrainCheckpointError, match="stage-2") as err:
        reopen_latent(state)
    assert "\n" not in str(err.value)
    with pytest.raises(SystemExit, match=r"reopen: .*no such checkpoint"):
        main([str(trained[1].parent / "out.pt"), str(trained[1].parent / "absent.pt")])
