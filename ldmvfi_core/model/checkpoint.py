# SPDX-License-Identifier: MIT
"""Read weights: the official Lightning ``.ckpt`` and our own safetensors files.

Safety: ``.ckpt`` files are opened with ``torch.load(weights_only=True)`` only. A Lightning file
also pickles objects that are not tensors (OmegaConf hyper-parameters, callback states); those
globals are allow-listed as an inert placeholder class, so no code from the file ever runs and
only the tensors under ``state_dict`` are used.

Layouts (key names, NOTES.md §11):

* official: ``first_stage_model.*`` (autoencoder), ``cond_stage_model.*`` (the same autoencoder
  saved again: ignored), ``model.diffusion_model.*`` (live U-Net), ``model_ema.*`` (EMA U-Net,
  dots removed from the names, plus ``decay``/``num_updates``), 12 schedule buffers.
* ours (``.safetensors``): ``first_stage_model.*``, ``model.diffusion_model.*`` holding the
  inference (normally EMA) weights, the schedule buffers, and the config as JSON metadata.

EMA: the official scripts sample with the EMA weights, so ``weights="ema"`` (default) takes
``model_ema.*`` when the file has them and the live weights otherwise; ``weights="live"`` forces
the live ones.
"""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor

from ldmvfi_core.config import AutoencoderConfig, LDMVFIConfig, UNetConfig

WeightsChoice = Literal["ema", "live"]

AE_PREFIX = "first_stage_model."
COND_PREFIX = "cond_stage_model."
UNET_PREFIX = "model.diffusion_model."
EMA_PREFIX = "model_ema."
FORMAT_NAME = "ldmvfi"


class CheckpointError(ValueError):
    """A weights file that cannot be used; the message is one line naming the file."""


def ema_name(unet_key: str) -> str:
    """``model.diffusion_model.a.1.b`` -> ``model_ema.diffusion_modela1b`` (official EMA naming)."""
    return EMA_PREFIX + unet_key[len("model.") :].replace(".", "")


class _InertObject:
    """Stands in for any non-tensor object pickled in a Lightning checkpoint; keeps nothing."""

    def __new__(cls, *args: Any, **kwargs: Any) -> _InertObject:
        return super().__new__(cls)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        pass


