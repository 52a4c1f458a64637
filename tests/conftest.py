# SPDX-License-Identifier: MIT
"""Shared fixtures: the official tiny-config golden vectors copied into tests/fixtures/tiny."""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest
import torch
from safetensors.torch import load_file

FIXTURES = Path(__file__).parent / "fixtures"

# One intra-op thread: on a 2-core CI box, torch's thread pool fighting pytest (or a second job)
# made model tests 10x slower; one thread is predictable and keeps results bit-stable.
torch.set_num_threads(1)
TINY = FIXTURES / "tiny"


def load_tool(name: str) -> ModuleType:
    """``tools/NAME.py`` as a module (the tools are scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(name, Path(__file__).resolve().parents[1] / "tools" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def tiny_recommending(steps: int, folder: Path) -> Path:
    """The tiny weights saved in our format with ``steps`` as their recommended DDIM step count."""
    from ldmvfi_core.interpolate import load_model
    from ldmvfi_core.model.export import save_safetensors

    model = load_model(TINY / "weights.safetensors")
    model.default_steps = steps
    path = folder / f"tiny_{steps}_steps.safetensors"
    save_safetensors(model, path)
    return path


@pytest.fixture(autouse=True)
def _strict_fp32() -> None:
    # The goldens were made in strict float32 (TF32 off); keep CPU results deterministic too.
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def tiny_dir() -> Path:
    return TINY


@pytest.fixture(scope="session")
def tiny_official_config() -> dict:
    return json.loads((TINY / "config.json").read_text())


@pytest.fixture(scope="session")
def tiny_weights() -> dict[str, torch.Tensor]:
    """Official key names: first_stage_model.*, model.diffusion_model.*, model_ema.*, schedule."""
    return load_file(TINY / "weights.safetensors")


@pytest.fixture(scope="session")
def golden() -> Callable[[str], dict[str, torch.Tensor]]:
    """golden("encode") -> the tensors of tests/fixtures/tiny/encode.safetensors."""
    cache: dict[str, dict[str, torch.Tensor]] = {}

    def load(name: str) -> dict[str, torch.Tensor]:
        if name not in cache:
            cache[name] = load_file(TINY / f"{name}.safetensors")
        return cache[name]

    return load


def ema_key(unet_key: str) -> str:
    """EMA shadow name of a U-Net parameter: dots removed, as in the official checkpoints.

    ``input_blocks.1.0.in_layers.2.weight`` -> ``model_ema.diffusion_modelinput_blocks10in_layers2weight``
    """
    return "model_ema." + ("diffusion_model." + unet_key).replace(".", "")


def frame_from_u8(u8: torch.Tensor) -> torch.Tensor:
    """(3,H,W) uint8 -> (1,3,H,W) float32 in [-1, 1], exactly as the official loaders do it."""
    return ((u8.to(torch.float32) / 255.0 - 0.5) / 0.5)[None]


def crops(t: torch.Tensor) -> dict[str, torch.Tensor]:
    """The three 16x16 windows the goldens store for large maps (see fixtures/tiny/README.md)."""
    h, w = t.shape[-2:]
    return {
        "crop_tl": t[..., 0:16, 0:16],
        "crop_c": t[..., h // 2 - 8 : h // 2 + 8, w // 2 - 8 : w // 2 + 8],
        "crop_br": t[..., h - 16 :, w - 16 :],
    }
