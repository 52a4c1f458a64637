# SPDX-License-Identifier: MIT
"""Submit to farm: the bundle command, its report, and picking up the farm's frames."""

from __future__ import annotations

import json
from pathlib import Path

import fake_nuke


def submit(node):
    from ldmvfi_nuke import farm

    thread = farm.submit(node)
    if thread is not None:
        fake_nuke.process_events(lambda: not thread.is_alive() and node["submit_farm"].enabled())
    return thread


def test_submit_writes_the_bundle_in_the_background(make_node, runner) -> None:
    from ldmvfi_nuke import farm

    node = make_node(1001, 1003, method="frame curve")
    node["frame"].setValueAt(1001.0, 1001)
    node["frame"].setValueAt(1003.0, 1009)
    thread = farm.submit(node)
    assert thread is not None and thread.daemon
    assert not node["submit_farm"].enabled()
    fake_nuke.process_events(lambda: not thread.is_alive() and node["submit_farm"].enabled())
    (argv,) = runner.calls()
    assert argv[:4] == ["-m", "ldmvfi_core.cli", "farm", "bundle"]
    folder = Path(node["baked_dir"].value())
    assert argv[5] == (folder / "ldmvfi.####.exr").as_posix()
    assert argv[argv.index("--bundle-dir") + 1] == (folder / "farm_bundle").as_posix()
    assert argv[argv.index("--frame-map") + 1] == (folder / "frame_map.txt").as_posix()
    assert "--progress" not in argv  # same options as retime, without the progress stream
    assert (folder / "farm_bundle" / "template.yaml").is_file()
    assert fake_nuke.state.executed == [("LDMVFI1.bake_input", 1001, 1003)]  # the farm reads the baked input
    assert node["status"].value() == f"farm bundle written: {folder / 'farm_bundle'} (frames will land in {folder})"
    (message,) = fake_nuke.state.messages
    assert str(folder / "farm_bundle") in message and "output 1001-1009 (9 frames)" in message
    assert fake_nuke.state.off_main_calls == []


def test_submit_passes_the_prealign_knob(make_node, runner) -> None:
    node = make_node(1001, 1003, prealign=True)
    submit(node)
    (argv,) = runner.calls()
    assert argv[:4] == ["-m", "ldmvfi_core.cli", "farm", "bundle"] and argv.count("--prealign") == 1


def test_submit_failure_shows_the_error_line(make_node, runner) -> None:
    runner.mode("fail")
    node = make_node(1001, 1003)
    submit(node)
    assert node["status"].value() == (
        "farm bundle failed: ldmvfi farm bundle: error: src.####.exr: frame 1002: channel R holds NaN")
    assert "the farm bundle was not written" in fake_nuke.state.messages[0]


def test_frames_rendered_by_the_farm_are_picked_up_without_running(make_node, runner) -> None:
    node = make_node(1001, 1003)
    submit(node)
    folder = Path(node["baked_dir"].value())
    fake_nuke.open_panel(node)
    assert node["status"].value().startswith("unfinished result")
    for frame in range(1001, 1006):  # the farm job did its work
        (folder / f"ldmvfi.{frame}.exr").write_text(json.dumps({"frame": frame}))
    fake_nuke.press(node, "interpolate")
    assert len(runner.calls()) == 1  # only the bundle command ever ran
    assert node["status"].value().startswith("cached: output 1001-1005")
    assert (folder / "ldmvfi_complete.json").is_file()
    assert node.node("baked_result")["file"].value() == (folder / "ldmvfi.####.exr").as_posix()


def test_submit_when_already_complete_submits_nothing(make_node, runner) -> None:
    from ldmvfi_nuke import bake

    node = make_node(1001, 1003)
    bake.interpolate(node)
    fake_nuke.process_events(lambda: not bake._RUNNING)
    assert submit(node) is None
    assert len(runner.calls()) == 1
    assert node["status"].value().startswith("already complete, nothing to submit")


def test_headless_submit_is_blocking(make_node, runner) -> None:
    fake_nuke.GUI = False
    node = make_node(1001, 1003)
    assert submit(node) is None
    assert node["status"].value().startswith("farm bundle written:")
    assert fake_nuke.state.messages == []
