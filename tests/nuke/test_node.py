# SPDX-License-Identifier: MIT
"""Start-up, node creation from the gizmo, and the panel callbacks (fake Nuke).

The glue modules import ``nuke``, so tests import them inside the test, after the fixture
installed the fake.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import fake_nuke
import pytest
from ldmvfi_nuke.settings import DEFAULTS, KNOB_NAMES, OCIO_PICK_PROMPT

ROOT = Path(__file__).resolve().parents[2]


def test_init_adds_paths_and_registers_callbacks(plugin: ModuleType) -> None:
    assert str(ROOT / "gizmos") in fake_nuke.state.plugin_paths
    assert str(ROOT / "nuke_plugin") in fake_nuke.state.plugin_paths
    registered = {kind: [(c.__name__, cls) for c, _, _, cls in calls]
                  for kind, calls in fake_nuke.state.callbacks.items()}
    assert registered["onCreate"] == [("on_create", "LDMVFI")]
    assert registered["onUserCreate"] == [("on_user_create", "LDMVFI")]
    assert registered["knobChanged"] == [("knob_changed", "LDMVFI")]
    assert registered["beforeRender"] == [("before_render", "*")]


def test_init_twice_registers_once(plugin: ModuleType) -> None:
    import runpy

    runpy.run_path(str(ROOT / "nuke_plugin" / "init.py"))
    assert len(fake_nuke.state.callbacks["beforeRender"]) == 1


def test_menu_toolbar_entry_and_shortcut(plugin: ModuleType) -> None:
    nodes = fake_nuke.state.toolbars["Nodes"]
    command, shortcut = nodes.items["LDMVFI"].items["LDMVFI"]
    assert shortcut == "alt+shift+l"
    assert "Time/LDMVFI" in nodes.items
    created = command()
    assert created.Class() == "LDMVFI"


def test_menu_is_gui_only(nuke: ModuleType) -> None:
    import runpy

    fake_nuke.GUI = False
    runpy.run_path(str(ROOT / "nuke_plugin" / "menu.py"))
    assert fake_nuke.state.toolbars == {}


def test_created_node_has_the_gizmo_knobs_with_defaults(plugin: ModuleType) -> None:
    node = fake_nuke.createNode("LDMVFI")  # nothing connected: defaults stay
    assert set(node.knobs()) >= KNOB_NAMES
    for name, value in DEFAULTS.items():
        assert node[name].value() == value, name
    assert node["output_info"].value() == "output 1-199 (199 frames)"
    assert node["status"].value() == "not interpolated yet: press Interpolate"
    assert not node["baked_dir"].visible()
    # Timing knobs the default method does not use are greyed out.
    assert node["factor"].enabled() and not node["speed"].enabled() and not node["frame"].enabled()
    assert not node["ocio_from"].enabled()


def test_user_create_takes_the_input_range(make_node) -> None:
    node = make_node(1001, 1100)
    assert (node["input_first"].value(), node["input_last"].value()) == (1001, 1100)
    assert node["frame"].value() == 1001.0
    assert node["output_info"].value() == "output 1001-1199 (199 frames)"


def test_method_change_enables_the_matching_knob(make_node) -> None:
    node = make_node()
    fake_nuke.ui_set(node, "method", "speed")
    assert [node[k].enabled() for k in ("factor", "speed", "frame")] == [False, True, False]
    fake_nuke.ui_set(node, "method", "frame curve")
    assert [node[k].enabled() for k in ("factor", "speed", "frame")] == [False, False, True]
    fake_nuke.ui_set(node, "method", "factor")
    assert [node[k].enabled() for k in ("factor", "speed", "frame")] == [True, False, False]


def test_transfer_ocio_enables_the_colourspace_knobs(make_node) -> None:
    node = make_node()
    fake_nuke.ui_set(node, "transfer", "ocio")
    assert all(node[k].enabled() for k in ("ocio_from", "ocio_from_pick", "ocio_to", "ocio_to_pick"))
    fake_nuke.ui_set(node, "transfer", "hdr")
    assert not node["ocio_to"].enabled()


def test_reset_button_takes_the_range_from_the_input(make_node) -> None:
    node = make_node(1001, 1010)
    node["input_first"].setValue(5)
    node["input_last"].setValue(6)
    node.input(0).first, node.input(0).last = 990, 1020  # the plate got longer
    fake_nuke.press(node, "reset_range")  # runs the gizmo's button script
    assert (node["input_first"].value(), node["input_last"].value()) == (990, 1020)
    assert node["output_info"].value() == "output 990-1050 (61 frames)"


def test_reset_without_input_says_so(plugin: ModuleType) -> None:
    node = fake_nuke.createNode("LDMVFI")
    fake_nuke.press(node, "reset_range")
    assert node["status"].value() == "Reset: connect an input first"


def test_readout_follows_the_timing(make_node) -> None:
    node = make_node(1001, 1100)
    fake_nuke.ui_set(node, "factor", 3)
    assert node["output_info"].value() == "output 1001-1298 (298 frames)"
    fake_nuke.ui_set(node, "method", "speed")
    fake_nuke.ui_set(node, "speed", 0.4)
    assert node["output_info"].value() == "output 1001-1248 (248 frames)"  # 1001 + floor(99 / 0.4)
    fake_nuke.ui_set(node, "speed", -2.0)
    assert node["output_info"].value() == "output 1001-1050 (50 frames)"
    fake_nuke.ui_set(node, "input_last", 1001)
    assert node["output_info"].value() == "output 1001-1001 (1 frame)"
    fake_nuke.ui_set(node, "speed", 0.0)
    assert node["output_info"].value().startswith("output: speed must be a non-zero number")


def test_readout_frame_curve_uses_the_keyed_range(make_node) -> None:
    node = make_node(1001, 1100)
    fake_nuke.ui_set(node, "method", "frame curve")
    assert node["output_info"].value() == "output 1001-1100 (100 frames)"  # unkeyed: the input range
    node["frame"].setValueAt(1001, 990)
    node["frame"].setValueAt(1050, 1240)
    fake_nuke.ui_set(node, "frame", node["frame"].value())  # a key change fires knobChanged on 'frame'
    assert node["output_info"].value() == "output 990-1240 (251 frames)"


def test_ocio_pick_menus_come_from_the_script_config(make_node) -> None:
    fake_nuke.state.colorspaces = ["default (Linear)", "Linear", "sRGB", "ACES - ACEScg"]
    node = make_node()
    fake_nuke.open_panel(node)
    assert node["ocio_to_pick"].values() == [OCIO_PICK_PROMPT, "Linear", "sRGB", "ACES - ACEScg"]
    assert node["ocio_to_pick"].visible()
    fake_nuke.ui_set(node, "ocio_to_pick", "sRGB")
    assert node["ocio_to"].value() == "sRGB"
    assert node["ocio_to_pick"].value() == OCIO_PICK_PROMPT  # back to the prompt: the text knob is saved


def test_ocio_menus_fall_back_to_the_config_file_then_free_text(make_node, tmp_path: Path) -> None:
    config = tmp_path / "config.ocio"
    config.write_text("colorspaces:\n  - !<ColorSpace>\n    name: plate_log\n"
                      "  - !<ColorSpace>\n    name: display_srgb\n")
    fake_nuke.state.colorspaces = None  # no Nuke menu to ask
    fake_nuke.root()["OCIO_config"].setValue("custom")
    fake_nuke.root()["customOCIOConfigPath"].setValue(str(config))
    node = make_node()
    fake_nuke.open_panel(node)
    assert node["ocio_from_pick"].values() == [OCIO_PICK_PROMPT, "plate_log", "display_srgb"]
    fake_nuke.root()["customOCIOConfigPath"].setValue(str(tmp_path / "missing.ocio"))
    fake_nuke.open_panel(node)
    assert not node["ocio_from_pick"].visible()  # nothing to offer: type the name


def test_script_load_shows_the_recorded_result_without_running(make_node, runner) -> None:
    from ldmvfi_nuke import bake

    node = make_node(1001, 1003)
    job = bake.interpolate(node)
    fake_nuke.process_events(lambda: not job.thread.is_alive())
    saved = {"input_first": 1001, "input_last": 1003, "baked_dir": node["baked_dir"].value(),
             "runner_python": runner.python}
    loaded = fake_nuke.load_node("LDMVFI", saved, input_node=node.input(0), name="LDMVFI9")
    read = loaded.node("baked_result")
    assert read["file"].value().endswith("/ldmvfi.####.exr")
    assert (read["first"].value(), read["last"].value()) == (1001, 1005)
    assert len(runner.calls()) == 1


@pytest.mark.parametrize("knob", ["ocio_from_pick", "ocio_to_pick"])
def test_pick_prompt_does_not_overwrite(make_node, knob: str) -> None:
    node = make_node()
    target = knob.removesuffix("_pick")
    node[target].setValue("typed by hand")
    fake_nuke.ui_set(node, knob, OCIO_PICK_PROMPT)
    assert node[target].value() == "typed by hand"


def test_glue_names_the_missing_knob(plugin: ModuleType) -> None:
    from ldmvfi_nuke import node as glue

    node = fake_nuke.createNode("LDMVFI")
    with pytest.raises(RuntimeError, match="no knob 'nope'"):
        glue.knob(node, "nope")
