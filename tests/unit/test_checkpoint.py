# SPDX-License-Identifier: MIT
"""Checkpoint layout: the released manifest, official .ckpt files, our safetensors, bad files."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
import torch

from ldmvfi_core.config import LDMVFIConfig
from ldmvfi_core.interpolate import load_model
from ldmvfi_core.model.checkpoint import CheckpointError, infer_config, read_tensors
from ldmvfi_core.model.export import official_state_dict, save_safetensors
from ldmvfi_core.model.ldmvfi import LatentDiffusionVFI
from tests.conftest import FIXTURES, TINY


def _manifest() -> dict[str, tuple[int, ...]]:
    data = json.loads(gzip.decompress((FIXTURES / "full_manifest.json.gz").read_bytes()))
    return {e["key"]: tuple(e["shape"]) for e in data["keys"]}


def test_released_config_matches_the_official_manifest_exactly() -> None:
    with torch.device("meta"):
        model = LatentDiffusionVFI(LDMVFIConfig.released())
    ours = {k: tuple(v.shape) for k, v in official_state_dict(model).items()}
    manifest = _manifest()
    extra, missing = sorted(set(ours) - set(manifest)), sorted(set(manifest) - set(ours))
    assert not extra and not missing, (extra[:5], missing[:5])
    assert ours == manifest
    unet = sum(v.numel() for k, v in model.state_dict().items() if k.startswith("model.diffusion_model."))
    assert unet == 416_464_883


def test_released_config_is_inferred_from_the_manifest_shapes() -> None:
    fake = {k: torch.empty(s, device="meta") for k, s in _manifest().items()}
    assert infer_config(fake, "manifest") == LDMVFIConfig.released()


def test_config_round_trips_through_the_official_layout() -> None:
    for cfg in (LDMVFIConfig.released(), LDMVFIConfig.tiny()):
        assert LDMVFIConfig.from_official(cfg.to_official()) == cfg


def test_tiny_config_json_and_tiny_weights_agree(tiny_official_config: dict) -> None:
    from_json = LDMVFIConfig.from_official(tiny_official_config)
    assert from_json == LDMVFIConfig.tiny()
    tensors, _ = read_tensors(TINY / "weights.safetensors")
    assert infer_config(tensors, "tiny") == from_json


class _HyperParameters:  # stands for the OmegaConf object a Lightning file pickles
    def __init__(self) -> None:
        self.lr = 1e-6


def _tiny_model(seed: int) -> LatentDiffusionVFI:
    torch.manual_seed(seed)
    return LatentDiffusionVFI(LDMVFIConfig.tiny())


def _write_lightning_ckpt(path: Path, state: dict[str, torch.Tensor]) -> None:
    torch.save({"epoch": 7, "global_step": 123, "pytorch-lightning_version": "1.4.2",
                "hyper_parameters": _HyperParameters(), "optimizer_states": [],
                "state_dict": state}, path)


def test_lightning_ckpt_loads_with_weights_only_and_uses_ema(tmp_path: Path) -> None:
    live, ema = _tiny_model(1), _tiny_model(2)
    state = official_state_dict(live)
    for key, value in official_state_dict(ema).items():
        if key.startswith("model_ema."):
            state[key] = value
    ckpt = tmp_path / "ldmvfi.ckpt"
    _write_lightning_ckpt(ckpt, state)

    loaded = load_model(ckpt)  # default: EMA
    for key, value in ema.state_dict().items():
        if key.startswith("model.diffusion_model."):
            assert torch.equal(loaded.state_dict()[key], value), key
    for key, value in live.state_dict().items():
        if key.startswith("first_stage_model."):
            assert torch.equal(loaded.state_dict()[key], value), key
    loaded_live = load_model(ckpt, weights="live")
    key = "model.diffusion_model.out.2.weight"
    assert torch.equal(loaded_live.state_dict()[key], live.state_dict()[key])


def test_safetensors_round_trip_keeps_config_and_weights(tmp_path: Path) -> None:
    model = _tiny_model(3)
    path = tmp_path / "ours.safetensors"
    save_safetensors(model, path)
    loaded = load_model(path)
    assert loaded.config == model.config
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key


def test_truncated_checkpoint_fails_in_one_line_naming_the_file(tmp_path: Path) -> None:
    ckpt = tmp_path / "cut.ckpt"
    _write_lightning_ckpt(ckpt, official_state_dict(_tiny_model(4)))
    ckpt.write_bytes(ckpt.read_bytes()[: ckpt.stat().st_size // 2])
    with pytest.raises(CheckpointError) as err:
        load_model(ckpt)
    assert str(ckpt) in str(err.value) and "\n" not in str(err.value)


def test_corrupt_safetensors_fails_clearly(tmp_path: Path) -> None:
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all}")
    with pytest.raises(CheckpointError, match=r"bad\.safetensors"):
        load_model(bad)


def test_mismatched_shape_names_the_first_bad_key(tmp_path: Path) -> None:
    state = official_state_dict(_tiny_model(5))
    state["first_stage_model.decoder.conv_out.weight"] = torch.zeros(3, 3, 3, 3)
    ckpt = tmp_path / "mismatch.ckpt"
    _write_lightning_ckpt(ckpt, state)
    expected = r"mismatch\.ckpt: key 'first_stage_model\.decoder\.conv_out\.weight'"
    with pytest.raises(CheckpointError, match=expected):
        load_model(ckpt, config=LDMVFIConfig.tiny())


def test_missing_key_is_named(tmp_path: Path) -> None:
    state = official_state_dict(_tiny_model(6))
    del state["model.diffusion_model.out.2.bias"]
    del state["model_ema.diffusion_modelout2bias"]
    ckpt = tmp_path / "missing.ckpt"
    _write_lightning_ckpt(ckpt, state)
    with pytest.raises(CheckpointError, match=r"missing key 'model\.diffusion_model\.out\.2\.bias'"):
        load_model(ckpt, config=LDMVFIConfig.tiny())


def test_not_a_checkpoint_and_no_file(tmp_path: Path) -> None:
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(b"hello")
    with pytest.raises(CheckpointError, match=r"junk\.ckpt: not a PyTorch checkpoint"):
        load_model(junk)
    with pytest.raises(CheckpointError, match=r"nope\.ckpt: no such weights file"):
        load_model(tmp_path / "nope.ckpt")


def test_real_tiny_weights_load_with_and_without_cond_stage_copy(
    tmp_path: Path, tiny_weights: dict
) -> None:
    model = load_model(TINY / "weights.safetensors")
    with_copy = dict(tiny_weights)
    for k, v in tiny_weights.items():
        if k.startswith("first_stage_model."):
            with_copy["cond_stage_model." + k[len("first_stage_model."):]] = v
    ckpt = tmp_path / "with_copy.ckpt"
    _write_lightning_ckpt(ckpt, with_copy)
    again = load_model(ckpt)
    for key, value in model.state_dict().items():
        assert torch.equal(again.state_dict()[key], value), key


def test_config_reads_the_official_yaml_layout(tmp_path: Path, tiny_official_config: dict) -> None:
    import yaml

    path = tmp_path / "ldmvfi-tiny.yaml"
    path.write_text(yaml.safe_dump(tiny_official_config))
    assert LDMVFIConfig.from_file(path) == LDMVFIConfig.tiny()


def test_recommended_steps_round_trip_and_leave_the_tensors_alone(tmp_path: Path) -> None:
    from safetensors import safe_open

    from ldmvfi_core.model.export import set_default_steps

    path = tmp_path / "ours.safetensors"
    model = _tiny_model(4)
    save_safetensors(model, path)
    assert load_model(path).default_steps is None  # no recommendation: the paper's 200 apply
    set_default_steps(path, 12)
    loaded = load_model(path)
    assert loaded.default_steps == 12
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    save_safetensors(loaded, tmp_path / "again.safetensors")  # an export keeps it
    assert load_model(tmp_path / "again.safetensors").default_steps == 12
    set_default_steps(path, None)
    with safe_open(str(path), framework="pt") as f:
        assert "default_steps" not in (f.metadata() or {})
    with pytest.raises(ValueError, match="at least 1"):
        set_default_steps(path, 0)


@pytest.mark.parametrize("text", ["ten", "0", "-3", "2.5"])
def test_bad_recommended_steps_name_the_file(tmp_path: Path, text: str) -> None:
    from safetensors.torch import save_file

    good = tmp_path / "good.safetensors"
    save_safetensors(_tiny_model(5), good)
    tensors, metadata = read_tensors(good)
    bad = tmp_path / "bad.safetensors"
    save_file(tensors, str(bad), metadata={**metadata, "default_steps": text})
    with pytest.raises(CheckpointError, match=r"bad\.safetensors: metadata default_steps"):
        load_model(bad)
