# SPDX-License-Identifier: MIT
"""Nuke glue for one LDMVFI node: read its knobs, keep its panel consistent, point its Read.

Callbacks are registered per class in init.py (``nuke.addOnCreate`` / ``addOnUserCreate`` /
``addKnobChanged`` with ``nodeClass="LDMVFI"``), so the gizmo carries no Python in callback
knobs and nothing is evaluated on redraw.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Protocol, cast

import nuke

from . import cache, ocio
from .settings import (
    DEFAULTS,
    INPUT_WRITE,
    NODE_CLASS,
    OCIO_PICK_PROMPT,
    RANGE_KNOBS,
    RESULT_READ,
    K,
    Settings,
    SettingsError,
    output_info,
    range_from_values,
    settings_from_values,
)

# Knobs whose values make up the settings (buttons, readouts and the frame curve are read apart).
VALUE_KNOBS: tuple[str, ...] = tuple(k for k in DEFAULTS if k not in (K.FRAME, K.BAKED_DIR))


class _AnimationKey(Protocol):
    x: float


class _AnimationCurve(Protocol):
    def keys(self) -> Sequence[_AnimationKey]: ...


def knob(node: nuke.Node, name: str) -> nuke.Knob:
    found = node.knob(name)
    if found is None:
        raise RuntimeError(f"{node.name()}: has no knob {name!r} (is the LDMVFI gizmo on NUKE_PATH current?)")
    return found


def internal(node: nuke.Node, name: str) -> nuke.Node:
    """A node inside the LDMVFI group (its bake Write or result Read)."""
    if not isinstance(node, nuke.Group):
        raise RuntimeError(f"{node.name()}: not an LDMVFI group node")
    found = node.node(name)
    if found is None:
        raise RuntimeError(f"{node.name()}: internal node {name!r} is missing (is the gizmo current?)")
    return found


def is_ldmvfi(node: nuke.Node) -> bool:
    return node.Class() == NODE_CLASS


def set_status(node: nuke.Node, text: str) -> None:
    knob(node, K.STATUS).setValue(text)


def knob_values(node: nuke.Node) -> dict[str, object]:
    return {name: knob(node, name).value() for name in VALUE_KNOBS}


# -- frame curve ------------------------------------------------------------------------------

def curve_keys(node: nuke.Node) -> list[float]:
    """Output frames of the keys on the ``frame`` knob ([] when it is not keyed)."""
    frame = knob(node, K.FRAME)
    if not frame.isAnimated():
        return []
    curve = cast(_AnimationCurve | None, cast(nuke.Array_Knob, frame).animation(0))
    if curve is None:
        return []
    keys = curve.keys()  # AnimationKey objects, not a dict's keys
    return [float(key.x) for key in keys]


def sample_frame_curve(node: nuke.Node, first: int, last: int) -> list[tuple[int, float]]:
    """The ``frame`` knob's value at every output frame (expressions included)."""
    frame = knob(node, K.FRAME)
    return [(out, float(frame.getValueAt(float(out)))) for out in range(first, last + 1)]


def current_range(node: nuke.Node) -> tuple[int, int]:
    return range_from_values(knob_values(node), curve_keys(node))


# -- colour -----------------------------------------------------------------------------------

def _root_text(name: str) -> str:
    found = nuke.root().knob(name)
    return str(found.value()) if found is not None else ""


def working_space() -> str:
    """The script's working colourspace (project settings), the plate's space after a raw Write."""
    return _root_text("workingSpaceLUT")


def script_ocio_config() -> str:
    return ocio.config_path(_root_text("OCIO_config"), _root_text("customOCIOConfigPath"), os.environ,
                            os.path.dirname(nuke.EXE_PATH))


