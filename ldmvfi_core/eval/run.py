# SPDX-License-Identifier: MIT
"""``ldmvfi eval``: score interpolators on folders of ground-truth triplets.

A triplet is a folder holding ``frame0.png``, ``frame1.png`` (the true middle) and ``frame2.png``,
at any depth below the root. Its *set* is the first folder below the root (``eval/ucf101/01`` is
triplet ``01`` of set ``ucf101``); triplets directly in the root, or a root that is itself a
triplet, belong to a set named after the root. Triplets are visited in sorted path order.

Every method is a callable ``(frame0, frame2) -> middle`` over H x W x 3 uint8 RGB; it may return
uint8, or float in [0, 1] (rounded with ``round(clip(x, 0, 1) * 255)``). Scores are PSNR and SSIM
on 8-bit RGB at the ground truth's size (conventions in ``ldmvfi_core.eval.metrics``); a set's
score is the mean of its per-triplet scores.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ldmvfi_core.eval.metrics import psnr, ssim
from ldmvfi_core.io.atomic import atomic_path

Method = Callable[[np.ndarray, np.ndarray], np.ndarray]
FRAME_NAMES = ("frame0.png", "frame1.png", "frame2.png")
KNOWN_METHODS = ("ours", "average", "flow")
SHEET_ROWS = 6
EXIT_USER_ERROR = 2


@dataclass(frozen=True)
class Triplet:
    """One ground-truth triplet folder."""

    set_name: str
    name: str
    folder: Path

    @property
    def key(self) -> str:
        return f"{self.set_name}/{self.name}"

    def frame_path(self, index: int) -> Path:
        return self.folder / FRAME_NAMES[index]


@dataclass(frozen=True)
class TripletScore:
    set_name: str
    name: str
    method: str
    psnr: float
    ssim: float
    seconds: float


@dataclass(frozen=True)
class SetScore:
    """Means over a set's triplets (``seconds``: mean time per interpolated frame)."""

    set_name: str
    method: str
    psnr: float
    ssim: float
    n: int
    seconds: float


@dataclass
class EvalResults:
    root: Path
    methods: list[str]
    triplets: list[TripletScore]
    sets: list[SetScore]
    # key -> {"frame0", "frame2", "truth", <method>...: uint8 image}, for the triplets asked to keep
    predictions: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)

    def set_score(self, set_name: str, method: str) -> SetScore:
        for s in self.sets:
            if s.set_name == set_name and s.method == method:
                return s
        raise KeyError(f"no score for set {set_name!r}, method {method!r}")

    def markdown_table(self) -> str:
        lines = ["| set | method | PSNR | SSIM | n |", "|---|---|---|---|---|"]
        lines += [f"| {s.set_name} | {s.method} | {s.psnr:.2f} | {s.ssim:.4f} | {s.n} |" for s in self.sets]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "root": str(self.root),
            "methods": list(self.methods),
            "conventions": {
                "psnr": "8-bit RGB, -10 log10(MSE/255^2 + 1e-8), MSE over all pixels and 3 channels; "
                        "set score = mean of per-triplet PSNR",
                "ssim": "8-bit RGB per channel then averaged; Gaussian 11x11, sigma 1.5, K1 0.01, K2 0.03, "
                        "L 255, valid windows; set score = mean of per-triplet SSIM",
            },
            "sets": [asdict(s) for s in self.sets],
            "triplets": [asdict(t) for t in self.triplets],
        }


