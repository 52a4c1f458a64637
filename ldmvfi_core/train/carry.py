# SPDX-License-Identifier: MIT
"""Carry a training checkpoint between GPU loans: slim it, split it, put it back together.

The GPU machine hands files back at most 16 MiB each and 64 MiB in all, and an exact-resume
checkpoint of the SMALL config is about 100 MB (the optimiser moments double the weights). A
*carried* checkpoint drops the optimiser states (training resumes with fresh optimiser moments:
not bit-exact, fine across loans) and, before the GAN term starts, the discriminator (it has not
been trained yet, so a fresh one is just as good; 11 of the SMALL config's 35 MB). It is split
into parts with a SHA-256 manifest:

    python -m ldmvfi_core.train.carry pack runs/s1 $OUT/s1 --part-mib 15   # on the GPU machine
    python -m ldmvfi_core.train.carry unpack carried/s1 runs/s1             # here, next loan

A stage-1 checkpoint that keeps an average of the autoencoder (``--ae-ema``) holds it twice, the
live weights and the average (~48 MB packed): too large to carry beside the training cache.
``--weights average`` carries the average in the live weights' place and drops the second copy:
what export, ``--init-from`` and the eval take from it is unchanged, and a slice resumed from it
continues from the averaged weights (a new average, if asked for, starts there).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any, Literal

import torch

from ldmvfi_core.model.checkpoint import AE_PREFIX
from ldmvfi_core.train.checkpoint import (
    TrainCheckpointError,
    checkpoint_path,
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from ldmvfi_core.train.ema import holds_shadow
from ldmvfi_core.train.loop import checkpoint_inference_state

MANIFEST = "carry.json"
CarriedWeights = Literal["both", "average"]


def discriminator_untrained(state: dict[str, object]) -> bool:
    """True for a stage-1 checkpoint taken before its discriminator's first step."""
    train = state.get("train")
    loss = train.get("loss") if isinstance(train, dict) else None
    disc_start = loss.get("disc_start") if isinstance(loss, dict) else None
    step = state.get("step")
    return state.get("stage") == 1 and isinstance(disc_start, int) and isinstance(step, int) and step < disc_start


def slim(state: dict[str, object]) -> dict[str, object]:
    """The checkpoint without optimiser states, and without a discriminator that never ran."""
    out = dict(state)
    out["optimizers"] = {}
    if discriminator_untrained(state):
        out["discriminator"] = None  # stage 1 resumes with a freshly initialised one
    return out


def average_in_place_of_live(state: dict[str, Any], name: str) -> dict[str, Any]:
    """The stage-1 checkpoint with its autoencoder average as the model's weights, and no average."""
    if state.get("stage") != 1 or not holds_shadow(state.get("ema"), AE_PREFIX):
        raise ValueError(f"{name}: no average of the autoencoder to carry (a stage-1 run with --ae-ema has one)")
    return {**state, "model": checkpoint_inference_state(state), "ema": None}


def pack(source: Path, dest: Path, part_mib: float = 15.0, weights: CarriedWeights = "both") -> list[Path]:
    """Slim the checkpoint ``source`` (a file, or the newest in a training folder) into parts;
    ``weights="average"`` carries the autoencoder's average instead of the live weights."""
    ckpt = source if source.is_file() else latest_checkpoint(source)
    if ckpt is None:
        raise FileNotFoundError(f"{source}: no training checkpoint to carry")
    state = slim(load_checkpoint(ckpt))
    if weights == "average":
        state = average_in_place_of_live(state, str(ckpt))
    dest.mkdir(parents=True, exist_ok=True)
    whole = dest / ".carry.tmp"
    torch.save(state, whole)
    data = whole.read_bytes()
    whole.unlink()
    size = int(part_mib * 2**20)
    parts = []
    for i in range(0, len(data), size):
        part = dest / f"ckpt.part{i // size:02d}"
        part.write_bytes(data[i:i + size])
        parts.append(part)
    manifest = {"source": ckpt.name, "step": state["step"], "stage": state["stage"], "bytes": len(data),
                "sha256": hashlib.sha256(data).hexdigest(), "parts": [p.name for p in parts], "weights": weights}
    (dest / MANIFEST).write_text(json.dumps(manifest, indent=1))
    return parts


def unpack(parts_dir: Path, out: Path) -> Path:
    """Reassemble and verify the parts into ``out``'s checkpoint folder (resume with --resume)."""
    manifest = json.loads((parts_dir / MANIFEST).read_text())
    data = b"".join((parts_dir / name).read_bytes() for name in manifest["parts"])
    if len(data) != manifest["bytes"] or hashlib.sha256(data).hexdigest() != manifest["sha256"]:
        raise ValueError(f"{parts_dir}: parts do not match {MANIFEST} (missing or damaged part)")
    tmp = parts_dir / f".unpack{os.getpid()}.pt"
    tmp.write_bytes(data)
    try:
        state = load_checkpoint(tmp)
    finally:
        tmp.unlink()
    return save_checkpoint(state, checkpoint_path(out, int(manifest["step"])))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ldmvfi_core.train.carry", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pack")
    p.add_argument("source")
    p.add_argument("dest")
    p.add_argument("--part-mib", type=float, default=15.0)
    p.add_argument("--weights", choices=["both", "average"], default="both",
                   help="average: carry a stage-1 run's --ae-ema average as its weights, without the live copy")
    p = sub.add_parser("unpack")
    p.add_argument("parts_dir")
    p.add_argument("out")
    args = parser.parse_args(argv)
    try:
        if args.command == "pack":
            parts = pack(Path(args.source), Path(args.dest), args.part_mib, args.weights)
            print(f"packed {len(parts)} parts into {args.dest}")
        else:
            print(f"unpacked to {unpack(Path(args.parts_dir), Path(args.out))}")
    except (ValueError, TrainCheckpointError, FileNotFoundError) as err:
        print(f"carry {args.command}: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