def read_tensors(path: str | os.PathLike[str]) -> tuple[dict[str, Tensor], dict[str, str]]:
    """All tensors of a weights file (a Lightning ``state_dict`` is unwrapped) and its metadata."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such weights file")
    if path.suffix == ".safetensors":
        return _read_safetensors(path)
    return _read_torch(path), {}


def _read_safetensors(path: Path) -> tuple[dict[str, Tensor], dict[str, str]]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = dict(f.metadata() or {})
            tensors = {key: f.get_tensor(key) for key in f.keys()}  # noqa: SIM118 (not a dict)
    except Exception as err:  # safetensors raises its own error types, or OSError
        raise CheckpointError(f"{path}: not a readable safetensors file ({_first_line(err)})") from None
    return tensors, metadata


def _read_torch(path: Path) -> dict[str, Tensor]:
    if not zipfile.is_zipfile(path):
        raise CheckpointError(
            f"{path}: not a PyTorch checkpoint (not a zip archive; truncated or wrong file?)")
    try:
        unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
        placeholders = [(_InertObject, name) for name in unsafe]
        with torch.serialization.safe_globals(placeholders):
            obj = torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
    except Exception as err:
        raise CheckpointError(f"{path}: cannot read checkpoint ({_first_line(err)})") from None
    state = obj.get("state_dict", obj) if isinstance(obj, Mapping) else None
    if not isinstance(state, Mapping):
        raise CheckpointError(f"{path}: no state_dict of tensors in this checkpoint")
    tensors = {k: v for k, v in state.items() if isinstance(v, Tensor)}
    if not tensors:
        raise CheckpointError(f"{path}: the state_dict holds no tensors")
    return tensors


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


def select_inference_weights(
    tensors: Mapping[str, Tensor], path: str | os.PathLike[str], weights: WeightsChoice = "ema"
) -> dict[str, Tensor]:
    """Map a file's tensors (official or ours) to our module's keys, choosing EMA or live U-Net."""
    if weights not in ("ema", "live"):
        raise CheckpointError(f"{path}: unknown weights choice {weights!r} (use 'ema' or 'live')")
    has_ema = any(k.startswith(EMA_PREFIX) for k in tensors)
    if not any(k.startswith(AE_PREFIX) for k in tensors) and any(k.startswith(COND_PREFIX) for k in tensors):
        # Some exports keep only the second copy of the autoencoder.
        tensors = {AE_PREFIX + k[len(COND_PREFIX) :] if k.startswith(COND_PREFIX) else k: v
                   for k, v in tensors.items()}
    out: dict[str, Tensor] = {}
    for key, value in tensors.items():
        if key.startswith((COND_PREFIX, EMA_PREFIX)):
            continue
        if key.startswith(UNET_PREFIX) and weights == "ema" and has_ema:
            shadow = ema_name(key)
            if shadow not in tensors:
                raise CheckpointError(f"{path}: EMA weights incomplete, missing '{shadow}'")
            value = tensors[shadow]
        out[key] = value
    return out


def check_state_dict(
    expected: Mapping[str, Tensor], found: Mapping[str, Tensor], path: str | os.PathLike[str]
) -> None:
    """Raise a one-line ``CheckpointError`` naming the first missing/extra/mis-shaped key."""
    for key, ref in expected.items():
        if key not in found:
            raise CheckpointError(f"{path}: missing key '{key}' (wrong model or truncated file?)")
        if tuple(found[key].shape) != tuple(ref.shape):
            raise CheckpointError(
                f"{path}: key '{key}' has shape {tuple(found[key].shape)}, this config expects "
                f"{tuple(ref.shape)}"
            )
    for key in found:
        if key not in expected:
            raise CheckpointError(f"{path}: unexpected key '{key}' (a different architecture?)")


def default_steps_from_metadata(metadata: Mapping[str, str], path: str | os.PathLike[str]) -> int | None:
    """The DDIM step count a weights file of ours recommends (``default_steps``), if it names one."""
    text = metadata.get("default_steps") if metadata.get("format") == FORMAT_NAME else None
    if text is None:
        return None
    if not text.isdigit() or int(text) < 1:
        raise CheckpointError(f"{path}: metadata default_steps must be a whole number of at least 1, got {text!r}")
    return int(text)


def config_from_metadata(metadata: Mapping[str, str]) -> LDMVFIConfig | None:
    if metadata.get("format") != FORMAT_NAME or "config" not in metadata:
        return None
    return LDMVFIConfig.from_official(json.loads(metadata["config"]))


def infer_config(tensors: Mapping[str, Tensor], path: str | os.PathLike[str]) -> LDMVFIConfig:
    """Read the architecture off the tensor shapes of an official-layout state dict."""

    def shape(key: str) -> tuple[int, ...]:
        if key not in tensors:
            raise CheckpointError(f"{path}: missing key '{key}' (not an LDMVFI checkpoint?)")
        return tuple(tensors[key].shape)

    ae, un = AE_PREFIX + "encoder.", UNET_PREFIX
    ch = shape(ae + "conv_in.weight")[0]
    levels = _count(tensors, ae + "down.", ".downsample.conv.weight")
    ch_mult = tuple(shape(f"{ae}down.{i}.block.0.conv2.weight")[0] // ch for i in range(levels))
    res_blocks = _count(tensors, ae + "down.0.block.", ".conv1.weight")
    top = ch * ch_mult[0]
    cross_heads = shape(f"{AE_PREFIX}decoder.up.0.cross_attn.attn_block.fn.rel_pos_bias.weight")[1]
    window_ae = (round(shape(ae + "mid.attn_1.attn_block.fn.rel_pos_bias.weight")[0] ** 0.5) + 1) // 2
    model_channels, in_channels = shape(un + "input_blocks.0.0.weight")[:2]
    n_embed, embed_dim = shape(AE_PREFIX + "quantize.embedding.weight")
    input_blocks = _count(tensors, un + "input_blocks.", ".0.weight", ".0.in_layers.0.weight", ".0.op.weight")
    unet_levels = sum(1 for i in range(input_blocks) if f"{un}input_blocks.{i}.0.op.weight" in tensors) + 1
    unet_res = (input_blocks - 1 - (unet_levels - 1)) // unet_levels
    level_first = [1 + lvl * (unet_res + 1) for lvl in range(unet_levels)]
    channel_mult = tuple(shape(f"{un}input_blocks.{i}.0.out_layers.3.weight")[0] // model_channels
                         for i in level_first)
    unet_heads = shape(f"{un}input_blocks.1.1.attn_block.fn.rel_pos_bias.weight")
    window_unet = (round(unet_heads[0] ** 0.5) + 1) // 2
    attention = tuple(2**lvl for lvl in range(unet_levels)
                      if f"{un}input_blocks.{level_first[lvl]}.1.attn_block.norm.weight" in tensors)
    config = LDMVFIConfig(
        autoencoder=AutoencoderConfig(
            ch=ch, ch_mult=ch_mult, num_res_blocks=res_blocks, z_channels=shape(ae + "conv_out.weight")[0],
            embed_dim=embed_dim, n_embed=n_embed, num_head_channels=top // cross_heads, window=window_ae,
        ),
        unet=UNetConfig(
            in_channels=in_channels, out_channels=shape(un + "out.2.weight")[0],
            model_channels=model_channels, channel_mult=channel_mult, num_res_blocks=unet_res,
            attention_resolutions=tuple(sorted(attention, reverse=True)),
            num_head_channels=model_channels // unet_heads[1], image_size=4 * window_unet,
        ),
    )
    return config


def _count(tensors: Iterable[str], prefix: str, *suffixes: str) -> int:
    """Number of consecutive indices i with some ``prefix{i}{suffix}`` key present."""
    keys = set(tensors)
    i = 0
    while any(f"{prefix}{i}{s}" in keys for s in suffixes):
        i += 1
    return i
