# SPDX-License-Identifier: MIT
"""How much the synthetic renderer's resampler changes a training cache's synthetic triplets.

For N fresh recipes over the cache's stills, renders each with bilinear and with Lanczos sampling
(`ldmvfi_core.train.synthetic`), and prints, as one JSON line: the PSNR of one against the other
per frame (how far bilinear's sub-pixel blur moves a target from the sharper rendering), and the
rendering time of each on this machine.

    python tools/resample_probe.py .carry/train_cache --count 100
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from ldmvfi_core.eval.metrics import psnr as frame_psnr
from ldmvfi_core.train.triplet_cache import TripletCache


def compare(cache_path: str, *, count: int = 100, size: int = 256, seed: int = 0) -> dict[str, object]:
    """The probe's record (module docstring) for ``count`` fresh recipes of ``size`` px."""
    caches = {name: TripletCache(cache_path, resample=name) for name in ("bilinear", "lanczos")}
    rng = np.random.default_rng(seed)
    recipes = [caches["bilinear"].sample_recipe(rng, (size, size)) for _ in range(count)]
    rendered: dict[str, list[np.ndarray]] = {}
    seconds: dict[str, float] = {}
    for name, cache in caches.items():
        cache.render(recipes[0])  # decode the stills once before timing
        started = time.perf_counter()
        rendered[name] = [cache.render(recipe) for recipe in recipes]
        seconds[name] = (time.perf_counter() - started) / count
    psnr = np.array([[frame_psnr(a[k], b[k]) for k in range(3)]
                     for a, b in zip(rendered["bilinear"], rendered["lanczos"], strict=True)])
    return {
        "probe": "resample", "cache": cache_path, "count": count, "size": size,
        "psnr_bilinear_vs_lanczos_mean": [round(float(v), 2) for v in psnr.mean(axis=0)],
        "psnr_bilinear_vs_lanczos_p10": [round(float(v), 2) for v in np.percentile(psnr, 10, axis=0)],
        "ms_per_triplet": {name: round(s * 1000, 1) for name, s in seconds.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cache", help="a training cache folder with stills")
    parser.add_argument("--count", type=int, default=100, help="recipes to render (default 100)")
    parser.add_argument("--size", type=int, default=256, help="crop side, px (default 256)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(json.dumps(compare(args.cache, count=args.count, size=args.size, seed=args.seed)))


if __name__ == "__main__":
    main()
