# SPDX-License-Identifier: MIT
"""Write weights: our safetensors format, and the official checkpoint layout.

``save_safetensors`` keeps what inference needs (autoencoder, the U-Net's inference weights,
schedule buffers) plus the config as JSON metadata, so a file describes itself.
``official_state_dict`` rebuilds the official key layout (autoencoder twice, EMA names) for
tools that expect it, and lets the tests check our modules against the released manifest.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from torch import Tensor

from ldmvfi_core.io.atomic import atomic_path
from ldmvfi_core.model.checkpoint import AE_PREFIX, COND_PREFIX, FORMAT_NAME, UNET_PREFIX, ema_name, read_tensors
from ldmvfi_core.model.ldmvfi import LatentDiffusionVFI


def save_safetensors(model: LatentDiffusionVFI, path: str | os.PathLike[str], *,
                     weights_dtype: torch.dtype = torch.float32, **extra_metadata: str) -> None:
    """Atomically write ``model``'s state dict with its config.

    ``weights_dtype`` (e.g. float16, to halve the shipped file) applies to the learned parameters
    only; buffers such as the noise schedule stay float32, because the sampler's arithmetic
    depends on them. Loading casts everything back to float32.
    """
    from safetensors.torch import save_file

    path = Path(path)
    parameters = {name for name, _ in model.named_parameters()}
    tensors = {k: v.detach().to("cpu", weights_dtype if k in parameters and v.is_floating_point() else v.dtype)
               .contiguous() for k, v in model.state_dict().items()}
    metadata = {"format": FORMAT_NAME, "config": json.dumps(model.config.to_official()),
                "weights_dtype": str(weights_dtype).removeprefix("torch."), **extra_metadata}
    if model.default_steps is not None:
        metadata["default_steps"] = str(model.default_steps)
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)


def set_default_steps(path: str | os.PathLike[str], steps: int | None) -> None:
    """Rewrite a safetensors file of ours with ``steps`` as its recommended DDIM step count
    (None: drop the recommendation, so the paper's 200 apply). The tensors are copied unchanged."""
    from safetensors.torch import save_file

    if steps is not None and steps < 1:
        raise ValueError(f"default steps must be at least 1, got {steps}")
    path = Path(path)
    tensors, metadata = read_tensors(path)
    if metadata.get("format") != FORMAT_NAME:
        raise ValueError(f"{path}: not a weights file of ours (no format={FORMAT_NAME!r} metadata)")
    metadata.pop("default_steps", None)
    if steps is not None:
        metadata["default_steps"] = str(steps)
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)


def official_state_dict(model: LatentDiffusionVFI, ema_updates: int = 0) -> dict[str, Tensor]:
    """Our weights in the official ``LatentDiffusionVFI`` layout (U-Net copied as its own EMA)."""
    state = dict(model.state_dict())
    out: dict[str, Tensor] = {}
    for key, value in state.items():
        out[key] = value
        if key.startswith(AE_PREFIX):
            out[COND_PREFIX + key[len(AE_PREFIX) :]] = value
    for key, value in state.items():
        if key.startswith(UNET_PREFIX) and not key.endswith("num_batches_tracked"):
            out[ema_name(key)] = value
    out["model_ema.decay"] = torch.tensor(0.9999, dtype=torch.float32)
    out["model_ema.num_updates"] = torch.tensor(ema_updates, dtype=torch.int32)
    return out
