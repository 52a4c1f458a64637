# SPDX-License-Identifier: MIT
"""A stage-1 training checkpoint made from a weights file (ldmvfi_core.train.from_weights)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from ldmvfi_core.model.checkpoint import AE_PREFIX
from ldmvfi_core.model.ldmvfi import LatentDiffusionVFI
from ldmvfi_core.train.checkpoint import (
    TrainCheckpointError,
    checkpoint_path,
    list_checkpoints,
    load_checkpoint,
    save_checkpoint,
)
from ldmvfi_core.train.from_weights import stage1_checkpoint_from_weights
from ldmvfi_core.train.loop import checkpoint_rate, export_weights, run_training
from ldmvfi_core.train.reopen import main as reopen_main
from ldmvfi_core.train.reopen import reopened_names
from tests.unit.test_train_loop import MICRO, FixedTriplets, _opts


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, torch.Tensor]]:
    """A seeded micro model exported in float16 as our safetensors file: (file, its float32 state)."""
    torch.manual_seed(5)
    model = LatentDiffusionVFI(MICRO)
    state = {k: v.to(torch.float16).to(torch.float32) for k, v in model.state_dict().items()}
    path = tmp_path_factory.mktemp("weights") / "micro.safetensors"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        export_weights(MICRO, state, path, weights_dtype=torch.float16, stage="2", training_step="9")
    return path, state


def test_the_checkpoint_holds_the_files_autoencoder_and_config(weights: tuple[Path, dict[str, torch.Tensor]]) -> None:
    path, state = weights
    ckpt = stage1_checkpoint_from_weights(path, step=41)
    expected = {k: v for k, v in state.items() if k.startswith(AE_PREFIX)}
    assert sorted(ckpt["model"]) == sorted(expected)
    for name, tensor in expected.items():
        assert ckpt["model"][name].dtype == torch.float32 and torch.equal(ckpt["model"][name], tensor), name
    assert ckpt["stage"] == 1 and ckpt["step"] == 41 and ckpt["optimizers"] == {} and ckpt["discriminator"] is None
    assert ckpt["config"] == MICRO.to_official()
    assert checkpoint_rate(ckpt) is None  # no rate to keep: resuming does not warn of a changed one


def test_stage1_resumes_from_it_without_a_rate_warning(weights: tuple[Path, dict[str, torch.Tensor]],
                                                      tmp_path: Path) -> None:
    path, state = weights
    config = tmp_path / "micro.json"
    config.write_text(json.dumps(MICRO.to_official()))
    save_checkpoint(stage1_checkpoint_from_weights(path, step=3), checkpoint_path(tmp_path / "run", 3))
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # a rate warning would fail the test
        res = run_training(_opts(1, tmp_path / "run", str(config), steps=4, resume="auto", perceptual="off",
                                 lr=None), FixedTriplets(4))
    assert res["step"] == 4
    after = load_checkpoint(list_checkpoints(tmp_path / "run")[-1][1])["model"]
    name = AE_PREFIX + "decoder.conv_in.weight"
    assert not torch.equal(after[name], state[name])  # it trained from the file's weights


def test_reopen_takes_a_weights_file(weights: tuple[Path, dict[str, torch.Tensor]], tmp_path: Path) -> None:
    path, state = weights
    target = tmp_path / "reopened" / "checkpoints" / "step_00022005.pt"
    reopen_main([str(target), str(path), "--step", "22005"])
    out = load_checkpoint(target)
    names = set(reopened_names(out["model"]))
    assert out["step"] == 22005 and out["reopened"]["step"] == 22005 and names
    for name, tensor in out["model"].items():
        assert torch.equal(tensor, state[name]) != (name in names), name


def test_refuses_a_file_without_our_metadata_in_one_line(tmp_path: Path) -> None:
    bare = tmp_path / "bare.safetensors"
    save_file({AE_PREFIX + "quant_conv.weight": torch.zeros(3, 3, 1, 1)}, str(bare))
    with pytest.raises(TrainCheckpointError, match=r"bare\.safetensors: no model config") as err:
        stage1_checkpoint_from_weights(bare)
    assert "\n" not in str(err.value)
    with pytest.raises(TrainCheckpointError, match=r"absent\.safetensors"):
        stage1_checkpoint_from_weights(tmp_path / "absent.safetensors")


def test_the_command_writes_a_checkpoint_stage1_resumes_from(weights: tuple[Path, dict[str, torch.Tensor]],
                                                             tmp_path: Path) -> None:
    from ldmvfi_core.train.from_weights import main

    main([str(weights[0]), str(tmp_path / "run"), "--step", "12"])
    assert [step for step, _ in list_checkpoints(tmp_path / "run")] == [12]
    with pytest.raises(SystemExit, match=r"from_weights: .*absent\.safetensors"):
        main([str(tmp_path / "absent.safetensors"), str(tmp_path / "run2")])
