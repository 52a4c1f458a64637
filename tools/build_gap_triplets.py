# SPDX-License-Identifier: MIT
"""Cut triplets of larger motion out of a clip: frames (i, i + gap, i + 2 gap), in the eval sets' layout.

    python tools/build_gap_triplets.py ../shared/data/video/visp_cube.mpeg --frames 17-67 --gap 4 \\
        --every 5 --out runs/camera_moves/visp_cube_g4
    ldmvfi eval runs/camera_moves --methods ours --prealign --json prealign.json

Why: the eval sets hold few camera moves (one on Middlebury, Urban2), and the validation clips'
pans are slow, so the camera-move pre-alignment (``ldmvfi_core.prealign``) was judged on clips
whose camera moves across texture, with the motion made larger by taking every ``gap``-th frame
(bench/RESULTS.md, "Pre-alignment"). ``frame1`` is the true middle frame. Frames are stored as they
decode (8-bit RGB PNG); the caller keeps the triplets out of any training data, and ranges inside
one shot (no cut between ``i`` and ``i + 2 gap``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from a checkout
    sys.path.insert(0, str(ROOT))

from ldmvfi_core.io.images import write_image  # noqa: E402
from ldmvfi_core.train.video import read_video_frames  # noqa: E402


def parse_range(text: str) -> tuple[int, int]:
    """'17-67' -> (17, 67), inclusive, 0-based decode indices."""
    try:
        first, last = (int(part) for part in text.split("-"))
    except ValueError:
        raise SystemExit(f"--frames {text!r}: expected FIRST-LAST, e.g. 17-67") from None
    if first < 0 or last < first:
        raise SystemExit(f"--frames {text!r}: FIRST must be >= 0 and <= LAST")
    return first, last


def triplet_starts(first: int, last: int, gap: int, every: int) -> list[int]:
    """Starts i with i + 2 gap <= last, from ``first``, ``every`` frames apart."""
    if gap < 1 or every < 1:
        raise SystemExit("--gap and --every must be at least 1")
    return list(range(first, last - 2 * gap + 1, every))


def decode_frames(clip: Path, wanted: set[int]) -> dict[int, np.ndarray]:
    """The decoded RGB frames whose 0-based index is in ``wanted``."""
    frames: dict[int, np.ndarray] = {}
    index = -1
    for index, frame in enumerate(read_video_frames(clip)):
        if index in wanted:
            frames[index] = frame
        if index >= max(wanted):
            break
    missing = sorted(wanted - frames.keys())
    if missing:
        raise SystemExit(f"{clip}: has no frame {missing[0]} (its last frame is {index})")
    return frames


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("clip", type=Path)
    parser.add_argument("--frames", required=True, help="FIRST-LAST decode indices, inside one shot")
    parser.add_argument("--gap", type=int, required=True, help="frames between a triplet's neighbours")
    parser.add_argument("--every", type=int, default=5, help="frames between triplet starts")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    if not args.clip.is_file():
        raise SystemExit(f"{args.clip}: no such clip")
    first, last = parse_range(args.frames)
    starts = triplet_starts(first, last, args.gap, args.every)
    if not starts:
        raise SystemExit(f"--frames {args.frames}: too short for one triplet with --gap {args.gap}")
    frames = decode_frames(args.clip, {i + k * args.gap for i in starts for k in range(3)})
    for start in starts:
        folder = args.out / f"{start:04d}"
        folder.mkdir(parents=True, exist_ok=True)
        for k in range(3):
            write_image(folder / f"frame{k}.png", frames[start + k * args.gap].astype(np.float32) / 255.0)
    print(f"wrote {len(starts)} triplets to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
