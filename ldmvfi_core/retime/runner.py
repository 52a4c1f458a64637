# SPDX-License-Identifier: MIT
"""``ldmvfi retime``: resolve the sequence, plan, load the model once, render, write safely.

Safety rules (a farm node can die at any moment):

* every output is written to a temporary name in the output folder and renamed, so an output
  file either is complete or does not exist, and an existing frame is never half-overwritten;
* ``skip_existing`` treats every readable output as done (resume after an interruption);
* the noise of every synthesised frame depends only on the seed and what the frame is, so a
  resumed or chunked run writes the same pixels as one uninterrupted run.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path

import numpy as np
import torch

from ldmvfi_core.ensemble import check_ensemble
from ldmvfi_core.interpolate import check_steps
from ldmvfi_core.io.atomic import atomic_path
from ldmvfi_core.io.exr import ExrFrame, Window, crop, write_exr
from ldmvfi_core.io.images import ImageError
from ldmvfi_core.io.sequence import (
    SequenceError,
    find_missing,
    format_frame_set,
    parse_frame_set,
    parse_pattern,
)
from ldmvfi_core.retime.cuts import thumbnail, thumbnails_are_cut
from ldmvfi_core.retime.plan import (
    Copy,
    Hold,
    Method,
    Node,
    PlannedFrame,
    RetimePlan,
    Synthesize,
    batch_groups,
    plan_retime,
)
from ldmvfi_core.retime.progress import Progress, SilentProgress
from ldmvfi_core.retime.render import FrameRenderer, OtherChannels, RenderSettings
from ldmvfi_core.retime.sources import ColourSettings, NonFinitePolicy, SourcePlate
from ldmvfi_core.retime.timing import TimeMap, by_factor, by_frame_map, by_speed, read_frame_map
from ldmvfi_core.retime.writer import OrderedWriter


@dataclass(frozen=True)
class RetimeOptions:
    """Everything ``ldmvfi retime`` needs; the CLI, the Nuke node and the farm build this."""

    input: str
    output: str
    frames: str | None = None  # source frames to use; None: every frame found on disk
    output_frames: str | None = None  # render only these output frames (farm chunks)
    factor: int | None = None
    speed: float | None = None
    frame_map: str | None = None
    depth: int = 3
    method: Method = "ldmvfi"
    model: str | None = None
    weights: str = "ema"
    device: str = "cpu"
    precision: str = "float32"
    padding: str = "minimal"
    steps: int = 0  # DDIM steps; 0: the model's own (Interpolator.default_steps)
    eta: float = 1.0
    seed: int = 0
    colour: ColourSettings = field(default_factory=ColourSettings)
    channels: str = "all"  # all | rgba | rgb
    other_channels: OtherChannels = "warp"
    detect_cuts: bool = True
    nonfinite: NonFinitePolicy = "error"
    skip_existing: bool = False
    dry_run: bool = False
    compile: bool = False  # torch.compile the U-Net, on GPUs the autoencoder too (see Interpolator)
    batch: int = 1  # in-betweens per model call; the pixels depend on it (see plan.batch_groups)
    ensemble: int = 1  # views averaged per in-between (see ldmvfi_core.ensemble); N times the work
    prealign: bool = False  # moving pairs also pre-aligned on their camera move, then fused (ldmvfi_core.prealign)


@dataclass
class RetimeResult:
    plan: RetimePlan
    input_pattern: str = ""
    source_frames: str = ""
    output_pattern: str = ""
    written: list[int] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)
    cuts: list[int] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def resolve_time_map(options: RetimeOptions, first: int, last: int) -> TimeMap:
    chosen = [x is not None for x in (options.factor, options.speed, options.frame_map)]
    if sum(chosen) > 1:
        raise ValueError("choose one of --factor, --speed, --frame-map")
    if options.speed is not None:
        return by_speed(first, last, options.speed)
    if options.frame_map is not None:
        return by_frame_map(read_frame_map(options.frame_map), first, last)
    return by_factor(first, last, options.factor if options.factor is not None else 2)


def resolve_frames(options: RetimeOptions) -> tuple[SourcePlate, list[int]]:
    pattern = parse_pattern(options.input)
    if options.frames:
        frames = parse_frame_set(options.frames)
        on_disk = set(pattern.scan())
        missing = [f for f in frames if f not in on_disk]
        if missing:
            raise SequenceError(f"{pattern}: missing source frame(s) {format_frame_set(missing)} "
                                f"(first missing: {pattern.path(missing[0])})")
    else:
        frames = pattern.scan()
        if not frames:
            raise SequenceError(f"{pattern}: no frames found in {pattern.directory}")
        gaps = find_missing(frames)
        if gaps:
            raise SequenceError(f"{pattern}: missing source frame(s) {format_frame_set(gaps)} inside "
                                f"{frames[0]}-{frames[-1]} (first missing: {pattern.path(gaps[0])}); "
                                "pass --frames to use a sub-range")
    plate = SourcePlate(pattern, frames, colour=options.colour, nonfinite=options.nonfinite)
    return plate, frames


def build_plan(options: RetimeOptions, plate: SourcePlate, frames: list[int]
               ) -> tuple[RetimePlan, list[int], TimeMap]:
    """The plan (restricted to ``output_frames``), the source frames followed by a cut, the timing."""
    time_map = resolve_time_map(options, frames[0], frames[-1])
    wanted = set(parse_frame_set(options.output_frames)) if options.output_frames else None

    def plan_with(cuts: list[int]) -> RetimePlan:
        plan = plan_retime(time_map, frames, depth=options.depth, method=options.method, cuts=frozenset(cuts))
        return plan if wanted is None else plan.select(wanted)

    plan = plan_with([])
    cuts: list[int] = []
    if options.detect_cuts and options.method != "nearest":
        pairs = sorted({(f.action.node.frame_a, f.action.node.frame_b) for f in plan.frames
                        if isinstance(f.action, Synthesize)})
        # Frames are encoded and averaged down on the model's device; only thumbnails come back.
        device = torch.device(options.device)
        previous: tuple[int, object, np.ndarray] | None = None  # (frame, window, thumbnail) of the last pair's b
        for k, (a, b) in enumerate(pairs):
            plate.prefetch(pairs[k + 1] if k + 1 < len(pairs) else ())
            window = plate.working_window(a, b)
            if previous is not None and previous[0] == a and previous[1] == window:
                thumb_a = previous[2]  # each inner frame is read and encoded once, not once per pair
            else:
                thumb_a = thumbnail(plate.model_tensor(a, window, device))
            thumb_b = thumbnail(plate.model_tensor(b, window, device))
            previous = (b, window, thumb_b)
            if thumbnails_are_cut(thumb_a, thumb_b):
                cuts.append(a)
    return (plan_with(cuts) if cuts else plan), cuts, time_map


def run_retime(options: RetimeOptions, progress: Progress | None = None) -> RetimeResult:
    progress = progress or SilentProgress()
    if options.batch < 1:
        raise ValueError(f"--batch must be at least 1, got {options.batch}")
    check_steps(options.steps)
    check_ensemble(options.ensemble)
    plate, frames = resolve_frames(options)
    try:
        return _retime_plate(plate, frames, options, progress)
    finally:
        plate.close()  # the read-ahead thread


def _retime_plate(plate: SourcePlate, frames: list[int], options: RetimeOptions, progress: Progress) -> RetimeResult:
    out_pattern = parse_pattern(options.output)
    plan, cuts, time_map = build_plan(options, plate, frames)
    result = RetimeResult(plan=plan, cuts=cuts, input_pattern=str(plate.pattern),
                          source_frames=format_frame_set(frames), output_pattern=str(out_pattern))
    for a in cuts:
        b = frames[frames.index(a) + 1]
        result.warnings.append(f"scene cut between {a} and {b}: holding the nearest frame there")
    result.warnings.extend(f"output {o}: source time outside {frames[0]}-{frames[-1]}, held at the end"
                           for o in time_map.clamped_frames())
    if options.dry_run:
        return result
    out_pattern.directory.mkdir(parents=True, exist_ok=True)
    if not os.access(out_pattern.directory, os.W_OK):
        raise ImageError(f"{out_pattern.directory}: output folder is not writable")

    progress.start(len(plan.frames), input=str(plate.pattern), output=str(out_pattern),
                   frames=format_frame_set(f.output_frame for f in plan.frames))
    for message in result.warnings:
        progress.warning(message)
    interpolator = _load_interpolator(options)
    if interpolator is not None:  # the frames' metadata names the steps actually run
        options = replace(options, steps=interpolator.resolve_steps(options.steps))
    renderer = FrameRenderer(plate, _render_settings(options), interpolator,
                             _batch_groups(options, time_map, frames))
    targets = [out_pattern.path(planned.output_frame) for planned in plan.frames]
    done = [options.skip_existing and is_complete(target) for target in targets]

    def skipped(frame: int) -> None:
        progress.skip(frame, "exists")
        result.skipped.append(frame)

    def written(frame: int, action: str) -> None:
        result.written.append(frame)
        progress.frame(frame, action)

    # Each frame renders here and is written on a background thread while the next one renders;
    # every report still comes in plan order, once its file is on disk (retime/writer.py). The
    # next frame's sources are read ahead on another thread meanwhile (SourcePlate.prefetch).
    try:
        with OrderedWriter() as writer:
            for planned, target, exists, upcoming, read_ahead in zip(
                    plan.frames, targets, done, _next_nodes(plan, done), _next_sources(plan, done, options),
                    strict=True):
                frame = planned.output_frame
                if exists:
                    writer.after(partial(skipped, frame))
                    continue
                plate.prefetch(read_ahead)
                write = _render_planned(planned, target, plate, renderer, options, upcoming)
                writer.submit(write, partial(written, frame, planned.describe()))
    finally:
        renderer.close()  # the camera-move thread (prealign)
    for message in plate.warnings:
        progress.warning(message)
        result.warnings.append(message)
    progress.finish()
    return result


def _next_nodes(plan: RetimePlan, done: list[bool]) -> list[Node | None]:
    """For each planned frame, the first node synthesised after it (None: none is), so the
    renderer can start that node's sampling early."""
    ahead: list[Node | None] = []
    following: Node | None = None
    for planned, exists in zip(reversed(plan.frames), reversed(done), strict=True):
        ahead.append(following)
        if not exists and isinstance(planned.action, Synthesize):
            following = planned.action.node
    return ahead[::-1]


