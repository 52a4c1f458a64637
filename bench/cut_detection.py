# SPDX-License-Identifier: MIT
"""Calibration: ``ldmvfi_core.retime.cuts`` on real footage with known cuts.

    python bench/cut_detection.py [--data /work/shared/data/video] [--quiet]

Decodes each clip with PyAV (extra: video) to RGB float in [0, 1] and prints ``cut_score`` of every
consecutive pair (unless ``--quiet``), then the scores of the true cuts, the highest non-cut score,
the threshold in use and its margin on both sides. Writes no files. Exit status 1 when a cut is
missed or a non-cut pair scores above the threshold.

Ground truth: ``bikes.mp4`` has hard cuts between frames 29|30, 75|76, 136|137, 186|187 and
241|242 (0-based decode indices; a fast pan at 63-75 and a fast blurred vehicle at 95-101 are not
cuts). ``bigbuckbunny.mp4`` and ``vtest.avi`` have none, nor have the two ViSP clips (extra
negatives: high-contrast texture, greyscale content).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ldmvfi_core.retime.cuts import CUT_THRESHOLD, cut_score

CLIPS: dict[str, set[int]] = {  # file -> indices i of the pairs i|i+1 that are hard cuts
    "bikes.mp4": {29, 75, 136, 186, 241},
    "bigbuckbunny.mp4": set(),
    "vtest.avi": set(),
    "visp_cube.mpeg": set(),
    "visp_mbt_cube.mp4": set(),
}


def frames(path: Path) -> Iterator[np.ndarray]:
    import av

    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            yield frame.to_ndarray(format="rgb24").astype(np.float32) / 255.0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=Path("/work/shared/data/video"))
    p.add_argument("--quiet", action="store_true", help="print only the summary")
    args = p.parse_args(argv)

    cuts: list[tuple[float, str]] = []
    non_cuts: list[tuple[float, str]] = []
    for name, truth in CLIPS.items():
        path = args.data / name
        if not path.is_file():
            print(f"{name}: not found, skipped")
            continue
        prev = None
        scores = []
        for i, frame in enumerate(frames(path)):
            if prev is not None:
                scores.append(cut_score(prev, frame))
                label = f"{name} {i - 1}|{i}"
                (cuts if i - 1 in truth else non_cuts).append((scores[-1], label))
                if not args.quiet:
                    print(f"{label:28s} {scores[-1]:.4f}{'  CUT' if i - 1 in truth else ''}")
            prev = frame
        print(f"{name}: {len(scores) + 1} frames, {len(scores)} pairs, highest {max(scores):.4f}")

    print("\ntrue cuts:")
    for score, label in cuts:
        print(f"  {label:28s} {score:.4f}")
    lowest_cut = min(cuts)
    highest = max(non_cuts)
    print(f"lowest cut score     {lowest_cut[0]:.4f}  ({lowest_cut[1]})")
    print(f"highest non-cut      {highest[0]:.4f}  ({highest[1]})")
    print("next non-cuts        " + ", ".join(f"{s:.4f} ({lbl})" for s, lbl in sorted(non_cuts)[-4:-1]))
    print(f"threshold            {CUT_THRESHOLD:.4f}")
    print(f"margin               threshold / highest non-cut = x{CUT_THRESHOLD / highest[0]:.2f}, "
          f"lowest cut / threshold = x{lowest_cut[0] / CUT_THRESHOLD:.2f}")
    print(f"geometric middle     {np.sqrt(lowest_cut[0] * highest[0]):.4f}")
    missed = [lbl for s, lbl in cuts if s <= CUT_THRESHOLD]
    false = [lbl for s, lbl in non_cuts if s > CUT_THRESHOLD]
    print(f"missed cuts: {len(missed)} {missed}   false cuts: {len(false)} {false}")
    return 1 if missed or false else 0


if __name__ == "__main__":
    sys.exit(main())
