# SPDX-License-Identifier: MIT
"""Build a validation set: triplets, in the eval sets' layout, from footage the shipped model never saw.

    python tools/build_validation_set.py --out .carry/val       # cityCC0.mpg and cockatoo.mp4, 16 each
    python tools/ae_probe.py eval CKPT .carry/val --weights both   # scores per clip, like the eval sets

Why: every choice so far (which slice ships, which arm wins) was made on ../shared/data/eval,
the same triplets the model card reports. Picking the best of twelve arms there is selection,
not improvement (session 21). Scores on footage that is neither trained on nor reported let a
run be chosen first and then reported on the eval sets once.

The clips are the opt-in ones of ``tools/build_training_set.py`` (``CLIPS``, fetched the same
way, with the same licence notes): the night-city time-lapse (large motion over fine window
grids, like Middlebury's Urban2) and the cockatoo close-ups (non-rigid motion, blur, feathers).
A clip of the default training data is refused, and an arm that trains on one of these clips
(``--clips ... cityCC0.mpg``) must not be judged on it. Frames are area-downscaled to
``--short-side`` (default 360, the eval sets' scale; it also averages away some of the clips'
compression noise) and stored as 8-bit PNG, ``OUT/<clip>/<NN>/frame{0,1,2}.png``; ``frame1`` is
the true middle frame. Triplets never straddle a cut, skip duplicated and static frames (the
training builder's rules), and are spread evenly over each clip. ``OUT/validation.json`` records
the clip files (sha256), licences and frame numbers.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from a checkout
    sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

from build_training_set import CLIPS, ClipSpec, clip_candidates, fetch_clip, spread_order  # noqa: E402

from ldmvfi_core.io.atomic import atomic_path  # noqa: E402
from ldmvfi_core.io.images import write_image  # noqa: E402

DEFAULT_CLIPS = ("cityCC0.mpg", "cockatoo.mp4")
MANIFEST = "validation.json"


def validation_clip(name: str) -> ClipSpec:
    """The known clip ``name``, refused when the default training data holds it."""
    specs = {c.name: c for c in CLIPS}
    if name not in specs:
        raise SystemExit(f"{name}: not a known clip ({', '.join(specs)})")
    if not specs[name].fetched:
        raise SystemExit(f"{name}: in the default training data; a validation set needs footage the model never saw")
    return specs[name]


def spread_triplets(kept: Sequence[tuple[int, int, int]], count: int) -> list[tuple[int, int, int]]:
    """``count`` of ``kept`` spread evenly over it, in clip order (all of them if there are fewer)."""
    return [kept[i] for i in sorted(spread_order(len(kept))[:count])]


def write_clip(frames: Sequence[np.ndarray], triplets: Sequence[tuple[int, int, int]], folder: Path) -> None:
    """``folder/NN/frame{0,1,2}.png`` for each triplet (8-bit values stored exactly)."""
    for number, triplet in enumerate(triplets, start=1):
        (folder / f"{number:02d}").mkdir(parents=True, exist_ok=True)
        for slot, index in enumerate(triplet):
            write_image(folder / f"{number:02d}" / f"frame{slot}.png", frames[index].astype(np.float32) / 255.0)


def build(clip_paths: dict[str, Path], out: Path, per_clip: int, short_side: int) -> dict[str, object]:
    """Write every clip's triplets under ``out`` and the manifest; returns the manifest."""
    clips = []
    for name, path in clip_paths.items():
        spec = dataclasses.replace(validation_clip(name), gaps=(1,))  # the eval sets' spacing
        frames, kept, info = clip_candidates(path, spec, short_side)
        if len(kept) < per_clip:
            raise SystemExit(f"{path}: {len(kept)} usable triplets, fewer than --per-clip {per_clip}")
        chosen = spread_triplets(kept, per_clip)
        write_clip(frames, chosen, out / Path(name).stem)
        clips.append({"clip": name, "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
                      "licence": spec.licence, "notice": spec.notice, "size": info["size"],
                      "cuts": info["cuts"], "triplets": [list(t) for t in chosen]})
        print(f"{name}: {info['frames']} frames at {info['size'][0]}x{info['size'][1]}, cuts {info['cuts']}, "
              f"{len(chosen)} of {len(kept)} triplets", flush=True)
    manifest = {"what": "validation triplets (frame1 = truth); never train on the clips judged here",
                "short_side": short_side, "clips": clips}
    with atomic_path(out / MANIFEST) as tmp:
        tmp.write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / ".carry" / "val")
    parser.add_argument("--clips", nargs="+", default=list(DEFAULT_CLIPS))
    parser.add_argument("--per-clip", type=int, default=16, help="triplets from each clip")
    parser.add_argument("--short-side", type=int, default=360, help="frames' shorter side after downscaling")
    parser.add_argument("--fetched-dir", type=Path, default=ROOT / "data" / "videos",
                        help="where the clips are kept (fetched there on first use)")
    args = parser.parse_args(argv)
    if args.per_clip < 1:
        parser.error(f"--per-clip must be at least 1, got {args.per_clip}")
    paths = {name: fetch_clip(validation_clip(name), args.fetched_dir) for name in args.clips}
    build(paths, args.out, args.per_clip, args.short_side)


if __name__ == "__main__":
    main()
