# SPDX-License-Identifier: MIT
"""Renders of a script with LDMVFI nodes: the beforeRender guard, GUI and headless (nuke -t / -x)."""

from __future__ import annotations

import threading
from pathlib import Path

import fake_nuke
import pytest


def baked(node):
    from ldmvfi_nuke import bake

    fake_nuke.press(node, "interpolate")
    job = bake._RUNNING.get(node.fullName())
    if job is not None:
        fake_nuke.process_events(lambda: not job.thread.is_alive() and not bake._RUNNING)
    return node


def farm_copy(node, runner, name="LDMVFI7"):
    """The node as a render node loads the saved script: knob values restored, internals fresh."""
    values = {k: node[k].value() for k in ("input_first", "input_last", "method", "factor", "steps", "baked_dir")}
    values["runner_python"] = runner.python
    return fake_nuke.load_node("LDMVFI", values, input_node=node.input(0), name=name)


@pytest.fixture
def no_threads(monkeypatch):
    started = []
    original = threading.Thread.start

    def start(self):
        started.append(self.name)
        return original(self)

    monkeypatch.setattr(threading.Thread, "start", start)
    return started


def test_headless_render_without_a_result_bakes_synchronously(make_node, runner, no_threads) -> None:
    fake_nuke.GUI = False
    node = make_node(1001, 1003)
    write = fake_nuke.make_write("WriteComp", node)
    frames = fake_nuke.render(write, 1001, 1005)  # returns only once the bake is done
    assert len(runner.calls()) == 1
    assert all(f.startswith("file:") for f in frames), frames  # real frames, no black
    assert fake_nuke.state.tasks == [] and no_threads == []  # no ProgressTask, no thread at all
    assert fake_nuke.state.main_queue.empty() and fake_nuke.state.off_main_calls == []
    assert node["status"].value().startswith("done: output 1001-1005")


def test_headless_render_uses_the_cached_result(make_node, runner) -> None:
    node = baked(make_node(1001, 1003))
    executed = list(fake_nuke.state.executed)
    fake_nuke.GUI = False
    farm = farm_copy(node, runner)
    assert farm.node("baked_result")["file"].value().endswith("ldmvfi.####.exr")  # onCreate showed it
    farm.node("baked_result")["file"].setValue("")
    frames = fake_nuke.render(fake_nuke.make_write("WriteComp", farm), 1001, 1005)
    assert len(runner.calls()) == 1 and fake_nuke.state.executed == executed  # nothing re-baked
    assert all(f.startswith("file:") for f in frames)


def test_headless_render_with_changed_settings_bakes_again(make_node, runner) -> None:
    node = baked(make_node(1001, 1003))
    fake_nuke.GUI = False
    farm = farm_copy(node, runner)
    farm["steps"].setValue(50)
    fake_nuke.render(fake_nuke.make_write("WriteComp", farm), 1001, 1005)
    assert len(runner.calls()) == 2 and options_of(runner.calls()[1])["--steps"] == "50"
    assert farm["baked_dir"].value() != node["baked_dir"].value()


def options_of(argv):
    return {argv[i]: argv[i + 1] for i in range(len(argv) - 1) if argv[i].startswith("--")}


def test_headless_failure_stops_the_render_with_the_error(make_node, runner) -> None:
    from ldmvfi_nuke.bake import BakeError

    fake_nuke.GUI = False
    runner.mode("fail")
    node = make_node(1001, 1003)
    with pytest.raises(BakeError, match=r"^LDMVFI1: ldmvfi retime: error: .*channel R holds NaN"):
        fake_nuke.render(fake_nuke.make_write("WriteComp", node), 1001, 1005)
    assert fake_nuke.state.messages == []  # no dialogs without a GUI


def test_gui_render_of_an_unbaked_node_stops_with_a_clear_message(make_node, runner) -> None:
    from ldmvfi_nuke.bake import BakeError

    node = make_node(1001, 1003)
    with pytest.raises(BakeError, match=r"^LDMVFI1: it has not been interpolated; press Interpolate on it first$"):
        fake_nuke.render(fake_nuke.make_write("WriteComp", node), 1001, 1005)
    assert runner.calls() == []


def test_gui_render_of_a_stale_node_stops(make_node, runner) -> None:
    from ldmvfi_nuke.bake import BakeError

    node = baked(make_node(1001, 1003))
    fake_nuke.ui_set(node, "seed", 3)
    fake_nuke.open_panel(node)
    assert node["status"].value().startswith("settings changed since the last Interpolate")
    with pytest.raises(BakeError, match="its settings changed since the last Interpolate"):
        fake_nuke.render(fake_nuke.make_write("WriteComp", node), 1001, 1005)


def test_gui_render_of_a_current_node_goes_ahead(make_node, runner) -> None:
    node = baked(make_node(1001, 1003))
    frames = fake_nuke.render(fake_nuke.make_write("WriteComp", node), 1001, 1005)
    assert all(f.startswith("file:") for f in frames) and len(runner.calls()) == 1


def test_headless_chain_bakes_upstream_first(make_node, runner) -> None:
    fake_nuke.GUI = False
    first = make_node(1001, 1003)
    second = fake_nuke.load_node("LDMVFI", {"input_first": 1001, "input_last": 1005, "runner_python": runner.python},
                                 input_node=first, name="LDMVFI2")
    frames = fake_nuke.render(fake_nuke.make_write("WriteComp", second), 1001, 1009)
    calls = runner.calls()
    assert [options_of(c)["--frames"] for c in calls] == ["1001-1003", "1001-1005"]
    assert all(f.startswith("file:") for f in frames)
    # The downstream result depends on the upstream one: re-baking upstream makes it stale.
    digest_before = second["baked_dir"].value()
    first["seed"].setValue(9)
    fake_nuke.render(fake_nuke.make_write("WriteComp2", second), 1001, 1009)
    assert len(runner.calls()) == 4 and second["baked_dir"].value() != digest_before


def test_gui_interpolate_refuses_an_unbaked_upstream_node(make_node, runner) -> None:
    first = make_node(1001, 1003)
    second = fake_nuke.load_node("LDMVFI", {"input_first": 1001, "input_last": 1005, "runner_python": runner.python},
                                 input_node=first, name="LDMVFI2")
    baked(second)
    assert second["status"].value() == (
        "failed: LDMVFI1: it has not been interpolated; press Interpolate on it first")
    assert runner.calls() == []


def test_the_bake_write_does_not_trigger_the_guard(make_node, runner) -> None:
    # nuke.execute of the internal Write runs beforeRender callbacks too; they must let it through.
    node = baked(make_node(1001, 1003))
    assert fake_nuke.state.executed[0][0] == "LDMVFI1.bake_input"
    assert Path(node["baked_dir"].value()).is_dir()
