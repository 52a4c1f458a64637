# SPDX-License-Identifier: MIT
"""Submit to farm: write the job bundle for the node's current settings, without blocking the UI.

The input is baked first (main thread, like Interpolate), because the farm job reads those
frames: the cache folder must be on storage the render nodes see. The bundle is written by
``ldmvfi farm bundle`` (same options as ``retime``) into ``<cache>/<key>/farm_bundle`` from a
worker thread; its one-line error, if any, goes to the status line. The farm job renders into
``<cache>/<key>/``, the folder this node records as its result, so once the frames are there
(Interpolate, or any render of the script) the node shows them without running anything.
"""

from __future__ import annotations

import threading

import nuke

from . import bake, cache, commands, node, process
from .progress import ProgressEvent, ProgressState
from .settings import K, output_info


def _bundle_argv(prepared: bake.Prepared) -> list[str]:
    folder = prepared.folder
    return commands.farm_bundle_argv(
        prepared.python, prepared.input_pattern.as_posix(), prepared.job.output_pattern(folder).as_posix(),
        prepared.settings, (folder / cache.BUNDLE_DIR).as_posix(),
        prepared.frame_map.as_posix() if prepared.frame_map else None,
    )


def _ignore(event: ProgressEvent, state: ProgressState) -> None:
    pass


def _report(prepared: bake.Prepared, outcome: process.Outcome) -> None:
    """Main thread: say where the bundle went, or why it did not."""
    target, bundle = prepared.node, prepared.folder / cache.BUNDLE_DIR
    try:
        node.knob(target, K.SUBMIT_FARM).setEnabled(True)
    except ValueError:  # node deleted meanwhile
        return
    if not outcome.ok:
        line = outcome.error_line()
        node.set_status(target, f"farm bundle failed: {line}")
        if nuke.GUI:
            nuke.message(f"{target.name()}: the farm bundle was not written:\n{line}")
        return
    node.set_status(target, f"farm bundle written: {bundle} (frames will land in {prepared.folder})")
    if nuke.GUI:
        nuke.message(f"{target.name()}: farm job bundle written to\n{bundle}\n\n"
                     f"It renders {output_info(prepared.job.first, prepared.job.last)} into\n{prepared.folder}\n"
                     "This node shows them once they are there.")


def submit(target: nuke.Node) -> threading.Thread | None:
    """The Submit to farm button. Returns the worker thread (GUI), or None."""
    try:
        prepared = bake.prepare(target)
    except bake.BakeError as err:
        node.set_status(target, f"farm: {err}")
        if nuke.GUI:
            nuke.message(str(err))
            return None
        raise
    if prepared.state is cache.ResultState.COMPLETE:
        node.point_read(target, prepared.folder, prepared.job)
        done = output_info(prepared.job.first, prepared.job.last)
        node.set_status(target, f"already complete, nothing to submit: {done} from {prepared.folder}")
        return None
    # The farm's frames are this node's result-to-be: renders and Interpolate find them here.
    node.knob(target, K.BAKED_DIR).setValue(str(prepared.folder))
    argv = _bundle_argv(prepared)
    node.set_status(target, f"writing the farm bundle to {prepared.folder / cache.BUNDLE_DIR}")
    if not nuke.GUI:
        outcome = process.drive(argv, env=prepared.env, on_event=_ignore, is_cancelled=None)
        _report(prepared, outcome)
        if not outcome.ok:
            raise bake.BakeError(f"{target.name()}: farm bundle failed: {outcome.error_line()}")
        return None
    node.knob(target, K.SUBMIT_FARM).setEnabled(False)

    def work() -> None:
        outcome = process.drive(argv, env=prepared.env, on_event=_ignore, is_cancelled=None)
        bake.in_main_thread(_report, prepared, outcome)

    thread = threading.Thread(target=work, name=f"ldmvfi-farm-{target.fullName()}", daemon=True)
    thread.start()
    return thread