def find_triplets(root: str | os.PathLike[str]) -> list[Triplet]:
    """Every folder under ``root`` (``root`` included) with a frame0/1/2.png, sorted by path.

    Raises FileNotFoundError naming the first missing frame of a partial triplet.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such folder")
    root_name = root.resolve().name
    folders = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        if any(name in filenames for name in FRAME_NAMES):
            folders.append(Path(dirpath))
    triplets = []
    for folder in sorted(folders, key=lambda p: p.relative_to(root).parts):
        for name in FRAME_NAMES:
            if not (folder / name).is_file():
                raise FileNotFoundError(
                    f"{folder / name}: no such file (a triplet needs {', '.join(FRAME_NAMES)})")
        parts = folder.relative_to(root).parts
        if len(parts) >= 2:
            triplets.append(Triplet(parts[0], "/".join(parts[1:]), folder))
        else:
            triplets.append(Triplet(root_name, parts[0] if parts else root_name, folder))
    if not triplets:
        raise FileNotFoundError(f"{root}: no triplets (folders with {', '.join(FRAME_NAMES)})")
    return triplets


def read_rgb8(path: Path) -> np.ndarray:
    """An image as H x W x 3 uint8 RGB (grey is repeated, alpha and extra channels dropped)."""
    from ldmvfi_core.io.images import ImageError, read_image

    pixels = read_image(path)
    if pixels.shape[2] == 1:
        pixels = np.repeat(pixels, 3, axis=2)
    elif pixels.shape[2] < 3:
        raise ImageError(f"{path}: {pixels.shape[2]} channels, expected RGB")
    # 8-bit files read as exact k/255 floats, so this recovers the stored values bit for bit.
    return np.clip(np.rint(pixels[..., :3] * 255.0), 0, 255).astype(np.uint8)


def load_triplet(triplet: Triplet) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(frame0, frame1 = truth, frame2) as uint8; one-line error if their sizes differ."""
    frames = tuple(read_rgb8(triplet.frame_path(i)) for i in range(3))
    for i in (1, 2):
        if frames[i].shape != frames[0].shape:
            h0, w0 = frames[0].shape[:2]
            h, w = frames[i].shape[:2]
            raise ValueError(f"{triplet.frame_path(i)}: {w}x{h} differs from {FRAME_NAMES[0]} {w0}x{h0}")
    return frames  # type: ignore[return-value]


def to_uint8(pred: np.ndarray, like: np.ndarray, method: str, triplet: Triplet) -> np.ndarray:
    """A method's output as uint8 of the truth's size (float in [0, 1] -> round(x * 255))."""
    pred = np.asarray(pred)
    if pred.dtype != np.uint8:
        pred = np.clip(np.rint(np.clip(pred.astype(np.float64), 0.0, 1.0) * 255.0), 0, 255).astype(np.uint8)
    if pred.shape != like.shape:
        raise ValueError(f"{triplet.folder}: method {method!r} returned {pred.shape}, expected {like.shape}")
    return pred


def evaluate_folder(
    root: str | os.PathLike[str],
    methods: Mapping[str, Method],
    *,
    limit: int | None = None,
    keep: Collection[str] = (),
    progress: Callable[[int, int, Triplet], None] | None = None,
) -> EvalResults:
    """Score each method on every triplet under ``root``.

    Args:
        root: folder searched recursively for triplets (see ``find_triplets``).
        methods: name -> ``(frame0_u8, frame2_u8) -> middle`` (uint8, or float in [0, 1]).
        limit: at most this many triplets per set (the first in sorted order).
        keep: triplet keys (``"set/name"``) whose inputs, truth and predictions to keep in
            ``EvalResults.predictions`` (for a contact sheet).
        progress: called as ``progress(done, total, triplet)`` before each triplet.

    Returns:
        per-triplet and per-set scores, sets in sorted order, methods in the given order.
    """
    triplets = select(find_triplets(root), limit)
    scores: list[TripletScore] = []
    kept: dict[str, dict[str, np.ndarray]] = {}
    for done, triplet in enumerate(triplets):
        if progress is not None:
            progress(done, len(triplets), triplet)
        f0, truth, f2 = load_triplet(triplet)
        if triplet.key in keep:
            kept[triplet.key] = {"frame0": f0, "frame2": f2, "truth": truth}
        for name, method in methods.items():
            t0 = time.perf_counter()
            pred = method(f0, f2)
            seconds = time.perf_counter() - t0
            pred = to_uint8(pred, truth, name, triplet)
            scores.append(TripletScore(triplet.set_name, triplet.name, name, psnr(pred, truth),
                                       ssim(pred, truth), seconds))
            if triplet.key in keep:
                kept[triplet.key][name] = pred
    return EvalResults(Path(root), list(methods), scores, _set_means(scores, list(methods)), kept)


