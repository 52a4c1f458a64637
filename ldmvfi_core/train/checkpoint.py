# SPDX-License-Identifier: MIT
"""Training checkpoints: plain dicts of tensors and Python values, atomic, resumable.

A checkpoint is ``<out>/checkpoints/step_00001234.pt`` written by ``torch.save`` of a dict holding
only tensors, numbers, strings, bools, None, lists/tuples and dicts, so it loads with
``torch.load(weights_only=True)`` and no class of ours is needed to read it. Layout
(``FORMAT`` = ``"ldmvfi-train"``, ``VERSION`` = 1)::

    format, version, stage (1|2), step (completed optimiser steps), seed,
    config        LDMVFIConfig.to_official() (plain dict)
    train         the training options (plain dict, for the record)
    model         state dict with the inference key names: first_stage_model.* (both stages),
                  model.diffusion_model.* (stage 2: the live U-Net weights)
    discriminator PatchGAN state dict (stage 1; None in a carried checkpoint taken before disc_start)
    ema           {"decay", "num_updates", "shadow": {name: tensor}}: the moving average, under
                  inference names: model.diffusion_model.* (stage 2), first_stage_model.* (stage 1
                  with --ae-ema); None (stage 1 without)
    optimizers    {name: optimizer.state_dict()}
    data          {"epoch", "batch_in_epoch", "batch_size", "world_size"}: where the sampler is
    rng           {"torch_cpu": uint8 tensor, "torch_cuda": [uint8 tensors]}: for the record; the
                  training step re-seeds from (seed, step, rank) so resuming needs no RNG state

State dicts are stored unwrapped (no ``module.`` prefix), so a checkpoint written by N
processes loads in 1 and vice versa. Files are written to a temporary name in the same folder
and renamed, so a slice killed mid-write never leaves a truncated ``step_*.pt``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from ldmvfi_core.io.atomic import atomic_path

FORMAT = "ldmvfi-train"
VERSION = 1
_NAME = re.compile(r"^step_(\d{8,})\.pt$")


class TrainCheckpointError(ValueError):
    """A training checkpoint that cannot be used; one line naming the file."""


def checkpoint_dir(out: str | os.PathLike[str]) -> Path:
    return Path(out) / "checkpoints"


def checkpoint_path(out: str | os.PathLike[str], step: int) -> Path:
    return checkpoint_dir(out) / f"step_{step:08d}.pt"


def list_checkpoints(out: str | os.PathLike[str]) -> list[tuple[int, Path]]:
    """``(step, path)`` of the checkpoints under ``out``, oldest first."""
    folder = checkpoint_dir(out)
    if not folder.is_dir():
        return []
    found = []
    for path in folder.iterdir():
        m = _NAME.match(path.name)
        if m and path.is_file():
            found.append((int(m.group(1)), path))
    return sorted(found)


def latest_checkpoint(out: str | os.PathLike[str]) -> Path | None:
    ckpts = list_checkpoints(out)
    return ckpts[-1][1] if ckpts else None


def save_checkpoint(state: Mapping[str, Any], path: str | os.PathLike[str]) -> Path:
    """Atomically ``torch.save`` ``state`` to ``path`` (temporary file + fsync + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        torch.save(dict(state), tmp)
    return path


def prune_checkpoints(out: str | os.PathLike[str], keep: int) -> None:
    """Delete all but the newest ``keep`` checkpoints (``keep <= 0`` keeps all)."""
    if keep <= 0:
        return
    for _, path in list_checkpoints(out)[:-keep]:
        path.unlink(missing_ok=True)


def load_checkpoint(path: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a training checkpoint with ``weights_only=True`` and check its format."""
    path = Path(path)
    if not path.is_file():
        raise TrainCheckpointError(f"{path}: no such checkpoint")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise TrainCheckpointError(f"{path}: cannot read training checkpoint ({first})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise TrainCheckpointError(f"{path}: not an ldmvfi training checkpoint")
    if state.get("version") != VERSION:
        raise TrainCheckpointError(f"{path}: checkpoint version {state.get('version')} (this code reads {VERSION})")
    return state


def is_training_checkpoint(path: str | os.PathLike[str]) -> bool:
    """True for our ``.pt`` training checkpoints (by content, not by name)."""
    try:
        load_checkpoint(path)
    except TrainCheckpointError:
        return False
    return True


def rng_snapshot() -> dict[str, Any]:
    snap: dict[str, Any] = {"torch_cpu": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        snap["torch_cuda"] = list(torch.cuda.get_rng_state_all())
    return snap
