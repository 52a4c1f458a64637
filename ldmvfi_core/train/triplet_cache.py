# SPDX-License-Identifier: MIT
"""A compact training-set cache that travels to the GPU machine: one ``.npz`` plus a JSON sidecar.

Layout of a cache directory:

* ``triplets.npz`` (uncompressed zip of arrays): ``blob`` (uint8, every encoded image back to
  back), ``offsets`` (int64, image k is ``blob[offsets[k]:offsets[k + 1]]``), ``shapes`` (int32
  (H, W, 3) per image) and ``meta`` (the sidecar's UTF-8 JSON, so the ``.npz`` alone suffices).
* ``triplets.json``: the same JSON, for people: codec, every item's source and licence, counts.

Two kinds of item share the image pool:

* ``frames``: three stored images (frame0, frame1, frame2). Video triplets share frames, so a
  clip stored once yields every cut-safe triplet (several gaps) at about one image per triplet.
* ``synthetic``: a ``SyntheticRecipe`` (background still, foreground stills, motion parameters)
  rendered on read by ``ldmvfi_core.train.synthetic``; the stills are stored once. Items cost a
  few hundred bytes of JSON, and ``TripletCache.synthesize`` draws fresh motion over the same
  stills, so training need not see the same synthetic triplet twice.

Codec: JPEG quality 95 by default (Pillow to write; Pillow or OpenCV to read), 4:2:0 chroma like
the source videos; ``png`` (lossless) and ``raw`` (numpy only, uncompressed) are also supported.
Measured at q95 4:2:0 on the training clips: 40-47 dB PSNR (mean error 0.7-2 code values; the
noisy/grassy clips are the worst), about the noise those lossy sources already carry, at 35-65 KiB
per 512x288 frame. PNG would fit ~4x fewer frames in the same 40 MiB.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ldmvfi_core.train.synthetic import (
    Resample,
    Size,
    SyntheticMotion,
    as_rgb,
    check_resample,
    render_synthetic,
    sample_motion,
)

FORMAT = "ldmvfi-triplet-cache"
VERSION = 1
NPZ_NAME = "triplets.npz"
JSON_NAME = "triplets.json"
CODECS = ("jpeg", "png", "raw")
SUBSAMPLING = {"4:4:4": 0, "4:2:2": 1, "4:2:0": 2}


def encode_image(image: np.ndarray, codec: str = "jpeg", *, quality: int = 95, subsampling: str = "4:2:0") -> bytes:
    """Encode an H x W x 3 uint8 image (``raw`` needs numpy only, the others Pillow)."""
    image = as_rgb(image)
    if codec == "raw":
        return image.tobytes()
    if codec not in CODECS:
        raise ValueError(f"unknown codec {codec!r}: expected one of {CODECS}")
    from PIL import Image  # writing needs Pillow; only the cache builder writes

    buffer = io.BytesIO()
    if codec == "jpeg":
        Image.fromarray(image).save(buffer, format="JPEG", quality=quality, subsampling=SUBSAMPLING[subsampling])
    else:
        Image.fromarray(image).save(buffer, format="PNG", compress_level=6)
    return buffer.getvalue()


def decode_image(data: bytes | memoryview | np.ndarray, codec: str, shape: Sequence[int]) -> np.ndarray:
    """Decode one stored image to H x W x 3 uint8 RGB (Pillow, else OpenCV, for jpeg/png)."""
    buffer = memoryview(data).cast("B") if not isinstance(data, np.ndarray) else data
    if codec == "raw":
        return np.frombuffer(buffer, np.uint8).reshape(tuple(shape)).copy()
    try:
        from PIL import Image
    except ImportError:  # the GPU image has OpenCV; either decoder gives the same pixels to +-1
        import cv2

        decoded = cv2.imdecode(np.frombuffer(buffer, np.uint8), cv2.IMREAD_COLOR)
        if decoded is None:
            raise ValueError(f"cannot decode a {codec} image") from None
        image = np.ascontiguousarray(decoded[..., ::-1])
    else:
        with Image.open(io.BytesIO(bytes(buffer))) as opened:
            image = np.asarray(opened.convert("RGB"))
    if image.shape != tuple(shape):
        raise ValueError(f"decoded image is {image.shape}, the cache says {tuple(shape)}")
    return image


def downscale2(image: np.ndarray) -> np.ndarray:
    """Halve an H x W x 3 uint8 image by 2 x 2 box averaging (odd last row/column dropped)."""
    h, w = image.shape[0] // 2 * 2, image.shape[1] // 2 * 2
    x = image[:h, :w].astype(np.uint16)
    total = x[0::2, 0::2] + x[1::2, 0::2] + x[0::2, 1::2] + x[1::2, 1::2]
    return ((total + 2) // 4).astype(np.uint8)


@dataclass(frozen=True)
class SyntheticRecipe:
    """A synthetic triplet as parameters over the cache's stills.

    Attributes:
        background: index of the background still (``TripletCache.stills``).
        level: pyramid level of the background (the still halved ``level`` times).
        sources: (still, level) of each foreground source; ``LayerMotion.source`` indexes this.
        motion: camera and layer motion.
        size: rendered (height, width).
    """

    background: int
    level: int
    sources: tuple[tuple[int, int], ...]
    motion: SyntheticMotion
    size: Size

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (``from_dict`` reverses it)."""
        return {"background": self.background, "level": self.level, "sources": [list(s) for s in self.sources],
                "motion": self.motion.to_dict(), "size": list(self.size)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SyntheticRecipe:
        """Rebuild from ``to_dict`` output."""
        return cls(background=int(data["background"]), level=int(data["level"]),
                   sources=tuple((int(s), int(v)) for s, v in data["sources"]),
                   motion=SyntheticMotion.from_dict(data["motion"]), size=(int(data["size"][0]), int(data["size"][1])))


def level_shape(shape: Sequence[int], level: int) -> tuple[int, int, int]:
    """Shape of a still halved ``level`` times by ``downscale2``."""
    h, w = int(shape[0]), int(shape[1])
    for _ in range(level):
        h, w = h // 2, w // 2
    return h, w, 3


def still_levels(shape: Sequence[int], min_side: int) -> list[int]:
    """Pyramid levels of a still whose shorter side is at least ``min_side`` (level 0 always)."""
    levels = [0]
    while min(level_shape(shape, len(levels))[:2]) >= min_side:
        levels.append(len(levels))
    return levels


def sample_recipe(rng: np.random.Generator, still_shapes: Sequence[Sequence[int]], size: Size, *,
                  max_motion: float | None = None, n_sources: int = 2) -> SyntheticRecipe:
    """Draw a synthetic recipe: background still and pyramid level, foreground stills, motion.

    Args:
        rng: the only source of randomness.
        still_shapes: level-0 shapes of the available stills (recipes index this list).
        size: output (height, width).
        max_motion: see ``sample_motion``.
        n_sources: foreground stills per recipe (other than the background where possible).
    """
    n = len(still_shapes)
    if n == 0:
        raise ValueError("synthetic triplets need at least one still")
    background = int(rng.integers(n))
    # The window (up to 1.4x the output) plus motion must fit: only levels big enough for that.
    levels = still_levels(still_shapes[background], int(1.6 * max(size)))
    level = levels[int(rng.integers(len(levels)))]
    others = [s for s in range(n) if s != background] or [background]
    picks = rng.choice(len(others), size=min(n_sources, len(others)), replace=False)
    sources = []
    for pick in picks:
        still = others[int(pick)]
        options = still_levels(still_shapes[still], max(size))
        sources.append((still, options[int(rng.integers(len(options)))]))
    motion = sample_motion(rng, size, level_shape(still_shapes[background], level),
                           [level_shape(still_shapes[s], v) for s, v in sources], max_motion=max_motion)
    return SyntheticRecipe(background=background, level=level, sources=tuple(sources), motion=motion,
                           size=(int(size[0]), int(size[1])))


def _sidecar_text(meta: Mapping[str, Any]) -> str:
    """JSON for people: dicts opened three levels deep, lists on one line, one line per still and item."""

    def show(value: Any, depth: int, rows: bool = False) -> str:
        pad = " " * (depth + 1)
        if isinstance(value, Mapping) and value and depth < 3:
            body = ",\n".join(f"{pad}{json.dumps(k)}: {show(v, depth + 1, depth == 0 and k in ('stills', 'items'))}"
                              for k, v in value.items())
            return "{\n" + body + "\n" + " " * depth + "}"
        if rows and value:
            lines = ",\n".join(pad + json.dumps(r, separators=(",", ":")) for r in value)
            return "[\n" + lines + "\n" + " " * depth + "]"
        return json.dumps(value, separators=(", ", ": "))

    return show(meta, 0)


class TripletCacheWriter:
    """Collects images, triplets, stills and synthetic recipes; ``write`` saves the cache.

    Args:
        codec: ``jpeg`` (default), ``png`` or ``raw``.
        quality: JPEG quality.
        subsampling: JPEG chroma subsampling, ``4:2:0``, ``4:2:2`` or ``4:4:4``.
    """

    def __init__(self, *, codec: str = "jpeg", quality: int = 95, subsampling: str = "4:2:0") -> None:
        if codec not in CODECS:
            raise ValueError(f"unknown codec {codec!r}: expected one of {CODECS}")
        if subsampling not in SUBSAMPLING:
            raise ValueError(f"unknown subsampling {subsampling!r}: expected one of {tuple(SUBSAMPLING)}")
        self.codec, self.quality, self.subsampling = codec, int(quality), subsampling
        self._chunks: list[bytes] = []
        self._shapes: list[tuple[int, int, int]] = []
        self._items: list[dict[str, Any]] = []
        self._stills: list[dict[str, Any]] = []

    @property
    def nbytes(self) -> int:
        """Encoded image bytes so far."""
        return sum(len(c) for c in self._chunks)

    @property
    def items(self) -> list[dict[str, Any]]:
        """The items so far (copies)."""
        return [dict(item) for item in self._items]

    def add_image(self, image: np.ndarray) -> int:
        """Encode and store one image; returns its index in the pool."""
        image = as_rgb(image)
        self._chunks.append(encode_image(image, self.codec, quality=self.quality, subsampling=self.subsampling))
        self._shapes.append((image.shape[0], image.shape[1], 3))
        return len(self._chunks) - 1

    def add_encoded(self, data: bytes, shape: Sequence[int]) -> int:
        """Store an image already encoded with this writer's codec (``encode_image``); returns its index."""
        if len(shape) != 3 or shape[2] != 3:
            raise ValueError(f"images are H x W x 3, got shape {tuple(shape)}")
        self._chunks.append(bytes(data))
        self._shapes.append((int(shape[0]), int(shape[1]), 3))
        return len(self._chunks) - 1

    def add_frames(self, images: Sequence[int], source: Mapping[str, Any]) -> int:
        """A triplet of already stored images (frame0, frame1, frame2); returns the item index."""
        ids = [int(i) for i in images]
        if len(ids) != 3 or not all(0 <= i < len(self._chunks) for i in ids):
            raise ValueError(f"a triplet needs 3 stored image indices, got {ids}")
        if len({self._shapes[i] for i in ids}) != 1:
            raise ValueError(f"triplet images differ in size: {[self._shapes[i] for i in ids]}")
        self._items.append({"kind": "frames", "images": ids, "source": dict(source)})
        return len(self._items) - 1

    def add_triplet(self, triplet: np.ndarray, source: Mapping[str, Any]) -> int:
        """Store a (3, H, W, 3) uint8 triplet's three frames as a new item."""
        triplet = np.asarray(triplet)
        if triplet.dtype != np.uint8 or triplet.ndim != 4 or triplet.shape[0] != 3 or triplet.shape[3] != 3:
            raise ValueError(f"a triplet is (3, H, W, 3) uint8, got {triplet.shape} {triplet.dtype}")
        return self.add_frames([self.add_image(frame) for frame in triplet], source)

    def add_still(self, image: np.ndarray, info: Mapping[str, Any]) -> int:
        """Store a still for synthetic motion, with its provenance (name, package, licence...)."""
        self._stills.append({**dict(info), "image": self.add_image(image)})
        return len(self._stills) - 1

    def add_synthetic(self, recipe: SyntheticRecipe, source: Mapping[str, Any] | None = None) -> int:
        """A synthetic item rendered on read from ``recipe``; returns the item index."""
        for still, _ in ((recipe.background, recipe.level), *recipe.sources):
            if not 0 <= still < len(self._stills):
                raise ValueError(f"recipe uses still {still}; the cache has {len(self._stills)}")
        self._items.append({"kind": "synthetic", "recipe": recipe.to_dict(), "source": dict(source or {})})
        return len(self._items) - 1

    def write(self, path: str | Path, info: Mapping[str, Any] | None = None) -> Path:
        """Write ``path/triplets.npz`` and ``path/triplets.json`` (temporary names, then renamed)."""
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        offsets = np.zeros(len(self._chunks) + 1, np.int64)
        offsets[1:] = np.cumsum([len(c) for c in self._chunks])
        meta = {
            "format": FORMAT, "version": VERSION, "codec": self.codec, "quality": self.quality,
            "subsampling": self.subsampling, **dict(info or {}),
            "counts": {"items": len(self._items), "images": len(self._chunks), "stills": len(self._stills),
                       "image_bytes": int(offsets[-1])},
            "stills": self._stills, "items": self._items,
        }
        text = _sidecar_text(meta)
        compact = json.dumps(meta, separators=(",", ":"))
        blob = np.frombuffer(b"".join(self._chunks), np.uint8)
        shapes = np.array(self._shapes, np.int32).reshape(-1, 3)
        npz_tmp, json_tmp = folder / f".{NPZ_NAME}.tmp", folder / f".{JSON_NAME}.tmp"
        with open(npz_tmp, "wb") as handle:
            np.savez(handle, blob=blob, offsets=offsets, shapes=shapes,
                     meta=np.frombuffer(compact.encode("utf-8"), np.uint8))
        json_tmp.write_text(text + "\n", encoding="utf-8")
        os.replace(npz_tmp, folder / NPZ_NAME)
        os.replace(json_tmp, folder / JSON_NAME)
        return folder


class TripletCache:
    """Read a cache written by ``TripletCacheWriter``: ``cache[i]`` is a (3, H, W, 3) uint8 triplet.

    Args:
        path: the cache directory, or its ``triplets.npz``.
        resample: how synthetic items sample their stills (``synthetic`` module docstring).

    Decoded stills are kept per instance (one per data-loader worker); images are decoded on demand.
    """

    def __init__(self, path: str | Path, *, resample: Resample = "bilinear") -> None:
        self.resample: Resample = check_resample(resample)
        path = Path(path)
        self.path = path / NPZ_NAME if path.is_dir() else path
        if not self.path.is_file():
            raise FileNotFoundError(f"{self.path}: no triplet cache here")
        with np.load(self.path) as arrays:
            self._blob = arrays["blob"]
            self._offsets = arrays["offsets"]
            self._shapes = arrays["shapes"]
            self.meta: dict[str, Any] = json.loads(arrays["meta"].tobytes().decode("utf-8"))
        if self.meta.get("format") != FORMAT or self.meta.get("version") != VERSION:
            raise ValueError(f"{self.path}: not a version-{VERSION} {FORMAT}")
        self.codec: str = self.meta["codec"]
        self.items: list[dict[str, Any]] = self.meta["items"]
        self.stills: list[dict[str, Any]] = self.meta["stills"]
        self._pyramids: dict[int, list[np.ndarray]] = {}

    def __len__(self) -> int:
        return len(self.items)

    @property
    def nbytes(self) -> int:
        """Encoded image bytes."""
        return int(self._offsets[-1])

    def kind(self, index: int) -> str:
        """``frames`` (stored images) or ``synthetic`` (rendered from a recipe)."""
        return str(self.items[index]["kind"])

    def image(self, index: int) -> np.ndarray:
        """Decode pool image ``index``: H x W x 3 uint8."""
        start, stop = int(self._offsets[index]), int(self._offsets[index + 1])
        return decode_image(self._blob[start:stop], self.codec, self._shapes[index])

    def still(self, index: int, level: int = 0) -> np.ndarray:
        """Still ``index`` halved ``level`` times (decoded once, kept)."""
        pyramid = self._pyramids.get(index)
        if pyramid is None:
            pyramid = self._pyramids[index] = [self.image(int(self.stills[index]["image"]))]
        while len(pyramid) <= level:
            pyramid.append(downscale2(pyramid[-1]))
        return pyramid[level]

    def render(self, recipe: SyntheticRecipe) -> np.ndarray:
        """Render a synthetic recipe over this cache's stills: (3, H, W, 3) uint8."""
        sources = [self.still(s, level) for s, level in recipe.sources]
        return render_synthetic(self.still(recipe.background, recipe.level), recipe.motion, recipe.size, sources,
                                resample=self.resample)

    def still_shapes(self) -> list[tuple[int, int, int]]:
        """Shapes of the stills (level 0)."""
        return [level_shape(self._shapes[int(s["image"])], 0) for s in self.stills]

    def sample_recipe(self, rng: np.random.Generator, size: Size, *,
                      max_motion: float | None = None) -> SyntheticRecipe:
        """Draw a synthetic recipe over this cache's stills (see ``sample_recipe``)."""
        if not self.stills:
            raise ValueError(f"{self.path}: the cache has no stills for synthetic triplets")
        return sample_recipe(rng, self.still_shapes(), size, max_motion=max_motion)

    def synthesize(self, rng: np.random.Generator, size: Size, *, max_motion: float | None = None) -> np.ndarray:
        """A fresh synthetic triplet over the cache's stills (``sample_recipe`` then ``render``)."""
        return self.render(self.sample_recipe(rng, size, max_motion=max_motion))

    def item_size(self, index: int) -> tuple[int, int]:
        """(height, width) of item ``index`` as stored or rendered, read without decoding it."""
        item = self.items[index]
        if item["kind"] == "frames":
            shape = self._shapes[int(item["images"][0])]
            return int(shape[0]), int(shape[1])
        size = item["recipe"]["size"]
        return int(size[0]), int(size[1])

    def recipe(self, index: int) -> SyntheticRecipe:
        """The stored recipe of synthetic item ``index``."""
        item = self.items[index]
        if item["kind"] != "synthetic":
            raise ValueError(f"item {index} is {item['kind']!r}, not synthetic")
        return SyntheticRecipe.from_dict(item["recipe"])

    def __getitem__(self, index: int) -> np.ndarray:
        if not -len(self) <= index < len(self):
            raise IndexError(f"item {index} out of range: the cache has {len(self)}")
        item = self.items[index]
        if item["kind"] == "frames":
            return np.stack([self.image(int(i)) for i in item["images"]])
        return self.render(self.recipe(index))
