# SPDX-License-Identifier: MIT
"""The ``ldmvfi`` command: interpolate, info, convert, and one-line errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from ldmvfi_core.cli import main
from ldmvfi_core.io.colour import srgb_decode, srgb_encode
from ldmvfi_core.io.images import read_image, write_image
from tests.conftest import TINY

WEIGHTS = str(TINY / "weights.safetensors")


def _pair(tmp_path: Path, suffix: str) -> tuple[Path, Path]:
    rng = np.random.default_rng(0)
    paths = (tmp_path / f"a{suffix}", tmp_path / f"b{suffix}")
    for p in paths:
        write_image(p, rng.random((24, 40, 3), dtype=np.float32))
    return paths


@pytest.mark.parametrize("suffix", [".exr", ".png"])
def test_interpolate_writes_a_frame_of_the_input_size(tmp_path: Path, suffix: str) -> None:
    a, b = _pair(tmp_path, suffix)
    out = tmp_path / f"mid{suffix}"
    assert main(["interpolate", str(a), str(b), "-o", str(out), "--model", WEIGHTS, "--steps", "5"]) == 0
    pixels = read_image(out)
    assert pixels.shape == (24, 40, 3) and np.isfinite(pixels).all()
    assert not list(tmp_path.glob(".*tmp*")), "temporary file left behind"


def test_interpolate_ensemble_is_the_interpolators(tmp_path: Path) -> None:
    """``--ensemble 4`` reaches the model: the frame is the Python API's ensemble of 4, not the model alone."""
    from ldmvfi_core.interpolate import Interpolator

    a, b = _pair(tmp_path, ".exr")
    out = tmp_path / "mid.exr"
    args = ["interpolate", str(a), str(b), "-o", str(out), "--model", WEIGHTS, "--steps", "4", "--transfer", "none"]
    assert main([*args, "--ensemble", "4"]) == 0
    f0, f1 = read_image(a), read_image(b)
    expected = Interpolator.load(WEIGHTS, ensemble=4).interpolate(f0, f1, steps=4)
    np.testing.assert_allclose(read_image(out), expected, atol=5e-4)  # the EXR stores half floats
    alone = Interpolator.load(WEIGHTS).interpolate(f0, f1, steps=4)
    assert np.abs(read_image(out) - alone).max() > 1e-3


def test_missing_input_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a, _ = _pair(tmp_path, ".exr")
    code = main(["interpolate", str(a), str(tmp_path / "gone.exr"), "-o", str(tmp_path / "m.exr"),
                 "--model", WEIGHTS])
    err = capsys.readouterr().err
    assert code == 2 and "gone.exr: no such file" in err and err.count("\n") == 1


def test_different_sizes_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a, _ = _pair(tmp_path, ".exr")
    small = tmp_path / "small.exr"
    write_image(small, np.zeros((10, 10, 3), np.float32))
    assert main(["interpolate", str(a), str(small), "-o", str(tmp_path / "m.exr"), "--model", WEIGHTS]) == 2
    assert "small.exr" in capsys.readouterr().err


def test_convert_then_info_round_trip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "tiny.safetensors"
    assert main(["convert", WEIGHTS, str(out)]) == 0
    assert main(["info", str(out)]) == 0
    printed = capsys.readouterr().out
    assert '"parameters": 1859576' in printed and '"default_steps": 200' in printed  # none recommended
    assert main(["info"]) == 0 and '"default_steps": 10' in capsys.readouterr().out  # the shipped model


def test_srgb_transfer_is_exactly_invertible_for_hdr_and_negative_values() -> None:
    values = np.array([-2.0, -0.001, 0.0, 0.002, 0.18, 1.0, 16.0, 33664.0], np.float32)
    np.testing.assert_allclose(srgb_decode(srgb_encode(values)), values, rtol=2e-6)
    assert torch.tensor(srgb_encode(np.array([0.18], np.float32))).item() == pytest.approx(0.4614, abs=1e-4)


def test_negative_steps_are_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a, b = _pair(tmp_path, ".png")
    code = main(["interpolate", str(a), str(b), "-o", str(tmp_path / "m.png"), "--model", WEIGHTS, "--steps", "-1"])
    err = capsys.readouterr().err
    assert code == 2 and "steps must be 0 (the model's own) or more, got -1" in err and err.count("\n") == 1
    assert not (tmp_path / "m.png").exists()
