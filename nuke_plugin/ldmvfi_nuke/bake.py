# SPDX-License-Identifier: MIT
"""Interpolate: bake the input, run ``ldmvfi retime``, point the Read at the result.

Python cannot be a pixel engine in Nuke, so the node *bakes*:

1. main thread: read the knobs, write the input range to EXRs with the internal Write
   (``nuke.execute``; Nuke's own progress dialog, cancellable), fingerprint the frames, and
   derive the result folder ``<cache>/<key>/`` (``cache.py``). A complete folder is a cache hit:
   the Read is pointed at it and no process starts;
2. otherwise a worker thread (``threading.Thread``) runs the runner subprocess and streams its
   JSON progress into a ``nuke.ProgressTask``; every Nuke call it makes goes through
   ``nuke.executeInMainThread``/``executeInMainThreadWithResult``, and cancelling the task
   terminates the runner (then kills it if it does not exit);
3. main thread, when it ends: mark the folder complete and point the Read, or show the error.

Renders (``before_render``, registered with ``nuke.addBeforeRender`` in init.py) never read a
missing or stale result: with a GUI they stop with a message saying which node to Interpolate;
without one (``nuke -x``/``nuke -t`` on a farm) they bake synchronously in the calling thread,
without threads or ProgressTask, and fail with the runner's error line if that fails.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import nuke

from . import cache, commands, node, process
from .progress import ProgressEvent, ProgressState
from .settings import INPUT_WRITE, K, Settings, SettingsError, output_info


class BakeError(RuntimeError):
    """Why a node has no result; one line naming the node."""


@dataclass
class Prepared:
    """A node ready to run: its settings, result folder and command line."""

    node: nuke.Node
    settings: Settings
    folder: Path
    job: cache.Job
    state: cache.ResultState
    input_pattern: Path
    frame_map: Path | None
    python: list[str]
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)


# Jobs running in the background, by node (one at a time per node). Module state, because a
# button press and the render guard must both see a job that is still running.
_RUNNING: dict[str, RunningJob] = {}


def in_main_thread(call: Callable[..., object], *args: object) -> None:
    nuke.executeInMainThread(call, args)


def in_main_thread_result(call: Callable[..., object], *args: object) -> object:
    run = cast(Callable[..., object], nuke.executeInMainThreadWithResult)
    return run(call, args)


def running(target: nuke.Node) -> RunningJob | None:
    return _RUNNING.get(target.fullName())


# -- preparing --------------------------------------------------------------------------------

def _check_root(name: str) -> None:
    proxy = nuke.root().knob("proxy")
    if proxy is not None and bool(proxy.value()):
        raise BakeError(f"{name}: proxy mode is on; turn it off so the input is baked at full resolution")


def write_input(target: nuke.Node, settings: Settings, pattern: Path) -> None:
    """Render the node's input range through its internal Write (half float, zip, full bbox)."""
    write = node.internal(target, INPUT_WRITE)
    pattern.parent.mkdir(parents=True, exist_ok=True)
    for name, value in (
        ("file", pattern.as_posix()),
        ("file_type", "exr"),
        ("channels", settings.channels),
        ("datatype", "16 bit half"),
        ("compression", "Zip (1 scanline)"),
        # EXR Writes store the bbox as the data window; autocrop would shrink it to the non-zero
        # pixels, so it stays off and overscan outside the format travels to the runner intact.
        ("autocrop", False),
        # Working-space values as they are: the runner's colour settings decide the conversion.
        ("raw", True),
    ):
        node.knob(write, name).setValue(value)
    # The Write stays disabled except while baking, so a render of the whole script
    # (nuke -x renders every active Write) never runs it.
    disable = node.knob(write, "disable")
    disable.setValue(False)
    try:
        nuke.execute(write, settings.input_first, settings.input_last)
    except RuntimeError as err:
        raise BakeError(f"{target.name()}: writing the input failed: {err}") from None
    finally:
        disable.setValue(True)


