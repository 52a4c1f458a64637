# SPDX-License-Identifier: MIT
"""Re-open the latent path of a stage-1 checkpoint: fresh weights for the layers at both of its
ends, everything else kept.

Why: in this project's lineage the latent died early (docs/NOTES.md, sessions 5-8). The encoder
still tells frames apart (its output varies 0.011 across frames against 0.071 across
positions), but ``quant_conv`` squeezes that to 0.001, the decoder's ``post_quant_conv`` and
``conv_in`` learned to ignore what is left, and the loss's gradient reaching the latent is about
1e-6 an element: no training signal can revive one end while the other stays shut. So both ends
start again from PyTorch's defaults (the codebook from taming's uniform init, its usage counts
cleared), and the run that resumes from the result should give the decoder a reason to read
its latent, e.g. ``--context-dropout P`` (some samples get another sample's neighbours).

The result is a training checkpoint without optimiser state, like a carried one: resume stage 1
from it (fresh Adam moments, the learning-rate re-warm of a carried checkpoint). The first steps
will score below the source: the decoder's trunk starts from the latent, so its input changes.

    python -m ldmvfi_core.train.reopen runs/reopen/checkpoints/step_00022005.pt \\
        runs/s11c/checkpoints/step_00022005.pt

The source may also be a weights file of this project (the shipped model: its autoencoder is
stage 1's step 22,005), for when the training checkpoint is not at hand (``train.from_weights``):

    python -m ldmvfi_core.train.reopen runs/reopen/checkpoints/step_00022005.pt \\
        ldmvfi_core/weights/ldmvfi-default.safetensors --step 22005
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from ldmvfi_core.config import LDMVFIConfig
from ldmvfi_core.model.checkpoint import AE_PREFIX
from ldmvfi_core.model.ldmvfi import LatentDiffusionVFI
from ldmvfi_core.train.carry import slim
from ldmvfi_core.train.checkpoint import TrainCheckpointError, load_checkpoint, save_checkpoint
from ldmvfi_core.train.from_weights import stage1_checkpoint_from_weights
from ldmvfi_core.train.stage1 import init_autoencoder

# The autoencoder's modules on the two ends of the latent (names in the official layout).
REOPENED = ("quant_conv", "post_quant_conv", "decoder.conv_in", "quantize")


def reopened_names(model_state: dict[str, torch.Tensor]) -> list[str]:
    """The checkpoint tensors that ``reopen_latent`` replaces."""
    return [name for name in model_state
            if any(name.startswith(f"{AE_PREFIX}{module}.") for module in REOPENED)]


def reopen_latent(state: dict[str, Any], seed: int = 0) -> dict[str, Any]:
    """``state`` (a stage-1 training checkpoint) with the ``REOPENED`` modules freshly initialised."""
    if state["stage"] != 1:
        raise TrainCheckpointError(f"a stage-{state['stage']} checkpoint: only stage 1 trains the latent's ends")
    torch.manual_seed(seed)
    fresh_ae = LatentDiffusionVFI(LDMVFIConfig.from_official(state["config"])).first_stage_model
    init_autoencoder(fresh_ae)
    fresh = {AE_PREFIX + k: v for k, v in fresh_ae.state_dict().items()}
    names = reopened_names(state["model"])
    model = dict(state["model"])
    for name in names:
        if fresh[name].shape != model[name].shape:
            raise TrainCheckpointError(f"{name}: shape {tuple(model[name].shape)} in the checkpoint, "
                                       f"{tuple(fresh[name].shape)} in its config")
        model[name] = fresh[name].to(model[name].dtype)
    # The autoencoder's average (--ae-ema) still holds the old latent path: drop it, and a resumed
    # slice with --ae-ema starts a new one at the reopened weights.
    return {**slim(state), "model": model, "codebook_usage": None, "ema": None,
            "reopened": {"modules": list(REOPENED), "tensors": names, "seed": seed, "step": int(state["step"])}}


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="re-initialise both ends of a stage-1 checkpoint's latent path")
    p.add_argument("out", help="the checkpoint (.pt) to write; resume stage 1 from it")
    p.add_argument("checkpoint", help="a stage-1 training checkpoint, or a weights file (.safetensors)")
    p.add_argument("--seed", type=int, default=0, help="seed of the fresh weights")
    p.add_argument("--step", type=int, default=0,
                   help="a weights file's stage-1 step (the file does not record it; default 0)")
    args = p.parse_args(argv)
    try:
        source = (stage1_checkpoint_from_weights(args.checkpoint, args.step)
                  if Path(args.checkpoint).suffix == ".safetensors" else load_checkpoint(args.checkpoint))
        reopened = reopen_latent(source, args.seed)
    except TrainCheckpointError as err:
        raise SystemExit(f"reopen: {err}") from None
    count = len(reopened["reopened"]["tensors"])
    print(f"wrote {save_checkpoint(reopened, args.out)} (step {reopened['step']}, {count} tensors re-initialised)")


if __name__ == "__main__":
    main()