def select(triplets: Sequence[Triplet], limit: int | None) -> list[Triplet]:
    """The first ``limit`` triplets of each set (all when ``limit`` is None)."""
    if limit is None:
        return list(triplets)
    counts: dict[str, int] = {}
    chosen = []
    for t in triplets:
        counts[t.set_name] = counts.get(t.set_name, 0) + 1
        if counts[t.set_name] <= limit:
            chosen.append(t)
    return chosen


def _set_means(scores: Sequence[TripletScore], methods: Sequence[str]) -> list[SetScore]:
    out = []
    for set_name in sorted({s.set_name for s in scores}):
        for method in methods:
            rows = [s for s in scores if s.set_name == set_name and s.method == method]
            out.append(SetScore(set_name, method, float(np.mean([r.psnr for r in rows])),
                                float(np.mean([r.ssim for r in rows])), len(rows),
                                float(np.mean([r.seconds for r in rows]))))
    return out


def sheet_keys(triplets: Sequence[Triplet], rows: int = SHEET_ROWS) -> list[str]:
    """Up to ``rows`` triplet keys for the contact sheet: the sets take turns, the result keeps path order."""
    by_set: dict[str, list[Triplet]] = {}
    for t in triplets:
        by_set.setdefault(t.set_name, []).append(t)
    chosen: set[str] = set()
    depth = 0
    while len(chosen) < rows and any(depth < len(v) for v in by_set.values()):
        for v in by_set.values():
            if depth < len(v) and len(chosen) < rows:
                chosen.add(v[depth].key)
        depth += 1
    return [t.key for t in triplets if t.key in chosen]  # grouped by set on the sheet


# -- command line -------------------------------------------------------------------------------


def make_ours(args: argparse.Namespace) -> Method:
    """The LDMVFI method, the model loaded once."""
    from ldmvfi_core.interpolate import Interpolator, dtype_named

    interp = Interpolator.load(args.model, device=args.device, dtype=dtype_named(args.precision),
                               weights=args.weights, padding=args.padding, compile=args.compile,
                               cuda_graphs=True,  # CUDA graphs only take effect on GPUs
                               ensemble=args.ensemble, prealign=args.prealign)
    args.steps = interp.resolve_steps(args.steps)  # the settings in --json name the steps actually run

    def ours(f0: np.ndarray, f2: np.ndarray) -> np.ndarray:
        middle = interp.interpolate(f0, f2, steps=args.steps, eta=args.eta, seed=args.seed)
        return np.clip(np.rint(np.asarray(middle) * 255.0), 0, 255).astype(np.uint8)

    return ours


def build_methods(args: argparse.Namespace) -> dict[str, Method]:
    from ldmvfi_core.eval.baselines import flow_baseline, frame_average, require_opencv

    names = [m.strip() for m in (args.methods or ("average,flow" if args.no_model else
                                                   "ours,average,flow")).split(",") if m.strip()]
    unknown = [m for m in names if m not in KNOWN_METHODS]
    if unknown or not names:
        raise ValueError(f"--methods: unknown {', '.join(unknown) or '(empty)'}; choose from "
                         f"{', '.join(KNOWN_METHODS)}")
    if args.no_model and ("ours" in names or args.model):
        raise ValueError("--no-model: leave out --model and the method 'ours'")
    if "flow" in names:
        require_opencv()  # fail before any work when OpenCV is missing
    methods: dict[str, Method] = {}
    for name in names:
        if name == "ours":
            methods[name] = make_ours(args)
        elif name == "average":
            methods[name] = frame_average
        else:
            methods[name] = flow_baseline
    return methods