#: How many later planned frames ``_next_sources`` looks through at most (a bound on its cost for
#: plans that hold one source frame for a long time).
READ_AHEAD_SCAN = 64


def _next_sources(plan: RetimePlan, done: list[bool], options: RetimeOptions) -> list[tuple[int, ...]]:
    """For each planned frame, the source frames to read ahead while it renders: those the frames
    written after it read, up to and including the first one that needs a source frame this one
    does not. Why not just the next frame's: in a 2x retime the next frame is often a copy of a
    source already read, so the new source frame was only asked for once the in-between needing
    it was due (session 16: most source reads then ran on the thread that feeds the GPU)."""
    reads = [() if exists else _reads_of(p, options) for p, exists in zip(plan.frames, done, strict=True)]
    ahead: list[tuple[int, ...]] = []
    for i, own in enumerate(reads):
        wanted: list[int] = []
        for later in reads[i + 1:i + 1 + READ_AHEAD_SCAN]:
            wanted.extend(f for f in later if f not in wanted)
            if any(f not in own for f in later):
                break
        ahead.append(tuple(wanted))
    return ahead


def _reads_of(planned: PlannedFrame, options: RetimeOptions) -> tuple[int, ...]:
    """The source frames writing ``planned`` reads (none for a file copied whole)."""
    action = planned.action
    if isinstance(action, Copy | Hold):
        return () if options.channels == "all" else (action.source,)
    return (action.node.frame_a, action.node.frame_b)