def prepare(target: nuke.Node) -> Prepared:
    """Everything before the runner: settings, input bake, cache key, frame map, command line."""
    name = target.name()
    try:
        settings = node.read_settings(target)
    except SettingsError as err:
        raise BakeError(f"{name}: {err}") from None
    _check_root(name)
    for up in node.upstream_ldmvfi(target):
        ensure_current(up)
    try:
        root = cache.cache_root(str(node.knob(target, K.CACHE_DIR).value() or ""), os.environ)
        input_pattern = cache.input_dir(root, nuke.root().name(), target.fullName()) / cache.INPUT_NAME
        write_input(target, settings, input_pattern)
        prints = cache.input_fingerprints(input_pattern, settings.input_first, settings.input_last)
        digest = node.digest(target, settings)
        folder = root / cache.cache_key(digest, prints)
        first, last = settings.output_range
        job = cache.Job(digest=digest, first=first, last=last)
        frame_map = cache.write_frame_map(folder, settings) if settings.method == "frame curve" else None
        python = commands.python_command(str(node.knob(target, K.RUNNER_PYTHON).value() or ""), os.environ)
        argv = commands.retime_argv(python, input_pattern.as_posix(), job.output_pattern(folder).as_posix(),
                                    settings, frame_map.as_posix() if frame_map else None)
        cache.write_job(folder, job, settings, argv)
        state, _ = cache.result_state(folder, digest)
    except (cache.CacheError, SettingsError, OSError) as err:
        raise BakeError(f"{name}: {err}") from None
    return Prepared(node=target, settings=settings, folder=folder, job=job, state=state,
                    input_pattern=input_pattern, frame_map=frame_map, python=python, argv=argv,
                    env=commands.runner_env(os.environ))


# -- ending -----------------------------------------------------------------------------------

def conclude(prepared: Prepared, outcome: process.Outcome) -> str | None:
    """After the runner: record and show the result; the one-line error if there is none."""
    target, folder, job = prepared.node, prepared.folder, prepared.job
    if not outcome.ok:
        return outcome.error_line()
    missing = cache.missing_frames(folder, job)
    if missing:
        return f"the runner finished but output frame {missing[0]} is missing in {folder}"
    state = outcome.state
    cache.mark_complete(folder, job, {"written": state.written, "skipped": state.skipped,
                                      "seconds": state.seconds, "warnings": state.warnings})
    node.point_read(target, folder, job, reload=True)
    took = f" in {state.seconds:.0f} s" if state.seconds is not None else ""
    warned = f"; {len(state.warnings)} warning(s), first: {state.warnings[0]}" if state.warnings else ""
    node.set_status(target, f"done: {output_info(job.first, job.last)}{took} -> {folder}{warned}")
    return None


def _show_hit(prepared: Prepared) -> None:
    node.point_read(prepared.node, prepared.folder, prepared.job, reload=True)
    node.set_status(prepared.node, f"cached: {output_info(prepared.job.first, prepared.job.last)} "
                                   f"from {prepared.folder}")


def _fail(target: nuke.Node, line: str) -> None:
    node.set_status(target, f"failed: {line}")
    if nuke.GUI:
        nuke.message(f"{target.name()} failed:\n{line.removeprefix(target.name() + ': ')}")


# -- background (GUI) -------------------------------------------------------------------------

class RunningJob:
    """One runner process driven from a worker thread, reporting into a ProgressTask."""

    def __init__(self, prepared: Prepared) -> None:
        self.prepared = prepared
        self.name = prepared.node.fullName()
        self.task: nuke.ProgressTask | None = nuke.ProgressTask(f"LDMVFI {prepared.node.name()}")
        self.thread = threading.Thread(target=self._work, name=f"ldmvfi-{self.name}", daemon=True)
        self.outcome: process.Outcome | None = None

    def start(self) -> None:
        _RUNNING[self.name] = self
        _set_buttons(self.prepared.node, enabled=False)
        node.set_status(self.prepared.node, "running: starting the runner (loading the model)")
        self.thread.start()

    # worker thread: only these run outside the main thread, and they touch Nuke only via hops.
    def _work(self) -> None:
        try:
            outcome = process.drive(self.prepared.argv, env=self.prepared.env, on_event=self._on_event,
                                    is_cancelled=self._is_cancelled)
        except Exception as err:  # never leave the node "running" with its buttons greyed out
            outcome = process.Outcome(returncode=None, start_error=f"the runner could not be driven: {err}")
        self.outcome = outcome
        in_main_thread(self._finish, outcome)

    def _on_event(self, event: ProgressEvent, state: ProgressState) -> None:
        in_main_thread(self._show, state.percent, state.message())

    def _is_cancelled(self) -> bool:
        return bool(in_main_thread_result(self._task_cancelled))

    # main thread
    def _task_cancelled(self) -> bool:
        return self.task is not None and bool(self.task.isCancelled())

    def _show(self, percent: int, message: str) -> None:
        if self.task is not None:
            self.task.setProgress(percent)
            self.task.setMessage(message)
        with contextlib.suppress(ValueError):  # a deleted node: the run still finishes into the cache
            node.set_status(self.prepared.node, f"running: {message}")

    def _finish(self, outcome: process.Outcome) -> None:
        _RUNNING.pop(self.name, None)
        self.task = None  # the progress bar goes away with its task
        target = self.prepared.node
        try:
            _set_buttons(target, enabled=True)
        except ValueError:  # the node was deleted while the runner ran: nothing to show
            return
        if outcome.cancelled:
            node.set_status(target, f"cancelled at {outcome.state.done}/{outcome.state.total} frames: finished "
                                    "frames are kept, press Interpolate to resume")
            return
        try:
            error = conclude(self.prepared, outcome)
        except OSError as err:
            error = f"cannot record the result in {self.prepared.folder}: {err}"
        if error is not None:
            _fail(target, error)


