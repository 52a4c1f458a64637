# SPDX-License-Identifier: MIT
"""Knob names and defaults of the LDMVFI node, and knob values -> validated ``Settings``.

No ``nuke`` import: the glue (``node.py``) reads the knobs into a plain mapping and calls
``settings_from_values``. ``KNOB_NAMES`` is every user knob of ``gizmos/LDMVFI.gizmo`` except the
tabs; a test parses the gizmo and checks the two agree, and that the gizmo's defaults and pulldown
items are the ones below.

Frame ranges follow the runner (``ldmvfi_core.retime.timing``): output frames are numbered from
the first source frame, so factor N over first..last gives first..first+(last-first)*N and speed
S gives first..first+floor((last-first)/|S|).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


class SettingsError(ValueError):
    """A knob value the runner cannot use; one line, meant for the status line."""


class K:
    """User knob names (one place; the gizmo must use exactly these)."""

    # Timing tab
    METHOD = "method"
    FACTOR = "factor"
    SPEED = "speed"
    FRAME = "frame"
    INPUT_FIRST = "input_first"
    INPUT_LAST = "input_last"
    RESET_RANGE = "reset_range"
    OUTPUT_INFO = "output_info"
    DEPTH = "depth"
    DETECT_CUTS = "detect_cuts"
    ENGINE = "engine"
    # Model tab
    CHECKPOINT = "checkpoint"
    STEPS = "steps"
    ETA = "eta"
    SEED = "seed"
    DEVICE = "device"
    PRECISION = "precision"
    BATCH = "batch"
    ENSEMBLE = "ensemble"
    PREALIGN = "prealign"
    # Colour tab
    TRANSFER = "transfer"
    OCIO_FROM = "ocio_from"
    OCIO_FROM_PICK = "ocio_from_pick"
    OCIO_TO = "ocio_to"
    OCIO_TO_PICK = "ocio_to_pick"
    # Channels tab
    CHANNELS = "channels"
    OTHER_CHANNELS = "other_channels"
    # Output tab
    CACHE_DIR = "cache_dir"
    RUNNER_PYTHON = "runner_python"
    INTERPOLATE = "interpolate"
    SUBMIT_FARM = "submit_farm"
    STATUS = "status"
    BAKED_DIR = "baked_dir"  # hidden: the cache folder of the last result (saved with the script)


KNOB_NAMES: frozenset[str] = frozenset(
    value for name, value in vars(K).items() if name.isupper() and isinstance(value, str)
)

# Names of the internal nodes of the gizmo.
INPUT_WRITE = "bake_input"
RESULT_READ = "baked_result"
NODE_CLASS = "LDMVFI"

# Pulldown items, in menu order (the gizmo's M {...} lists must match).
TIMING_METHODS: tuple[str, ...] = ("factor", "speed", "frame curve")
ENGINES: tuple[str, ...] = ("ldmvfi", "blend", "nearest")
# "all GPUs": one worker process per GPU (`ldmvfi retime --devices all`); a farm task uses one GPU.
ALL_GPUS = "all GPUs"
DEVICES: tuple[str, ...] = ("cuda", "cpu", ALL_GPUS, *(f"cuda:{i}" for i in range(8)))
PRECISIONS: tuple[str, ...] = ("float32", "bfloat16")
ENSEMBLES: tuple[str, ...] = ("1", "2", "4", "8", "16")  # ldmvfi_core.ensemble.ENSEMBLE_SIZES (no import: stdlib only)
TRANSFERS: tuple[str, ...] = ("hdr", "srgb", "none", "ocio")
CHANNEL_SETS: tuple[str, ...] = ("all", "rgba", "rgb")
OTHER_CHANNELS: tuple[str, ...] = ("warp", "nearest")
# First item of the two OCIO pick menus; the rest is filled at run time from the script's config.
OCIO_PICK_PROMPT = "pick..."

PULLDOWNS: Mapping[str, tuple[str, ...]] = {
    K.METHOD: TIMING_METHODS,
    K.ENGINE: ENGINES,
    K.DEVICE: DEVICES,
    K.PRECISION: PRECISIONS,
    K.ENSEMBLE: ENSEMBLES,
    K.TRANSFER: TRANSFERS,
    K.CHANNELS: CHANNEL_SETS,
    K.OTHER_CHANNELS: OTHER_CHANNELS,
    K.OCIO_FROM_PICK: (OCIO_PICK_PROMPT,),
    K.OCIO_TO_PICK: (OCIO_PICK_PROMPT,),
}

# Defaults of the value knobs (the gizmo's must match). Empty strings are resolved at run time:
# checkpoint "" = the shipped model, ocio_from "" = the script's working space, cache_dir "" =
# $LDMVFI_CACHE or <temp>/ldmvfi_cache, runner_python "" = $LDMVFI_PYTHON or python3.
DEFAULTS: Mapping[str, object] = {
    K.METHOD: "factor",
    K.FACTOR: 2,
    K.SPEED: 0.5,
    K.FRAME: 1.0,
    K.INPUT_FIRST: 1,
    K.INPUT_LAST: 100,
    K.DEPTH: 3,
    K.DETECT_CUTS: True,
    K.ENGINE: "ldmvfi",
    K.CHECKPOINT: "",
    K.STEPS: 0,  # the model's own (10 for the shipped model, 200 for the official checkpoint)
    K.ETA: 1.0,
    K.SEED: 0,
    K.BATCH: 1,
    K.ENSEMBLE: "1",
    K.PREALIGN: False,
    K.DEVICE: "cuda",
    K.PRECISION: "float32",
    K.TRANSFER: "hdr",
    K.OCIO_FROM: "",
    K.OCIO_TO: "",
    K.CHANNELS: "all",
    K.OTHER_CHANNELS: "warp",
    K.CACHE_DIR: "",
    K.RUNNER_PYTHON: "",
    K.BAKED_DIR: "",
}

# Knobs whose change can move the output frame range (the readout listens to these).
RANGE_KNOBS: frozenset[str] = frozenset({K.METHOD, K.FACTOR, K.SPEED, K.FRAME, K.INPUT_FIRST, K.INPUT_LAST})

MAX_DEPTH = 16  # the runner's limit (ldmvfi_core.retime.plan)


@dataclass(frozen=True)
class Settings:
    """Everything that decides the runner's command line (and the cache key), validated."""

    method: str
    factor: int
    speed: float
    input_first: int
    input_last: int
    frame_map: tuple[tuple[int, float], ...]  # (output frame, source frame); frame-curve mode only
    depth: int
    detect_cuts: bool
    engine: str
    checkpoint: str  # "" = the shipped default model
    steps: int
    eta: float
    seed: int
    device: str
    precision: str
    batch: int  # in-betweens per model call; changes the pixels (slightly), so it is in the cache key
    ensemble: int  # views averaged per in-between (ldmvfi retime --ensemble)
    prealign: bool  # moving pairs also pre-aligned on their camera move, then fused (ldmvfi retime --prealign)
    transfer: str
    ocio_from: str
    ocio_to: str
    ocio_config: str  # "" = the runner's default ($OCIO or OpenImageIO's built-in config)
    channels: str
    other_channels: str

    @property
    def output_range(self) -> tuple[int, int]:
        if self.method == "frame curve":
            return self.frame_map[0][0], self.frame_map[-1][0]
        return timing_range(self.method, self.input_first, self.input_last, self.factor, self.speed)

    def result_fields(self) -> dict[str, object]:
        """The fields that change the output pixels (device is left out: same frames on any card)."""
        fields = {name: getattr(self, name) for name in self.__dataclass_fields__ if name != "device"}
        fields["frame_map"] = [list(pair) for pair in self.frame_map]
        return fields


