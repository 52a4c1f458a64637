# SPDX-License-Identifier: MIT
"""tools/resample_probe.py: it compares the two resamplers on the same recipes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ldmvfi_core.train.triplet_cache import TripletCacheWriter
from tests.conftest import load_tool

pytest.importorskip("cv2")


def _cache_of_stills(path: Path, stills: list[np.ndarray]) -> str:
    writer = TripletCacheWriter(codec="raw")
    for k, still in enumerate(stills):
        writer.add_still(still, {"name": f"still{k}.png", "licence": "CC0-1.0"})
    writer.write(path)
    return str(path)


def test_fine_detail_parts_the_resamplers_and_flat_stills_do_not(tmp_path: Path) -> None:
    probe = load_tool("resample_probe")
    rng = np.random.default_rng(0)
    noise = [rng.integers(0, 256, (120, 120, 3), dtype=np.uint8) for _ in range(2)]
    flat = [np.full((120, 120, 3), 90 + 40 * k, np.uint8) for k in range(2)]
    detailed = probe.compare(_cache_of_stills(tmp_path / "noise", noise), count=3, size=32)
    plain = probe.compare(_cache_of_stills(tmp_path / "flat", flat), count=3, size=32)
    assert max(detailed["psnr_bilinear_vs_lanczos_mean"]) < 35  # sub-pixel blur on pixel-scale detail
    assert min(plain["psnr_bilinear_vs_lanczos_mean"]) > 60  # nothing to blur: the same frames
    assert set(detailed["ms_per_triplet"]) == {"bilinear", "lanczos"}