def colourspace_names(node: nuke.Node) -> list[str]:
    """Colourspaces of the script's config: Nuke's own menu first, then the config file."""
    try:
        write = internal(node, INPUT_WRITE)
        space_knob = write.knob("colorspace")
        if space_knob is not None:
            # Nuke's helper for its colourspace menus (nuke/colorspaces.py); the stub leaves it untyped.
            list_menu = cast(Callable[[nuke.Knob], Iterable[object]], nuke.getColorspaceList)
            names = [str(n) for n in list_menu(space_knob)]
            names = [n for n in names if n and not n.startswith("default")]
            if names:
                return names
    except Exception:  # older Nuke without getColorspaceList, or no OCIO menu: read the file
        pass
    return ocio.colourspaces_in_config(script_ocio_config())


def refresh_ocio_menus(node: nuke.Node) -> None:
    """Fill the two pick menus from the config; hide them when it offers nothing (free text only)."""
    names = colourspace_names(node)
    for pick in (K.OCIO_FROM_PICK, K.OCIO_TO_PICK):
        menu = cast(nuke.Enumeration_Knob, knob(node, pick))
        menu.setValues([OCIO_PICK_PROMPT, *names])
        menu.setValue(OCIO_PICK_PROMPT)
        menu.setVisible(bool(names))


def take_pick(node: nuke.Node, pick: str) -> None:
    """A name chosen in a pick menu goes into its text knob (the text is what is saved and used)."""
    target = K.OCIO_FROM if pick == K.OCIO_FROM_PICK else K.OCIO_TO
    menu = knob(node, pick)
    chosen = str(menu.value())
    if chosen and chosen != OCIO_PICK_PROMPT:
        knob(node, target).setValue(chosen)
    menu.setValue(OCIO_PICK_PROMPT)


# -- settings ---------------------------------------------------------------------------------

def read_settings(node: nuke.Node) -> Settings:
    """The node's knobs -> validated ``Settings`` (``SettingsError`` with a one-line reason)."""
    values = knob_values(node)
    frame_map: list[tuple[int, float]] = []
    if values[K.METHOD] == "frame curve":
        first, last = current_range(node)
        frame_map = sample_frame_curve(node, first, last)
    space = working_space() if values[K.TRANSFER] == "ocio" else ""
    config = script_ocio_config() if values[K.TRANSFER] == "ocio" else ""
    return settings_from_values(values, frame_map=frame_map, working_space=space, ocio_config=config)


def upstream_ldmvfi(node: nuke.Node) -> list[nuke.Node]:
    """The nearest LDMVFI nodes above ``node`` (the search stops at each one it finds)."""
    found: list[nuke.Node] = []
    seen: set[str] = set()
    todo = deque(node.dependencies(nuke.INPUTS | nuke.HIDDEN_INPUTS))
    while todo:
        up = todo.popleft()
        name = up.fullName()
        if name in seen:
            continue
        seen.add(name)
        if is_ldmvfi(up):
            found.append(up)
            continue
        todo.extend(up.dependencies(nuke.INPUTS | nuke.HIDDEN_INPUTS))
    return found


def baked_dir(node: nuke.Node) -> Path | None:
    text = str(knob(node, K.BAKED_DIR).value() or "").strip()
    return Path(text) if text else None


def digest(node: nuke.Node, settings: Settings) -> str:
    upstream = [str(baked_dir(up) or "") for up in upstream_ldmvfi(node)]
    return cache.settings_digest(settings, upstream)


# -- the result Read --------------------------------------------------------------------------

def point_read(node: nuke.Node, folder: Path, job: cache.Job, *, reload: bool = False) -> None:
    """Show ``folder``'s frames: the internal Read gets the pattern and the output range.

    ``reload`` after frames were (re)written under a path the Read may already show.
    """
    read = internal(node, RESULT_READ)
    pattern = job.output_pattern(folder).as_posix()
    file_knob = cast(nuke.File_Knob, knob(read, "file"))
    file_knob.fromUserText(f"{pattern} {job.first}-{job.last}")
    for name, value in (("first", job.first), ("last", job.last), ("origfirst", job.first),
                        ("origlast", job.last)):
        knob(read, name).setValue(value)
    button = read.knob("reload")
    if reload and button is not None:  # drop images Nuke cached from this path
        cast(nuke.Script_Knob, button).execute()
    knob(node, K.BAKED_DIR).setValue(str(folder))