def add_eval_arguments(p: argparse.ArgumentParser) -> None:
    from ldmvfi_core.cli import STEPS_HELP, _add_model_options
    from ldmvfi_core.interpolate import DEFAULT_ETA

    p.add_argument("root", help="folder of triplets: <set>/<seq>/frame0.png, frame1.png (truth), frame2.png")
    p.add_argument("--no-model", action="store_true", help="baselines only (no LDMVFI weights needed)")
    p.add_argument("--methods", help="comma list of ours, average, flow "
                                     "(default: all; average,flow with --no-model)")
    p.add_argument("--steps", type=int, default=0, help=STEPS_HELP)
    p.add_argument("--eta", type=float, default=DEFAULT_ETA, help="DDIM eta (official default 1.0)")
    p.add_argument("--seed", type=int, default=0, help="the same seed for every triplet")
    p.add_argument("--limit", type=int, help="at most N triplets per set (quick runs)")
    p.add_argument("--json", help="write all scores (per set and per triplet) to this JSON file")
    p.add_argument("--sheet", help=f"write a contact sheet PNG of up to {SHEET_ROWS} triplets")
    p.add_argument("--quiet", action="store_true", help="no per-triplet progress on stderr")
    _add_model_options(p)


def run_eval(args: argparse.Namespace) -> int:
    if args.limit is not None and args.limit < 1:
        raise ValueError("--limit must be at least 1")
    triplets = select(find_triplets(args.root), args.limit)  # fail on a bad folder before loading a model
    for output in (args.json, args.sheet):  # a folder that is missing must not cost a finished eval
        if output:
            Path(output).parent.mkdir(parents=True, exist_ok=True)
    methods = build_methods(args)
    keep = sheet_keys(triplets) if args.sheet else []

    def report(done: int, total: int, triplet: Triplet) -> None:
        print(f"eval {done + 1}/{total} {triplet.key}", file=sys.stderr, flush=True)

    results = evaluate_folder(args.root, methods, limit=args.limit, keep=keep,
                              progress=None if args.quiet else report)
    print(results.markdown_table())
    if args.json:
        data = results.to_dict()
        data["settings"] = {k: getattr(args, k) for k in ("model", "weights", "steps", "eta", "seed", "ensemble",
                                                          "prealign", "device", "precision", "padding", "limit")}
        with atomic_path(Path(args.json)) as tmp:
            tmp.write_text(json.dumps(data, indent=1) + "\n")
        print(f"wrote {args.json}")
    if args.sheet:
        from ldmvfi_core.eval.sheet import SheetRow, contact_sheet

        scored = {(t.set_name + "/" + t.name, t.method): t for t in results.triplets}
        rows = [SheetRow(key, images, {m: f"{scored[key, m].psnr:.2f} dB" for m in results.methods})
                for key, images in ((k, results.predictions[k]) for k in keep)]
        contact_sheet(rows, args.sheet, columns=["frame0", "frame2", *results.methods, "truth"])
        print(f"wrote {args.sheet}")
    return 0


def main_eval(argv: Sequence[str] | None = None) -> int:
    """``ldmvfi eval ROOT ...``; returns the exit status (2 with a one-line error for bad input)."""
    from ldmvfi_core.io.images import ImageError
    from ldmvfi_core.model.checkpoint import CheckpointError

    parser = argparse.ArgumentParser(prog="ldmvfi eval", description="PSNR/SSIM of interpolators on "
                                     "ground-truth triplets")
    add_eval_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run_eval(args)
    except (CheckpointError, ImageError, ValueError, OSError, ImportError) as err:
        print(f"ldmvfi eval: error: {err}", file=sys.stderr)
        return EXIT_USER_ERROR
