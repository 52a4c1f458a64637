# SPDX-License-Identifier: MIT
"""Training data for both stages: a torch ``Dataset`` of (frame0, frame1, frame2) triplets.

The pieces live in small modules, re-exported here:

* ``video``: ``read_video_frames``, ``video_triplets`` (cut-safe indices), ``KNOWN_CUTS``.
* ``synthetic``: ``synthetic_triplet`` and friends (continuous motion over stills, exact middle).
* ``augment``: ``augment`` (crop, flips, transpose, time reversal, colour; same for all frames).
* ``triplet_cache``: ``TripletCacheWriter`` / ``TripletCache`` (the compact file that travels).

``TripletDataset`` reads a cache built by ``tools/build_training_set.py``. Item ``i`` of epoch
``e`` is a pure function of ``(seed, e, i)``: the augmentation (and, with ``fresh_synthetic``, the
synthetic motion) is drawn from ``numpy.random.default_rng((seed, e, i))``, so a run resumed at
an epoch sees exactly the data the interrupted run would have. Call ``set_epoch`` before each
epoch's iterator is created; with ``persistent_workers=True`` the workers keep the epoch they
were started with, so leave it off (the default) or use a new ``DataLoader`` per epoch.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from ldmvfi_core.train.augment import augment, centre_crop
from ldmvfi_core.train.synthetic import Resample, Size, check_resample, synthetic_triplet
from ldmvfi_core.train.triplet_cache import SyntheticRecipe, TripletCache, TripletCacheWriter
from ldmvfi_core.train.video import KNOWN_CUTS, read_video_frames, video_triplets

__all__ = [
    "KNOWN_CUTS",
    "SyntheticRecipe",
    "TripletCache",
    "TripletCacheWriter",
    "TripletDataset",
    "augment",
    "item_rng",
    "read_video_frames",
    "synthetic_triplet",
    "to_tensor",
    "video_triplets",
]


def item_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """The generator of one item: independent streams for every (seed, epoch, index)."""
    if min(seed, epoch, index) < 0:
        raise ValueError(f"seed, epoch and index must be >= 0, got {seed}, {epoch}, {index}")
    return np.random.default_rng((seed, epoch, index))


def to_tensor(triplet: np.ndarray) -> torch.Tensor:
    """(3, H, W, 3) uint8 -> (3, 3, H, W) float32 in [-1, 1] (frame, channel, y, x)."""
    x = torch.from_numpy(np.ascontiguousarray(triplet)).permute(0, 3, 1, 2).float()
    return x.mul_(2.0 / 255.0).sub_(1.0)


class TripletDataset(Dataset[torch.Tensor]):
    """Triplets from a ``TripletCache`` as (3, 3, H, W) float32 tensors in [-1, 1].

    Frame order (frame0, frame1, frame2): ``x[1]`` is the target middle frame.

    Args:
        cache: a cache directory (or its ``triplets.npz``); opened lazily in each worker.
        size: training crop (height, width); every stored frame must be at least this big.
        seed: base seed; with ``epoch`` and the index it fixes every random draw.
        train: ``augment`` each item; otherwise a centre crop and nothing random (validation).
        fresh_synthetic: for synthetic items, draw new stills and motion from the item's
            generator (every epoch differs) instead of rendering the stored recipe.
        max_motion: motion limit (px, frame0 to frame2) of fresh synthetic triplets; default
            ~40 px at 256 px.
        mattes: share of items given black letterbox/pillarbox bars (``augment.add_mattes``).
        resample: how synthetic items sample their stills (``synthetic`` module docstring).
    """

    def __init__(self, cache: str | Path, *, size: Size = (256, 256), seed: int = 0, train: bool = True,
                 fresh_synthetic: bool = True, max_motion: float | None = None, mattes: float = 0.0,
                 resample: Resample = "bilinear") -> None:
        self.cache_path = Path(cache)
        self.size = (int(size[0]), int(size[1]))
        self.seed, self.epoch = int(seed), 0
        self.train, self.fresh_synthetic, self.max_motion = train, fresh_synthetic, max_motion
        if not 0.0 <= mattes <= 1.0:
            raise ValueError(f"mattes {mattes} is not a share between 0 and 1")
        self.mattes = mattes
        self.resample: Resample = check_resample(resample)
        self._cache: TripletCache | None = None
        self._length = len(self.cache)
        self._check_sizes()

    def _check_sizes(self) -> None:
        """Refuse a crop larger than some items now, by name, not in a data-loader worker mid-run
        (session 23 lost a GPU call to 640x272 clips under a 512-px crop)."""
        cache, (crop_h, crop_w) = self.cache, self.size
        small: dict[tuple[str, int, int], int] = {}
        for index in range(self._length):
            if self.train and self.fresh_synthetic and cache.kind(index) == "synthetic":
                continue  # rendered at the crop size
            height, width = cache.item_size(index)
            if height < crop_h or width < crop_w:
                source = cache.items[index].get("source") or {}
                name = str(source.get("clip") or source.get("kind") or cache.kind(index))
                small[(name, width, height)] = small.get((name, width, height), 0) + 1
        if small:
            listed = ", ".join(f"{count} of {name} ({w}x{h})" for (name, w, h), count in sorted(small.items()))
            raise ValueError(f"{self.cache_path}: triplets smaller than the crop {crop_w}x{crop_h}: {listed}; "
                             "use a smaller --crop, or a cache without them (tools/build_training_set.py --clips)")

    @property
    def cache(self) -> TripletCache:
        """This process's open cache."""
        if self._cache is None:
            self._cache = TripletCache(self.cache_path, resample=self.resample)
        return self._cache

    def __getstate__(self) -> dict[str, object]:
        state = dict(self.__dict__)
        state["_cache"] = None  # each worker opens its own copy (cheap: one file read)
        return state

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose random draws the next iterator uses."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self._length

    def triplet(self, index: int) -> np.ndarray:
        """Item ``index`` of the current epoch as (3, H, W, 3) uint8 (before tensor conversion)."""
        if not 0 <= index < self._length:
            raise IndexError(f"item {index} out of range: the dataset has {self._length}")
        rng = item_rng(self.seed, self.epoch, index)
        cache = self.cache
        if self.train and self.fresh_synthetic and cache.kind(index) == "synthetic":
            # Rendered at the crop size: the window position is random already.
            raw = cache.synthesize(rng, self.size, max_motion=self.max_motion)
        else:
            raw = cache[index]
        if self.train:
            return augment(raw, rng, size=self.size, mattes=self.mattes)
        return centre_crop(raw, self.size)

    def __getitem__(self, index: int) -> torch.Tensor:
        return to_tensor(self.triplet(index))