def timing_range(method: str, first: int, last: int, factor: int, speed: float,
                 curve_keys: Sequence[float] = ()) -> tuple[int, int]:
    """Output frame range of a timing; frame curve: the keyed range (or the input range if unkeyed)."""
    if last < first:
        raise SettingsError(f"input range {first}-{last}: last frame is before the first")
    if method == "factor":
        if factor < 1:
            raise SettingsError(f"factor must be a whole number >= 1, got {factor}")
        return first, first + (last - first) * factor
    if method == "speed":
        if not math.isfinite(speed) or speed == 0:
            raise SettingsError(f"speed must be a non-zero number, got {speed}")
        # Same tolerance as the runner, so 0.1 * 10 still reaches the last frame.
        return first, first + math.floor((last - first) / abs(speed) + 1e-9)
    if method == "frame curve":
        if not curve_keys:
            return first, last
        start, end = math.ceil(min(curve_keys) - 1e-9), math.floor(max(curve_keys) + 1e-9)
        if end < start:
            raise SettingsError("frame curve: the keys do not span a whole output frame")
        return start, end
    raise SettingsError(f"unknown timing method {method!r}; choose one of {', '.join(TIMING_METHODS)}")


def output_info(first: int, last: int) -> str:
    """The readout under the input range, e.g. ``output 1001-1199 (199 frames)``."""
    count = last - first + 1
    return f"output {first}-{last} ({count} frame{'s' if count != 1 else ''})"


def frame_map_text(frame_map: Sequence[tuple[int, float]]) -> str:
    """Two columns per line, ``output source``: the format ``ldmvfi retime --frame-map`` reads."""
    lines = ["# output_frame source_frame (written by the LDMVFI Nuke node from its frame curve)"]
    lines += [f"{output} {float(source)!r}" for output, source in frame_map]  # repr: exact round trip
    return "\n".join(lines) + "\n"


def _choice(values: Mapping[str, object], name: str) -> str:
    value = str(values.get(name, DEFAULTS.get(name, ""))).strip()
    if value not in PULLDOWNS[name]:
        raise SettingsError(f"{name}: {value!r} is not one of {', '.join(PULLDOWNS[name])}")
    return value