def _render_settings(options: RetimeOptions) -> RenderSettings:
    return RenderSettings(method=options.method, steps=options.steps, eta=options.eta, seed=options.seed,
                          other_channels=options.other_channels, batch=options.batch, prealign=options.prealign)


def _batch_groups(options: RetimeOptions, time_map: TimeMap, frames: list[int]) -> dict[Node, tuple[Node, ...]]:
    """Batch groups from the whole plan (every output frame, no cuts): the same in every chunk."""
    if options.batch <= 1 or options.method != "ldmvfi":
        return {}
    whole = plan_retime(time_map, frames, depth=options.depth, method=options.method)
    return batch_groups(whole.nodes(), frames, options.batch)


def _load_interpolator(options: RetimeOptions):  # type: ignore[no-untyped-def]
    if options.method != "ldmvfi":
        return None
    from ldmvfi_core.interpolate import Interpolator, dtype_named

    # CUDA graphs for the U-Net step on GPUs (verified equal to eager on the reference vectors).
    return Interpolator.load(options.model, device=options.device, dtype=dtype_named(options.precision),
                             weights=options.weights,  # type: ignore[arg-type]  # checked by the CLI choices
                             padding=options.padding,  # type: ignore[arg-type]
                             cuda_graphs=True, compile=options.compile, ensemble=options.ensemble)


