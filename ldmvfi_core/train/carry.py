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
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
from pathlib import Path

import torch

from ldmvfi_core.train.checkpoint import checkpoint_path, latest_checkpoint, load_checkpoint, save_checkpoint

MANIFEST = "carry.json"


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


def pack(source: Path, dest: Path, part_mib: float = 15.0) -> list[Path]:
    """Slim the checkpoint ``source`` (a file, or the newest in a training folder) into parts."""
    ckpt = source if source.is_file() else latest_checkpoint(source)
    if ckpt is None:
        raise FileNotFoundError(f"{source}: no training checkpoint to carry")
    state = slim(load_checkpoint(ckpt))
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
                "sha256": hashlib.sha256(data).hexdigest(), "parts": [p.name for p in parts]}
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
    p = sub.add_parser("unpack")
    p.add_argument("parts_dir")
    p.add_argument("out")
    args = parser.parse_args(argv)
    if args.command == "pack":
        parts = pack(Path(args.source), Path(args.dest), args.part_mib)
        print(f"packed {len(parts)} parts into {args.dest}")
    else:
        print(f"unpacked to {unpack(Path(args.parts_dir), Path(args.out))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