def _number(values: Mapping[str, object], name: str) -> tuple[object, float]:
    """The knob's raw value (or its default) and that value as a float."""
    raw = values.get(name, DEFAULTS.get(name))
    try:
        return raw, float(str(raw))
    except ValueError:
        raise SettingsError(f"{name}: {raw!r} is not a number") from None


def _int(values: Mapping[str, object], name: str) -> int:
    raw, number = _number(values, name)
    if not number.is_integer():
        raise SettingsError(f"{name}: {raw!r} is not a whole number")
    return int(number)


def _float(values: Mapping[str, object], name: str) -> float:
    raw, number = _number(values, name)
    if not math.isfinite(number):
        raise SettingsError(f"{name}: {raw!r} is not a finite number")
    return number


def _text(values: Mapping[str, object], name: str) -> str:
    return str(values.get(name, DEFAULTS.get(name, "")) or "").strip()


def range_from_values(values: Mapping[str, object], curve_keys: Sequence[float] = ()) -> tuple[int, int]:
    """The output range the knob values give (the readout; ``SettingsError`` when they cannot)."""
    return timing_range(_choice(values, K.METHOD), _int(values, K.INPUT_FIRST), _int(values, K.INPUT_LAST),
                        _int(values, K.FACTOR), _float(values, K.SPEED), curve_keys)


def settings_from_values(
    values: Mapping[str, object],
    *,
    frame_map: Sequence[tuple[int, float]] = (),
    working_space: str = "",
    ocio_config: str = "",
) -> Settings:
    """Knob values (``K`` names -> value as Nuke returns it) -> ``Settings``, or ``SettingsError``.

    ``frame_map``: the ``frame`` knob sampled at every output frame (frame-curve mode).
    ``working_space``: the script's OCIO working space, used when ``ocio_from`` is empty.
    ``ocio_config``: the config file the script uses (passed to the runner with the names).
    """
    method = _choice(values, K.METHOD)
    first, last = _int(values, K.INPUT_FIRST), _int(values, K.INPUT_LAST)
    factor, speed = _int(values, K.FACTOR), _float(values, K.SPEED)
    curve = tuple((int(o), float(s)) for o, s in frame_map) if method == "frame curve" else ()
    if method == "frame curve":
        if not curve:
            raise SettingsError("frame curve: no output frames (set keys on the frame knob)")
        if any(not math.isfinite(s) for _, s in curve):
            raise SettingsError("frame curve: the frame knob has a non-finite value")
        outputs = [o for o, _ in curve]
        if outputs != list(range(outputs[0], outputs[0] + len(outputs))):
            raise SettingsError("frame curve: output frames must be consecutive")
    else:
        timing_range(method, first, last, factor, speed)
    if last < first:
        raise SettingsError(f"input range {first}-{last}: last frame is before the first")
    depth = _int(values, K.DEPTH)
    if not 1 <= depth <= MAX_DEPTH:
        raise SettingsError(f"recursion depth must be 1-{MAX_DEPTH}, got {depth}")
    steps = _int(values, K.STEPS)
    if steps < 0:
        raise SettingsError(f"steps must be 0 (the model's own) or more, got {steps}")
    eta = _float(values, K.ETA)
    if eta < 0:
        raise SettingsError(f"eta must be >= 0, got {eta}")
    batch = _int(values, K.BATCH)
    if batch < 1:
        raise SettingsError(f"batch must be >= 1, got {batch}")
    transfer = _choice(values, K.TRANSFER)
    ocio_from, ocio_to = _text(values, K.OCIO_FROM), _text(values, K.OCIO_TO)
    if transfer == "ocio":
        ocio_from = ocio_from or working_space
        if not ocio_from:
            raise SettingsError("OCIO: choose the plate's colourspace (ocio from)")
        if not ocio_to:
            raise SettingsError("OCIO: choose a display-referred colourspace for the model (ocio to)")
    else:
        ocio_from = ocio_to = ocio_config = ""  # not used by the other transfers: keep them out of the key
    return Settings(
        method=method,
        factor=factor,
        speed=speed,
        input_first=first,
        input_last=last,
        frame_map=curve,
        depth=depth,
        detect_cuts=bool(values.get(K.DETECT_CUTS, DEFAULTS[K.DETECT_CUTS])),
        engine=_choice(values, K.ENGINE),
        checkpoint=_text(values, K.CHECKPOINT),
        steps=steps,
        eta=eta,
        seed=_int(values, K.SEED),
        device=_choice(values, K.DEVICE),
        precision=_choice(values, K.PRECISION),
        batch=batch,
        ensemble=int(_choice(values, K.ENSEMBLE)),
        prealign=bool(values.get(K.PREALIGN, DEFAULTS[K.PREALIGN])),
        transfer=transfer,
        ocio_from=ocio_from,
        ocio_to=ocio_to,
        ocio_config=ocio_config,
        channels=_choice(values, K.CHANNELS),
        other_channels=_choice(values, K.OTHER_CHANNELS),
    )