def _set_buttons(target: nuke.Node, *, enabled: bool) -> None:
    for name in (K.INTERPOLATE, K.SUBMIT_FARM):
        node.knob(target, name).setEnabled(enabled)


# -- blocking (headless) ----------------------------------------------------------------------

def run_blocking(prepared: Prepared) -> None:
    """Run the runner in this thread, printing progress lines; BakeError if it fails."""
    name = prepared.node.name()
    print(f"LDMVFI {name}: {shlex.join(prepared.argv)}", flush=True)

    def report(event: ProgressEvent, state: ProgressState) -> None:
        if event.kind == "warning":
            print(f"LDMVFI {name}: warning: {event.data.get('message', '')}", flush=True)
        elif event.kind in ("frame", "skip", "done"):
            print(f"LDMVFI {name}: {state.message()}", flush=True)

    outcome = process.drive(prepared.argv, env=prepared.env, on_event=report, is_cancelled=None)
    error = conclude(prepared, outcome)
    if error is not None:
        node.set_status(prepared.node, f"failed: {error}")
        raise BakeError(f"{name}: {error}")


# -- entry points -----------------------------------------------------------------------------

def interpolate(target: nuke.Node) -> RunningJob | None:
    """The Interpolate button. Returns the background job (GUI), or None when nothing runs on."""
    job = running(target)
    if job is not None:
        node.set_status(target, "already running: cancel it from its progress bar to start again")
        return None
    try:
        prepared = prepare(target)
    except BakeError as err:
        _fail(target, str(err))
        if not nuke.GUI:
            raise
        return None
    if prepared.state is cache.ResultState.COMPLETE:
        _show_hit(prepared)
        return None
    if not nuke.GUI:
        run_blocking(prepared)
        return None
    job = RunningJob(prepared)
    job.start()
    return job


def ensure_current(target: nuke.Node) -> None:
    """Make sure ``target`` shows the result of its current settings, or raise BakeError.

    Upstream LDMVFI nodes first. Without a GUI a missing result is baked here (blocking); with
    one, the artist is told to press Interpolate (a render must not start an hours-long job).
    """
    for up in node.upstream_ldmvfi(target):
        ensure_current(up)
    name = target.name()
    try:
        settings = node.read_settings(target)
    except SettingsError as err:
        raise BakeError(f"{name}: {err}") from None
    folder = node.baked_dir(target)
    state, job = cache.result_state(folder, node.digest(target, settings))
    if state is cache.ResultState.COMPLETE and folder is not None and job is not None:
        node.point_read(target, folder, job)
        return
    if running(target) is not None:
        raise BakeError(f"{name}: still interpolating; render once it has finished")
    if nuke.GUI:
        why = {cache.ResultState.STALE: "its settings changed since the last Interpolate",
               cache.ResultState.INCOMPLETE: "its result is unfinished",
               cache.ResultState.MISSING: "it has not been interpolated"}[state]
        raise BakeError(f"{name}: {why}; press Interpolate on it first")
    prepared = prepare(target)
    if prepared.state is cache.ResultState.COMPLETE:
        _show_hit(prepared)
        return
    run_blocking(prepared)


def _inside_ldmvfi(write: nuke.Node) -> bool:
    parent = write.parent()
    return parent is not None and node.is_ldmvfi(parent)


def before_render() -> None:
    """``nuke.addBeforeRender`` callback: every LDMVFI node feeding the Write must be current."""
    write = nuke.thisNode()
    if _inside_ldmvfi(write):  # the node's own input bake
        return
    for target in node.upstream_ldmvfi(write):
        ensure_current(target)