def is_complete(path: Path) -> bool:
    """An output that exists and opens is complete (outputs are only ever renamed into place)."""
    if not path.is_file():
        return False
    try:
        import OpenImageIO as oiio

        image = oiio.ImageInput.open(str(path))
        if image is None:
            return False
        image.close()
        return True
    except Exception:
        return False


def _selected_channels(plate: SourcePlate, mode: str) -> list[int]:
    """File channel indices to write, in file order."""
    names = plate.reference.channel_names
    keep = {"rgb": {"R", "G", "B"}, "rgba": {"R", "G", "B", "A"}}.get(mode)
    return [i for i, n in enumerate(names) if keep is None or n in keep]


def _render_planned(planned: PlannedFrame, target: Path, plate: SourcePlate, renderer: FrameRenderer,
                    options: RetimeOptions, upcoming: Node | None) -> Callable[[], None]:
    """Queue the frame's work now (or read it); return what writes it to ``target``. For an
    in-between that call also waits for its pixels, so a GPU error shows on the writer's thread
    and reaches the caller at its next ``submit`` (retime/writer.py)."""
    action = planned.action
    if isinstance(action, Copy | Hold) and options.channels == "all":
        source = plate.pattern.path(action.source)
        return lambda: _copy_atomic(source, target)
    if isinstance(action, Copy | Hold):
        image = plate.read(action.source)
        keep = _selected_channels(plate, options.channels)  # here: the plate is not for the writer's thread
        return lambda: _write_subset(image, image.pixels, image.data_window, target, keep, extra=[])
    node = action.node
    window = renderer.window(node)
    pixels_later = renderer.render_later(node, upcoming)
    a, b = plate.read(node.frame_a), plate.read(node.frame_b)
    data_window = a.data_window.union(b.data_window)
    extra = [
        ("ldmvfi:method", "string", options.method),
        ("ldmvfi:model", "string", options.model or "default"),
        ("ldmvfi:steps", "int", options.steps),
        ("ldmvfi:eta", "float", options.eta),
        ("ldmvfi:seed", "int", options.seed),
        ("ldmvfi:sourceFrames", "string", f"{node.frame_a},{node.frame_b}"),
        ("ldmvfi:sourceTime", "float", node.source_time),
        ("ldmvfi:depth", "int", options.depth),
        ("ldmvfi:batch", "int", options.batch),
        ("ldmvfi:ensemble", "int", options.ensemble),
        ("ldmvfi:prealign", "int", int(options.prealign)),
    ]
    keep = _selected_channels(plate, options.channels)
    model_channel = {file_channel: i for i, file_channel in enumerate(plate.channel_order())}
    columns = [model_channel[j] for j in keep]  # file channel keep[k] is model channel columns[k]

    def write() -> None:
        # On the writer's thread: the wait for the download, the crop, and the return to file
        # channel order (one gather with the channel selection, in _write_subset), so the thread
        # that feeds the GPU goes on to the next in-between at once.
        pixels = pixels_later()
        if window != data_window:
            pixels = crop(pixels, window, data_window)
        _write_subset(a, pixels, data_window, target, keep, extra, columns)

    return write


def _write_subset(template: ExrFrame, pixels: np.ndarray, data_window: Window, target: Path,
                  keep: list[int], extra: list[tuple[str, str, object]], columns: list[int] | None = None) -> None:
    """Write the file channels ``keep`` of ``template``'s layout; their pixels are ``pixels``'
    channels ``columns`` (default ``keep``: ``pixels`` in file channel order)."""
    frame = replace(
        template,
        pixels=np.ascontiguousarray(pixels[..., keep if columns is None else columns], dtype=np.float32),
        data_window=data_window,
        channel_names=tuple(template.channel_names[i] for i in keep),
        channel_formats=tuple(template.channel_formats[i] for i in keep),
        path=target,
    )
    write_exr(target, frame, extra_attributes=extra)


def _copy_atomic(source: Path, target: Path) -> None:
    try:
        with atomic_path(target) as tmp:
            shutil.copyfile(source, tmp)
    except OSError as err:
        raise ImageError(f"{target}: cannot write ({err.strerror})") from None
