# SPDX-License-Identifier: MIT
"""A side-by-side of the model alone, its self-ensemble and the truth, for people to look at.

    python tools/ensemble_sheet.py ../shared/data/eval --names Beanbags DogDance Urban2 --ensemble 8 \
        --out bench/eval_shipped_model_ensemble_sheet.png

One row per triplet: the centre 240 x 160 pixels of the in-between without and with
``--ensemble N`` and of the true middle frame (the shipped model, its own steps, CPU).
"""

from __future__ import annotations

import argparse

import numpy as np

CROP_W, CROP_H = 240, 160


def centre(image: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    y, x = max(0, h // 2 - CROP_H // 2), max(0, w // 2 - CROP_W // 2)
    return image[y : y + CROP_H, x : x + CROP_W]


def main() -> None:
    import OpenImageIO as oiio

    from ldmvfi_core.eval.run import find_triplets, load_triplet
    from ldmvfi_core.interpolate import Interpolator

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root", help="folder of triplets (layout of ../shared/data/eval)")
    parser.add_argument("--names", nargs="+", required=True, help="triplet folder names, one row each")
    parser.add_argument("--ensemble", type=int, default=8)
    parser.add_argument("--model", help="weights (default: the shipped model)")
    parser.add_argument("--steps", type=int, default=0, help="DDIM steps (0: the model's own)")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    triplets = {t.name: t for t in find_triplets(args.root)}
    missing = [n for n in args.names if n not in triplets]
    if missing:  # before loading any model
        raise SystemExit(f"{args.root}: no triplet named {', '.join(missing)}")
    alone, ensemble = Interpolator.load(args.model), Interpolator.load(args.model, ensemble=args.ensemble)
    rows = []
    for name in args.names:
        f0, truth, f2 = load_triplet(triplets[name])
        outs = [np.clip(np.rint(i.interpolate(f0, f2, steps=args.steps) * 255), 0, 255).astype(np.uint8)
                for i in (alone, ensemble)]
        rows.append(np.concatenate([centre(outs[0]), centre(outs[1]), centre(truth)], axis=1))
    oiio.ImageBuf(np.ascontiguousarray(np.concatenate(rows, axis=0))).write(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
