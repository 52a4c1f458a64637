# SPDX-License-Identifier: MIT
"""The bake cache: where inputs and results live, cache keys, and when a result is complete.

Layout under the cache folder::

    inputs/<node>-<hash>/src.####.exr      the node's input, written by its internal Write
    <key>/ldmvfi_job.json                  what this result is (settings digest, range, pattern)
    <key>/frame_map.txt                    frame-curve mode: the curve the runner follows
    <key>/ldmvfi.####.exr                  the retimed frames (the runner writes them atomically)
    <key>/ldmvfi_complete.json             written once every output frame is there
    <key>/farm_bundle/                     Submit to farm: the job bundle

``key`` = hash of the settings digest (every knob that changes pixels, the frame curve, the
model file's identity, the upstream LDMVFI results) and the *input fingerprint*. A frame's
fingerprint is the ``nuke/node_hash`` attribute Nuke writes into every EXR header (its hash of
the whole upstream tree at that frame); when it is missing, a hash of the file's bytes. Mtimes
are not used: the input is re-written on every Interpolate, and an unchanged tree must give the
same key.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import struct
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from .settings import Settings, frame_map_text

INPUT_NAME = "src.####.exr"
OUTPUT_NAME = "ldmvfi.####.exr"
JOB_FILE = "ldmvfi_job.json"
MARKER_FILE = "ldmvfi_complete.json"
FRAME_MAP_FILE = "frame_map.txt"
BUNDLE_DIR = "farm_bundle"
KEY_LENGTH = 16
# Bump when the meaning of a key changes (layout, runner options), so old results are not reused.
CACHE_FORMAT = 1


class CacheError(ValueError):
    """A cache problem the artist can fix; one line."""


def cache_root(knob_text: str, env: Mapping[str, str]) -> Path:
    """The cache folder: knob text (``~`` and ``$VARS`` expanded), else $LDMVFI_CACHE, else <temp>/ldmvfi_cache.

    Resolved here, not with a TCL expression in the knob, so nothing is evaluated on redraw.
    For farm renders, point it (or $LDMVFI_CACHE) at storage every render node can see.
    """
    text = knob_text.strip() or env.get("LDMVFI_CACHE", "").strip()
    if not text:
        return Path(tempfile.gettempdir()) / "ldmvfi_cache"
    return Path(os.path.expanduser(expand_vars(text, env, what="cache folder")))


_VAR = re.compile(r"\$(?:\{(\w+)\}|(\w+))")


def expand_vars(text: str, env: Mapping[str, str], *, what: str) -> str:
    """``$NAME`` / ``${NAME}`` from ``env``; an unset one is an error (not a folder named "$SHOW")."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name not in env:
            raise CacheError(f"{what} {text!r}: environment variable ${name} is not set")
        return env[name]

    return _VAR.sub(value, text)


def frame_path(pattern: Path | str, frame: int) -> Path:
    """``dir/name.####.exr`` at ``frame``: Nuke's rule, one digit per ``#``, more digits if needed."""
    pattern = str(pattern)
    match = re.search(r"#+", Path(pattern).name)
    if match is None:
        raise CacheError(f"{pattern}: no #### in the file name")
    width = match.end() - match.start()
    number = f"-{abs(frame):0{width}d}" if frame < 0 else f"{frame:0{width}d}"
    start = len(pattern) - len(Path(pattern).name) + match.start()
    return Path(pattern[:start] + number + pattern[start + width:])


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("._") or "node"


def input_dir(root: Path, script: str, node_name: str) -> Path:
    """One input folder per node of a script (a second node must not overwrite this one's frames)."""
    digest = hashlib.sha256(f"{script}\0{node_name}".encode()).hexdigest()[:8]
    return root / "inputs" / f"{_slug(node_name)}-{digest}"


# -- input fingerprints -----------------------------------------------------------------------

_EXR_MAGIC = 20000630
_MAX_HEADER = 1 << 20


def exr_string_attributes(path: Path) -> dict[str, str]:
    """String attributes of an EXR file's (first) header, read with the standard library.

    Only what a fingerprint needs: the header is a list of ``name\\0 type\\0 size value``
    records ending with an empty name. Returns {} for anything that is not a readable EXR.
    """
    try:
        with path.open("rb") as f:
            head = f.read(_MAX_HEADER)
    except OSError:
        return {}
    if len(head) < 8 or struct.unpack_from("<i", head, 0)[0] != _EXR_MAGIC:
        return {}
    # Bytes 4-8 hold the version and flags; a multi-part file starts with its first part's header,
    # which is all a fingerprint needs.
    pos, found = 8, {}
    while pos < len(head):
        end = head.find(b"\0", pos)
        if end < 0:
            return {}
        if end == pos:  # empty name: end of the (first) header
            break
        name = head[pos:end].decode("latin-1")
        type_end = head.find(b"\0", end + 1)
        if type_end < 0 or type_end + 5 > len(head):
            return {}
        kind = head[end + 1:type_end].decode("latin-1")
        (size,) = struct.unpack_from("<i", head, type_end + 1)
        value_at = type_end + 5
        if size < 0 or value_at + size > len(head):
            return {}
        if kind == "string":
            found[name] = head[value_at:value_at + size].decode("utf-8", errors="replace")
        pos = value_at + size
    return found


