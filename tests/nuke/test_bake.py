# SPDX-License-Identifier: MIT
"""Interpolate end to end against the fake Nuke and a fake runner process.

The fake runner receives the node's real command line; it plans with the core's timing
functions and prints the real runner's JSON events (``fake_runner.py``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import fake_nuke
import pytest


def run(node):
    """Press Interpolate (the gizmo's button script) and be Nuke's main loop until the job ends."""
    from ldmvfi_nuke import bake

    fake_nuke.press(node, "interpolate")
    job = bake._RUNNING.get(node.fullName())
    if job is not None:
        fake_nuke.process_events(lambda: not job.thread.is_alive() and node.fullName() not in bake._RUNNING)
    return job


def result_read(node):
    return node.node("baked_result")


def options(argv: list[str]) -> dict[str, str]:
    """--name value pairs of an argv (flags map to '')."""
    found: dict[str, str] = {}
    for i, word in enumerate(argv):
        if word.startswith("--"):
            nxt = argv[i + 1] if i + 1 < len(argv) else ""
            found[word] = "" if nxt.startswith("--") and not nxt[2:3].isdigit() else nxt
    return found


def test_factor_bakes_input_runs_in_background_and_points_the_read(make_node, runner, tmp_path: Path) -> None:
    from ldmvfi_nuke import bake

    node = make_node(1001, 1003)
    job = bake.interpolate(node)
    # The press returns at once; the worker reports through the main thread, not yet pumped.
    assert job is not None and job.thread.daemon
    assert node["status"].value().startswith("running")
    assert not node["interpolate"].enabled()
    assert result_read(node)["file"].value() == ""
    fake_nuke.process_events(lambda: not job.thread.is_alive() and not bake._RUNNING)

    # (1) the input range went through the internal Write, which is disabled again
    assert fake_nuke.state.executed == [("LDMVFI1.bake_input", 1001, 1003)]
    write = node.node("bake_input")
    assert write["disable"].value() and write["channels"].value() == "all"
    assert not write["autocrop"].value() and write["raw"].value()
    # (2) the runner's command line
    (argv,) = runner.calls()
    assert argv[:3] == ["-m", "ldmvfi_core.cli", "retime"]
    input_pattern, output_pattern = argv[3], argv[4]
    assert input_pattern.endswith("/src.####.exr") and output_pattern.endswith("/ldmvfi.####.exr")
    opts = options(argv)
    assert opts["--frames"] == "1001-1003" and opts["--factor"] == "2"
    assert opts["--progress"] == "json" and "--skip-existing" in opts
    assert str(tmp_path / "cache") in input_pattern  # $LDMVFI_CACHE
    # (3) progress reached the ProgressTask
    (task,) = fake_nuke.state.tasks
    assert task.progress[-1] == 100 and task.messages[-1].startswith("done: 5 frames written")
    # (4) the Read shows the result with the output range
    read = result_read(node)
    folder = Path(output_pattern).parent
    assert read["file"].value() == output_pattern
    assert (read["first"].value(), read["last"].value()) == (1001, 1005)
    assert (folder / "ldmvfi_complete.json").is_file()
    assert node["baked_dir"].value() == str(folder)
    assert node["status"].value().startswith(f"done: output 1001-1005 (5 frames) in 0 s -> {folder}")
    assert node["interpolate"].enabled()
    assert fake_nuke.state.off_main_calls == []  # the worker only touched Nuke through the main thread
    assert read.reloads == 1  # fresh frames under this path: Nuke's cached images are dropped
    fake_nuke.open_panel(node)
    assert read.reloads == 1 and node["status"].value().startswith("ready: output 1001-1005")


def test_speed_mode(make_node, runner) -> None:
    node = make_node(1001, 1003, method="speed", speed=0.5)
    run(node)
    (argv,) = runner.calls()
    assert options(argv)["--speed"] == "0.5" and "--factor" not in options(argv)
    assert (result_read(node)["first"].value(), result_read(node)["last"].value()) == (1001, 1005)


def test_reverse_speed_mode(make_node, runner) -> None:
    node = make_node(1001, 1005, method="speed", speed=-2.0)
    run(node)
    (argv,) = runner.calls()
    assert options(argv)["--speed"] == "-2.0"
    assert (result_read(node)["first"].value(), result_read(node)["last"].value()) == (1001, 1003)


def test_frame_curve_writes_the_frame_map(make_node, runner) -> None:
    from ldmvfi_core.retime.timing import read_frame_map

    node = make_node(1001, 1005, method="frame curve")
    node["frame"].setValueAt(1001.0, 990)
    node["frame"].setValueAt(1005.0, 998)
    run(node)
    (argv,) = runner.calls()
    frame_map = Path(options(argv)["--frame-map"])
    assert frame_map.parent == Path(argv[4]).parent  # in the result's cache folder
    assert read_frame_map(frame_map) == [(990 + i, 1001 + i * 0.5) for i in range(9)]
    assert options(argv)["--frames"] == "1001-1005"
    assert (result_read(node)["first"].value(), result_read(node)["last"].value()) == (990, 998)
    assert node["status"].value().startswith("done: output 990-998 (9 frames)")


def test_frame_curve_follows_an_expression(make_node, runner) -> None:
    from ldmvfi_core.retime.timing import read_frame_map

    node = make_node(1001, 1004, method="frame curve")
    node["frame"].set_fake_expression(lambda t: 1004 - (t - 1001) / 2)  # backwards at half speed
    run(node)
    (argv,) = runner.calls()
    pairs = read_frame_map(options(argv)["--frame-map"])
    assert pairs[0] == (1001, 1004.0) and pairs[-1] == (1004, 1002.5)  # unkeyed: the input range


def test_second_press_with_unchanged_knobs_is_a_cache_hit(make_node, runner, monkeypatch) -> None:
    node = make_node(1001, 1003)
    run(node)
    first_file = result_read(node)["file"].value()
    result_read(node)["file"].setValue("")  # forget what was shown

    def no_process(*args, **kwargs):
        raise AssertionError("a cache hit must not start a process")

    monkeypatch.setattr(subprocess, "Popen", no_process)
    assert run(node) is None
    assert len(runner.calls()) == 1 and len(fake_nuke.state.tasks) == 1
    assert result_read(node)["file"].value() == first_file
    assert node["status"].value().startswith("cached: output 1001-1005 (5 frames)")


def test_device_and_python_do_not_change_the_key(make_node, runner) -> None:
    node = make_node(1001, 1003)
    run(node)
    node["device"].setValue("cpu")
    run(node)
    assert len(runner.calls()) == 1


@pytest.mark.parametrize(("knob", "value"),
                         [("steps", 20), ("seed", 7), ("channels", "rgba"), ("factor", 3), ("batch", 4),
                          ("prealign", True)])
def test_a_changed_setting_runs_again_into_a_new_folder(make_node, runner, knob: str, value: object) -> None:
    node = make_node(1001, 1003)
    run(node)
    before = node["baked_dir"].value()
    node[knob].setValue(value)
    run(node)
    assert len(runner.calls()) == 2
    assert node["baked_dir"].value() != before


def test_the_prealign_knob_reaches_the_runner(make_node, runner) -> None:
    """Off (the default): no ``--prealign``; ticked: the runner gets it, into a result of its own."""
    node = make_node(1001, 1003)
    assert node["prealign"].value() is False
    run(node)
    node["prealign"].setValue(True)
    run(node)
    off, on = runner.calls()
    assert "--prealign" not in off and on.count("--prealign") == 1
    without = [w for w in on if w != "--prealign"]
    assert without[:4] == off[:4] and without[5:] == off[5:]  # same input and options otherwise
    assert Path(on[4]).parent != Path(off[4]).parent  # cached apart: pre-aligned frames differ
    assert node["status"].value().startswith("done: output 1001-1005")


def test_a_changed_input_runs_again(make_node, runner) -> None:
    node = make_node(1001, 1003)
    run(node)
    before = node["baked_dir"].value()
    node.input(0).version = "v2"  # the plate upstream changed: new node hashes in the baked EXRs
    run(node)
    assert len(runner.calls()) == 2 and node["baked_dir"].value() != before


def _pid_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_cancel_terminates_the_runner(make_node, runner) -> None:
    from ldmvfi_nuke import bake

    runner.mode("slow")
    node = make_node(1001, 1003)
    job = bake.interpolate(node)
    fake_nuke.process_events(lambda: bool(job.task and job.task.messages and "frame" in job.task.messages[-1]))
    started = time.monotonic()
    job.task.cancelled = True  # the artist presses cancel on the progress bar
    fake_nuke.process_events(lambda: not job.thread.is_alive() and not bake._RUNNING)
    assert time.monotonic() - started < 5
    assert job.outcome is not None and job.outcome.cancelled
    assert job.outcome.returncode == -signal.SIGTERM
    assert _pid_gone(runner.pids()[0])
    assert node["status"].value().startswith("cancelled at ")
    assert "press Interpolate to resume" in node["status"].value()
    assert result_read(node)["file"].value() == ""
    assert fake_nuke.state.messages == [] and fake_nuke.state.off_main_calls == []


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_cancel_kills_a_runner_that_ignores_terminate(make_node, runner, monkeypatch) -> None:
    from ldmvfi_nuke import bake, process

    monkeypatch.setattr(process, "TERMINATE_TIMEOUT", 0.5)
    runner.mode("stubborn")
    node = make_node(1001, 1003)
    job = bake.interpolate(node)
    fake_nuke.process_events(lambda: bool(job.task and job.task.messages and "frame" in job.task.messages[-1]))
    job.task.cancelled = True
    fake_nuke.process_events(lambda: not job.thread.is_alive() and not bake._RUNNING)
    assert job.outcome.returncode == -signal.SIGKILL
    assert _pid_gone(runner.pids()[0])


def test_runner_failure_shows_its_error_line(make_node, runner) -> None:
    runner.mode("fail")
    node = make_node(1001, 1003)
    run(node)
    line = "ldmvfi retime: error: src.####.exr: frame 1002: channel R holds NaN"
    assert node["status"].value() == f"failed: {line}"
    assert fake_nuke.state.messages == [f"LDMVFI1 failed:\n{line}"]
    assert result_read(node)["file"].value() == ""
    assert not (Path(runner.calls()[0][4]).parent / "ldmvfi_complete.json").exists()
    assert node["interpolate"].enabled()


def test_missing_python_is_reported(make_node, runner) -> None:
    node = make_node(1001, 1003, runner_python="/no/such/python3")
    run(node)
    assert node["status"].value().startswith("failed: cannot start the runner '/no/such/python3'")
    assert len(fake_nuke.state.messages) == 1


def test_bad_settings_stop_before_baking(make_node, runner) -> None:
    node = make_node(1001, 1003, steps=-1)
    run(node)
    assert node["status"].value() == "failed: LDMVFI1: steps must be 0 (the model's own) or more, got -1"
    assert fake_nuke.state.executed == [] and runner.calls() == []


def test_ocio_needs_a_target_space(make_node, runner) -> None:
    fake_nuke.root()["workingSpaceLUT"].setValue("scene_linear")
    node = make_node(1001, 1003, transfer="ocio")
    run(node)
    assert node["status"].value() == (
        "failed: LDMVFI1: OCIO: choose a display-referred colourspace for the model (ocio to)")
    node["ocio_to"].setValue("display_space")
    run(node)
    opts = options(runner.calls()[0])
    assert (opts["--transfer"], opts["--ocio-from"], opts["--ocio-to"]) == ("none", "scene_linear", "display_space")


def test_pressing_again_while_running_does_not_start_a_second_job(make_node, runner) -> None:
    from ldmvfi_nuke import bake

    runner.mode("slow")
    node = make_node(1001, 1003)
    job = bake.interpolate(node)
    assert bake.interpolate(node) is None
    assert node["status"].value().startswith("already running")
    job.task.cancelled = True
    fake_nuke.process_events(lambda: not job.thread.is_alive() and not bake._RUNNING)
    assert len(runner.calls()) == 1


def test_proxy_mode_is_refused(make_node, runner) -> None:
    fake_nuke.root()["proxy"].setValue(True)
    node = make_node(1001, 1003)
    run(node)
    assert "proxy mode is on" in node["status"].value()
    assert fake_nuke.state.executed == []


def test_a_cancelled_run_resumes(make_node, runner) -> None:
    node = make_node(1001, 1003)
    run(node)
    folder = Path(node["baked_dir"].value())
    (folder / "ldmvfi.1004.exr").unlink()  # as if cancelled before the last frames
    (folder / "ldmvfi.1005.exr").unlink()
    (folder / "ldmvfi_complete.json").unlink()
    run(node)
    assert len(runner.calls()) == 2 and "--skip-existing" in runner.calls()[1]
    assert fake_nuke.state.tasks[-1].messages[-1] == "done: 2 frames written, 3 already there in 0 s"


def test_a_node_deleted_while_running_is_left_alone(make_node, runner) -> None:
    from ldmvfi_nuke import bake

    node = make_node(1001, 1003)
    job = bake.interpolate(node)
    fake_nuke.delete(node)
    fake_nuke.process_events(lambda: not job.thread.is_alive() and not bake._RUNNING)
    assert job.outcome is not None and job.outcome.ok
    assert fake_nuke.state.messages == []


def test_settings_error_dialog_names_the_node_once(make_node, runner) -> None:
    node = make_node(1001, 1003, depth=0)
    run(node)
    assert fake_nuke.state.messages == ["LDMVFI1 failed:\nrecursion depth must be 1-16, got 0"]


def test_an_internal_error_in_the_worker_still_ends_the_job(make_node, runner, monkeypatch) -> None:
    from ldmvfi_nuke import bake, process

    def broken(*args, **kwargs):
        raise OSError("pipe exploded")

    monkeypatch.setattr(process, "drive", broken)
    node = make_node(1001, 1003)
    run(node)
    assert node["status"].value() == "failed: the runner could not be driven: pipe exploded"
    assert node["interpolate"].enabled() and not bake._RUNNING


def test_opening_the_panel_while_running_keeps_the_progress(make_node, runner) -> None:
    from ldmvfi_nuke import bake

    runner.mode("slow")
    node = make_node(1001, 1003)
    job = bake.interpolate(node)
    fake_nuke.process_events(lambda: "frame" in node["status"].value())
    fake_nuke.open_panel(node)
    assert node["status"].value().startswith("running: ")
    job.task.cancelled = True
    fake_nuke.process_events(lambda: not job.thread.is_alive() and not bake._RUNNING)
