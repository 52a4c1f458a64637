# SPDX-License-Identifier: MIT
"""A stage-1 training checkpoint made from an inference weights file.

Why: training checkpoints live on the GPU loans and in git-ignored folders, so a fresh checkout
holds only the shipped ``ldmvfi-default.safetensors`` (session 13 started that way). Its
autoencoder is all stage 1 needs to go on: the result is a carried (slim) checkpoint, with no
optimiser state and no discriminator, that ``ldmvfi train --stage 1 --resume`` continues from
(fresh Adam moments, the carried checkpoint's rate re-warm). ``--init-from WEIGHTS`` on a fresh
run does the same in one step; this file is for tools that take a checkpoint (``carry``,
``reopen``, ``tools/ab_slice.sh``):

    python -m ldmvfi_core.train.from_weights ldmvfi_core/weights/ldmvfi-default.safetensors runs/s1 --step 22005

The weights are cast to float32 (the shipped file stores float16: its rounding, at most 2^-11
relative, stays in).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from ldmvfi_core.model.checkpoint import (
    AE_PREFIX,
    CheckpointError,
    config_from_metadata,
    read_tensors,
    select_inference_weights,
)
from ldmvfi_core.train.checkpoint import FORMAT, VERSION, TrainCheckpointError, checkpoint_path, save_checkpoint


def stage1_checkpoint_from_weights(path: str | os.PathLike[str], step: int = 0) -> dict[str, Any]:
    """The autoencoder of the weights file ``path`` as a slim stage-1 checkpoint at ``step``."""
    path = Path(path)
    try:
        tensors, metadata = read_tensors(path)
    except CheckpointError as err:
        raise TrainCheckpointError(str(err)) from None
    config = config_from_metadata(metadata)
    if config is None:
        raise TrainCheckpointError(f"{path}: no model config in its metadata (only this project's "
                                   "safetensors files carry one)")
    weights = select_inference_weights(tensors, path)
    model = {k: v.to(torch.float32) for k, v in weights.items() if k.startswith(AE_PREFIX)}
    if not model:
        raise TrainCheckpointError(f"{path}: no autoencoder weights ({AE_PREFIX}*) in it")
    return {
        "format": FORMAT, "version": VERSION, "stage": 1, "step": int(step), "seed": 0,
        "config": config.to_official(), "train": {}, "model": model, "discriminator": None, "ema": None,
        "optimizers": {}, "data": {"epoch": 0, "batch_in_epoch": 0, "batch_size": 1, "world_size": 1},
        "rng": {}, "codebook_usage": None, "lr": None, "from_weights": path.name,
    }


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m ldmvfi_core.train.from_weights",
                                description="a slim stage-1 checkpoint from a weights file, to --resume from")
    p.add_argument("weights", help="a weights file of this project (.safetensors)")
    p.add_argument("out", help="the run folder: writes OUT/checkpoints/step_<STEP>.pt")
    p.add_argument("--step", type=int, default=0,
                   help="the file's stage-1 step (the shipped file's is 24000; a stage-2 export records "
                   "only its U-Net's step)")
    args = p.parse_args(argv)
    try:
        state = stage1_checkpoint_from_weights(args.weights, args.step)
    except TrainCheckpointError as err:
        raise SystemExit(f"from_weights: {err}") from None
    print(f"wrote {save_checkpoint(state, checkpoint_path(args.out, args.step))}")


if __name__ == "__main__":
    main()