def clear_read(node: nuke.Node) -> None:
    read = internal(node, RESULT_READ)
    knob(read, "file").setValue("")


def show_result(node: nuke.Node, *, check_settings: bool = True) -> cache.ResultState:
    """Point the Read at the recorded result (if its frames are there) and say what it is.

    ``check_settings=False`` (script load, where inputs may not be connected yet) shows the
    recorded result without comparing settings; renders always check (``bake.ensure_current``).
    """
    folder = baked_dir(node)
    if check_settings:
        try:
            wanted = digest(node, read_settings(node))
        except SettingsError as err:
            set_status(node, f"check settings: {err}")
            return cache.ResultState.MISSING
    else:
        job = cache.read_job(folder) if folder else None
        wanted = job.digest if job else ""
    state, job = cache.result_state(folder, wanted)
    shown = (cache.ResultState.COMPLETE, cache.ResultState.STALE)
    if folder is not None and job is not None and state in shown and not cache.missing_frames(folder, job):
        point_read(node, folder, job)
    if state is cache.ResultState.COMPLETE and job is not None:
        set_status(node, f"ready: {output_info(job.first, job.last)} from {folder}")
    elif state is cache.ResultState.STALE:
        set_status(node, "settings changed since the last Interpolate: showing the old result; press Interpolate")
    elif state is cache.ResultState.INCOMPLETE:
        set_status(node, "unfinished result (cancelled, or a farm job still running): press Interpolate to finish")
    else:
        clear_read(node)
        set_status(node, "not interpolated yet: press Interpolate")
    return state


# -- panel ------------------------------------------------------------------------------------

def update_enabled(node: nuke.Node) -> None:
    method = str(knob(node, K.METHOD).value())
    knob(node, K.FACTOR).setEnabled(method == "factor")
    knob(node, K.SPEED).setEnabled(method == "speed")
    knob(node, K.FRAME).setEnabled(method == "frame curve")
    use_ocio = str(knob(node, K.TRANSFER).value()) == "ocio"
    for name in (K.OCIO_FROM, K.OCIO_FROM_PICK, K.OCIO_TO, K.OCIO_TO_PICK):
        knob(node, name).setEnabled(use_ocio)


def update_readout(node: nuke.Node) -> None:
    try:
        text = output_info(*current_range(node))
    except (SettingsError, ValueError, TypeError) as err:
        text = f"output: {err}"
    knob(node, K.OUTPUT_INFO).setValue(text)


def reset_range(node: nuke.Node) -> None:
    """Reset button: the input range from what is connected."""
    source = node.input(0)
    if source is None:
        set_status(node, "Reset: connect an input first")
        return
    knob(node, K.INPUT_FIRST).setValue(int(source.firstFrame()))
    knob(node, K.INPUT_LAST).setValue(int(source.lastFrame()))
    update_readout(node)


def refresh(node: nuke.Node) -> None:
    update_enabled(node)
    update_readout(node)


# -- callbacks --------------------------------------------------------------------------------

def on_create() -> None:
    """Every creation, script load included (where only the recorded result is shown)."""
    node = nuke.thisNode()
    refresh(node)
    show_result(node, check_settings=False)


def on_user_create() -> None:
    """Created by the artist: take the input's range and start the curve at its first frame."""
    node = nuke.thisNode()
    if node.input(0) is not None:
        reset_range(node)
        knob(node, K.FRAME).setValue(float(knob(node, K.INPUT_FIRST).value()))
        update_readout(node)


def knob_changed() -> None:
    node, changed = nuke.thisNode(), nuke.thisKnob()
    name = changed.name()
    if name == "showPanel":
        from . import bake  # here: bake imports this module

        refresh(node)
        refresh_ocio_menus(node)
        if bake.running(node) is None:  # a running job keeps its progress in the status line
            show_result(node)
    elif name in (K.METHOD, K.TRANSFER):
        refresh(node)
    elif name in (K.OCIO_FROM_PICK, K.OCIO_TO_PICK):
        take_pick(node, name)
    elif name == "inputChange":
        update_readout(node)
    if name in RANGE_KNOBS:
        update_readout(node)
