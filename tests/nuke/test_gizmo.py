# SPDX-License-Identifier: MIT
"""gizmos/LDMVFI.gizmo against the Python side: same knobs, defaults, menus; sane internals."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest
from gizmo import Gizmo, TclError, load_gizmo, parse_gizmo
from ldmvfi_nuke.settings import DEFAULTS, INPUT_WRITE, KNOB_NAMES, PULLDOWNS, RESULT_READ

GIZMO = Path(__file__).resolve().parents[2] / "gizmos" / "LDMVFI.gizmo"


@pytest.fixture(scope="module")
def gizmo() -> Gizmo:
    return load_gizmo(GIZMO)


def test_knobs_are_exactly_the_ones_python_reads(gizmo: Gizmo) -> None:
    names = [k.name for k in gizmo.knobs if k.class_name != "Tab_Knob"]
    assert len(names) == len(set(names)), "a knob name is used twice"
    assert set(names) == KNOB_NAMES


def test_every_knob_sits_in_a_tab(gizmo: Gizmo) -> None:
    assert gizmo.knobs[0].class_name == "Tab_Knob"
    tabs = [k.label for k in gizmo.knobs if k.class_name == "Tab_Knob"]
    assert tabs == ["Timing", "Model", "Colour", "Channels", "Output"]


def _gizmo_default(gizmo: Gizmo, name: str) -> object:
    knob = gizmo.knob(name)
    text = gizmo.values.get(name)
    if knob.class_name == "Enumeration_Knob":
        return text if text is not None else knob.items[0]
    if knob.class_name == "Int_Knob":
        return int(text) if text is not None else 0
    if knob.class_name == "Double_Knob":
        return float(text) if text is not None else 0.0
    if knob.class_name == "Boolean_Knob":
        return text == "true"
    return text if text is not None else ""


def test_defaults_match_settings(gizmo: Gizmo) -> None:
    for name, expected in DEFAULTS.items():
        assert _gizmo_default(gizmo, name) == expected, name


def test_defaults_the_issue_asks_for(gizmo: Gizmo) -> None:
    assert _gizmo_default(gizmo, "depth") == 3
    assert _gizmo_default(gizmo, "steps") == 0  # the model's own step count
    assert _gizmo_default(gizmo, "eta") == 1.0
    assert _gizmo_default(gizmo, "checkpoint") == ""  # = the shipped model


def test_prealign_is_an_unticked_checkbox_beside_the_ensemble(gizmo: Gizmo) -> None:
    knob = gizmo.knob("prealign")
    assert knob.class_name == "Boolean_Knob" and knob.label == "pre-align camera moves"
    assert _gizmo_default(gizmo, "prealign") is False and "prealign" not in gizmo.values
    assert "+STARTLINE" in knob.flags  # its own line, not squeezed beside the ensemble menu
    names = [k.name for k in gizmo.knobs]
    assert names.index("prealign") == names.index("ensemble") + 1
    assert names.index("model_tab") < names.index("prealign") < names.index("colour_tab")
    for words in ("2 px", "half its camera move", "whole pixels", "pixel by pixel", "twice the render time",
                  "rendered once, as they are", "Off by default"):
        assert words in knob.tooltip


def test_pulldowns_match_settings(gizmo: Gizmo) -> None:
    for name, items in PULLDOWNS.items():
        assert tuple(gizmo.knob(name).items) == items, name


def test_hidden_state_knob_is_invisible(gizmo: Gizmo) -> None:
    assert "+INVISIBLE" in gizmo.knob("baked_dir").flags


def test_no_python_runs_on_redraw(gizmo: Gizmo) -> None:
    # Callbacks are registered in init.py; Python appears only in button scripts.
    for forbidden in ("onCreate", "knobChanged", "updateUI", "autolabel"):
        assert forbidden not in gizmo.values
    text = GIZMO.read_text()
    assert "[python" not in text and "[value" not in text


def test_buttons_call_functions_that_exist(gizmo: Gizmo) -> None:
    for knob in gizmo.knobs:
        if knob.class_name != "PyScript_Knob":
            continue
        assert knob.text, knob.name
        lines = knob.text.splitlines()
        module = re.fullmatch(r"import (ldmvfi_nuke\.\w+)", lines[0])
        assert module is not None, knob.text
        call = re.fullmatch(rf"{re.escape(module.group(1))}\.(\w+)\(nuke\.thisNode\(\)\)", lines[1])
        assert call is not None, knob.text
        assert callable(getattr(importlib.import_module(module.group(1)), call.group(1)))


def test_internal_write_bakes_half_zip_exr_with_the_full_bbox(gizmo: Gizmo) -> None:
    (write,) = [n for n in gizmo.nodes if n.cls == "Write"]
    assert write.name == INPUT_WRITE
    assert write.values["file_type"] == "exr"
    assert write.values["datatype"] == "16 bit half"
    assert write.values["compression"] == "Zip (1 scanline)"
    assert write.values["autocrop"] == "false"  # keep the bbox (overscan) as the data window
    assert write.values["raw"] == "true"  # working-space values, no colour conversion
    assert write.values["disable"] == "true"  # only enabled while the node bakes


def test_internal_read_and_wiring(gizmo: Gizmo) -> None:
    classes = [n.cls for n in gizmo.nodes]
    assert classes == ["Input", "Write", "Read", "Output"]  # Input -> Write; Read -> Output
    (read,) = [n for n in gizmo.nodes if n.cls == "Read"]
    assert read.name == RESULT_READ
    assert read.values["raw"] == "true" and read.values["inputs"] == "0"


def test_parser_reads_tcl_words() -> None:
    text = (
        'Gizmo {\n addUserKnob {20 t l T}\n addUserKnob {4 m l "a b" M {x "y z"} +STARTLINE}\n'
        ' addUserKnob {26 s T "say \\"hi\\"\\n\\$HOME"}\n m x\n}\n Read {\n  file "a b.exr"\n }\nend_group\n'
    )
    parsed = parse_gizmo(text)
    assert parsed.knob("m").items == ["x", "y z"] and parsed.knob("m").label == "a b"
    assert parsed.knob("s").text == 'say "hi"\n$HOME'
    assert parsed.nodes[0].values["file"] == "a b.exr"
    with pytest.raises(TclError):
        parse_gizmo("Gizmo {\n addUserKnob {3 x Q}\n}\nend_group\n")
    with pytest.raises(TclError):
        parse_gizmo('Gizmo {\n help "[python bad]"\n}\nend_group\n')
