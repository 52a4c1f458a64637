# SPDX-License-Identifier: MIT
"""Farm test fixtures: a small generated EXR plate, the tiny model, and how to start `ldmvfi` / `openjd`."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
TINY_MODEL = ROOT / "tests" / "fixtures" / "tiny" / "weights.safetensors"
SHIM = Path(__file__).with_name("ldmvfi_shim.py")
WIDTH, HEIGHT = 48, 40
SOURCE_FRAMES = (1, 2, 3)


def write_plate(folder: Path, frames: Sequence[int] = SOURCE_FRAMES) -> str:
    """A soft blob moving right over gradients: RGBA half EXRs ``folder/plate.####.exr``."""
    import OpenImageIO as oiio

    folder.mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    for i, frame in enumerate(frames):
        pixels = np.empty((HEIGHT, WIDTH, 4), np.float32)
        pixels[..., 0] = 2.0 * np.exp(-((xx - 14 - 6 * i) ** 2 + (yy - 20) ** 2) / 60)
        pixels[..., 1] = 0.5 * xx / WIDTH
        pixels[..., 2] = 0.05 + 0.3 * yy / HEIGHT
        pixels[..., 3] = 1.0
        spec = oiio.ImageSpec(WIDTH, HEIGHT, 4, oiio.HALF)
        spec.channelnames = ("R", "G", "B", "A")
        path = str(folder / f"plate.{frame:04d}.exr")
        out = oiio.ImageOutput.create(path)
        assert out is not None and out.open(path, spec), oiio.geterror()
        assert out.write_image(pixels), out.geterror()
        out.close()
    return str(folder / "plate.####.exr")


def read_pixels(path: Path) -> np.ndarray:
    import OpenImageIO as oiio

    image = oiio.ImageInput.open(str(path))
    assert image is not None, oiio.geterror()
    try:
        return np.asarray(image.read_image(oiio.FLOAT))
    finally:
        image.close()


def read_attribute(path: Path, name: str) -> object:
    import OpenImageIO as oiio

    image = oiio.ImageInput.open(str(path))
    assert image is not None, oiio.geterror()
    try:
        return image.spec().getattribute(name)
    finally:
        image.close()


def _farm_is_wired() -> bool:
    """Whether `ldmvfi farm` reaches main_farm (once ldmvfi_core.cli routes it)."""
    from ldmvfi_core.cli import main

    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        try:
            return main(["farm", "--help"]) == 0
        except SystemExit as stop:
            return stop.code in (0, None)


@pytest.fixture(scope="session")
def ldmvfi_command() -> list[str]:
    """How the farm tasks start LDMVFI here: ``python -m ldmvfi_core.cli``, or the test shim until
    ``ldmvfi farm`` is wired into it."""
    if any(c.isspace() for c in sys.executable + str(SHIM)):
        pytest.skip("LdmvfiCommand is split on white space; this Python's path has a space")
    if _farm_is_wired():
        return [sys.executable, "-m", "ldmvfi_core.cli"]
    return [sys.executable, str(SHIM)]


@pytest.fixture(scope="session")
def run_env() -> dict[str, str]:
    """Environment of every subprocess: this checkout first, one torch thread (fast, same everywhere)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    env["OMP_NUM_THREADS"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    return env


@pytest.fixture(scope="session")
def openjd() -> str:
    exe = shutil.which("openjd")
    if exe is None:
        pytest.skip("openjd is not installed (pip install openjd-cli)")
    return exe


def run_openjd(openjd: str, args: Sequence[str], env: dict[str, str], cwd: Path,
               timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``openjd ARGS`` with its log captured (never through a pipe that closes early: it would hang)."""
    return subprocess.run([openjd, *args], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, check=False)