def file_fingerprint(path: Path) -> str:
    """Nuke's ``nuke/node_hash`` of the frame if the header has one, else the SHA-256 of the file."""
    node_hash = exr_string_attributes(path).get("nuke/node_hash")
    if node_hash:
        return f"nuke:{node_hash}"
    sha = hashlib.sha256()
    try:
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                sha.update(block)
    except OSError as err:
        raise CacheError(f"{path}: cannot read the baked input ({err.strerror})") from None
    return f"sha256:{sha.hexdigest()}"


def input_fingerprints(pattern: Path, first: int, last: int) -> list[str]:
    """Fingerprints of the baked input frames first..last, or CacheError naming a missing one."""
    prints = []
    for frame in range(first, last + 1):
        path = frame_path(pattern, frame)
        if not path.is_file():
            raise CacheError(f"{path}: input frame {frame} was not written")
        prints.append(file_fingerprint(path))
    return prints


# -- keys -------------------------------------------------------------------------------------

def model_identity(checkpoint: str) -> str:
    """File name, size and mtime of a checkpoint (a replaced file gives a new key); "default" if none.

    Not its folder: a farm node may mount the same file elsewhere, and must reach the same key.
    Whole seconds, because file systems keep mtimes at different precisions.
    """
    if not checkpoint:
        return "default"
    try:
        st = os.stat(checkpoint)
    except OSError:
        return f"{Path(checkpoint).name}|missing"
    return f"{Path(checkpoint).name}|{st.st_size}|{int(st.st_mtime)}"


def config_identity(path: str) -> str:
    """An OCIO config by content (the same config reached through another path is the same)."""
    if not path:
        return ""
    try:
        return "sha256:" + hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return path  # not a readable file (e.g. an ocio:// built-in): its name


def settings_digest(settings: Settings, upstream: Sequence[str] = ()) -> str:
    """Digest of everything but the input pixels that decides the result.

    Computed the same on every machine that opens the script (a farm render compares it with
    the artist's), so machine-specific paths enter by identity: the model file by name, size and
    mtime, the OCIO config by content. ``upstream``: the result folders of LDMVFI nodes feeding
    this one, so re-baking one of them makes this node's result stale too.
    """
    fields = settings.result_fields()
    fields["ocio_config"] = config_identity(settings.ocio_config)
    payload = {
        "format": CACHE_FORMAT,
        "settings": fields,
        "model": model_identity(settings.checkpoint),
        "upstream": sorted(upstream),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def cache_key(digest: str, fingerprints: Iterable[str]) -> str:
    sha = hashlib.sha256(digest.encode())
    for fingerprint in fingerprints:
        sha.update(b"\0" + fingerprint.encode())
    return sha.hexdigest()[:KEY_LENGTH]


# -- results ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Job:
    """What a result folder holds (``ldmvfi_job.json``)."""

    digest: str
    first: int
    last: int
    pattern: str = OUTPUT_NAME

    def output_pattern(self, folder: Path) -> Path:
        return folder / self.pattern


class ResultState(Enum):
    MISSING = "missing"  # no result recorded for this node
    STALE = "stale"  # a result for other settings
    INCOMPLETE = "incomplete"  # right settings, frames still missing
    COMPLETE = "complete"


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_job(folder: Path, job: Job, settings: Settings, argv: Sequence[str] = ()) -> None:
    record = {"digest": job.digest, "first": job.first, "last": job.last, "pattern": job.pattern,
              "settings": settings.result_fields(), "device": settings.device, "argv": list(argv)}
    _atomic_write(folder / JOB_FILE, json.dumps(record, indent=1) + "\n")


def read_job(folder: Path) -> Job | None:
    try:
        data = json.loads((folder / JOB_FILE).read_text(encoding="utf-8"))
        return Job(digest=str(data["digest"]), first=int(data["first"]), last=int(data["last"]),
                   pattern=str(data.get("pattern", OUTPUT_NAME)))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def write_frame_map(folder: Path, settings: Settings) -> Path:
    path = folder / FRAME_MAP_FILE
    _atomic_write(path, frame_map_text(settings.frame_map))
    return path


def missing_frames(folder: Path, job: Job) -> list[int]:
    return [f for f in range(job.first, job.last + 1) if not frame_path(job.output_pattern(folder), f).is_file()]


def mark_complete(folder: Path, job: Job, info: Mapping[str, object] | None = None) -> None:
    record = {"digest": job.digest, "first": job.first, "last": job.last, **(info or {})}
    _atomic_write(folder / MARKER_FILE, json.dumps(record, indent=1) + "\n")


def result_state(folder: Path | None, digest: str) -> tuple[ResultState, Job | None]:
    """Is ``folder`` a finished result for settings ``digest``?

    Complete = every output frame is on disk. The runner only ever renames finished frames into
    place, so a frame that exists is whole; this also picks up frames a farm job wrote, and notices
    frames someone deleted after the marker was written. The marker (written after a successful
    run, or here when the frames turn up) records when and how the result was completed.
    """
    if folder is None:
        return ResultState.MISSING, None
    job = read_job(folder)
    if job is None:
        return ResultState.MISSING, None
    if job.digest != digest:
        return ResultState.STALE, job
    if missing_frames(folder, job):
        return ResultState.INCOMPLETE, job
    if not (folder / MARKER_FILE).is_file():
        mark_complete(folder, job, {"found": "all frames present"})
    return ResultState.COMPLETE, job
