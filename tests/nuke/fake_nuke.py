# SPDX-License-Identifier: MIT
"""A fake ``nuke`` module: the parts of Nuke's Python API the LDMVFI plug-in uses.

Installed as ``sys.modules["nuke"]`` by ``tests/nuke/conftest.py`` and reset before every test.
Close enough to Nuke to catch real mistakes:

* gizmos are built from their ``.gizmo`` file on the plug-in path (``tests/nuke/gizmo.py``):
  user knobs with their types and defaults, and the internal nodes;
* callbacks registered with ``addOnCreate``/``addOnUserCreate``/``addKnobChanged``/
  ``addBeforeRender`` run with ``thisNode``/``thisKnob`` set, as in Nuke;
* ``executeInMainThread`` queues calls for the main thread, which the test pumps with
  ``process_events``; every API call made from another thread is recorded in
  ``state.off_main_calls`` (Nuke's API is not thread-safe: there must be none);
* ``execute`` on a Write runs the beforeRender callbacks, refuses a disabled Write, and writes
  one small EXR-like file per frame whose header carries ``nuke/node_hash`` (a hash of the
  upstream tree at that frame, as Nuke writes it).
"""

from __future__ import annotations

import hashlib
import itertools
import queue
import re
import struct
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gizmo import load_gizmo

GUI = True
EXE_PATH = "/opt/Nuke13.2v8/Nuke13.2"
NUKE_VERSION_STRING = "13.2v8"
INPUTS = 0x1
HIDDEN_INPUTS = 0x2
EXPRESSIONS = 0x4


# -- state ------------------------------------------------------------------------------------

def _default_exr_writer(path: Path, frame: int, node_hash: str, channels: str) -> None:
    path.write_bytes(exr_header({"nuke/node_hash": node_hash, "test/channels": channels})
                     + f"pixels of frame {frame}".encode())


class _State:
    def __init__(self) -> None:
        self.main_ident = threading.get_ident()
        self.off_main_calls: list[str] = []
        self.main_queue: queue.Queue[Callable[[], None]] = queue.Queue()
        self.plugin_paths: list[str] = []
        self.callbacks: dict[str, list[tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any], str]]] = {
            "onCreate": [], "onUserCreate": [], "knobChanged": [], "beforeRender": []}
        self.context: list[tuple[Node, Knob | None]] = []
        self.root = Root()
        self.messages: list[str] = []
        self.tasks: list[ProgressTask] = []
        self.executed: list[tuple[str, int, int]] = []
        self.toolbars: dict[str, Menu] = {}
        self.colorspaces: list[str] | None = []
        self.exr_writer: Callable[[Path, int, str, str], None] = _default_exr_writer
        self.selected: Node | None = None


def reset() -> None:
    global state, GUI
    state = _State()
    GUI = True


def _check_main(api: str) -> None:
    if threading.get_ident() != state.main_ident:
        state.off_main_calls.append(api)


# -- knobs ------------------------------------------------------------------------------------

class Knob:
    default: Any = None

    def __init__(self, name: str, value: Any = None, label: str = "") -> None:
        self._name = name
        self._value = self._coerce(self.default if value is None else value)
        self._label = label
        self._enabled = True
        self._visible = True
        self.flags: set[str] = set()
        self.node: Node | None = None

    def _coerce(self, value: Any) -> Any:
        return value

    def Class(self) -> str:
        return type(self).__name__

    def name(self) -> str:
        return self._name

    def label(self) -> str:
        return self._label

    def value(self, *args: Any) -> Any:
        _check_main(f"{self._name}.value")
        return self._value

    def getValue(self, *args: Any) -> Any:
        return self.value()

    def setValue(self, value: Any, *args: Any) -> bool:
        _check_main(f"{self._name}.setValue")
        self._value = self._coerce(value)
        return True

    def fromScript(self, text: str) -> None:
        self._value = self._coerce(text)

    def setEnabled(self, enabled: bool) -> None:
        _check_main(f"{self._name}.setEnabled")
        self._enabled = bool(enabled)

    def enabled(self) -> bool:
        return self._enabled

    def setVisible(self, visible: bool) -> None:
        _check_main(f"{self._name}.setVisible")
        self._visible = bool(visible)

    def visible(self) -> bool:
        return self._visible


class String_Knob(Knob):
    default = ""

    def _coerce(self, value: Any) -> Any:
        return str(value)


class EvalString_Knob(String_Knob):
    pass


class File_Knob(EvalString_Knob):
    def fromUserText(self, text: str) -> None:
        """Like typing ``path first-last`` into a Read's file knob: sets the range too."""
        _check_main(f"{self._name}.fromUserText")
        match = re.fullmatch(r"(.*\S)\s+(-?\d+)-(-?\d+)", text.strip())
        if match is None:
            self.setValue(text)
            return
        self.setValue(match.group(1))
        if self.node is not None:
            first, last = int(match.group(2)), int(match.group(3))
            for name, value in (("first", first), ("last", last), ("origfirst", first), ("origlast", last)):
                found = self.node.knob(name)
                if found is not None:
                    found.setValue(value)


class Text_Knob(String_Knob):
    pass


class Tab_Knob(Knob):
    default = 0


class AnimationKey:
    def __init__(self, x: float, y: float) -> None:
        self.x = x
        self.y = y


class AnimationCurve:
    def __init__(self, keys: dict[float, float]) -> None:
        self._keys = [AnimationKey(x, y) for x, y in sorted(keys.items())]

    def keys(self) -> list[AnimationKey]:
        return list(self._keys)


class Array_Knob(Knob):
    def __init__(self, name: str, value: Any = None, label: str = "") -> None:
        super().__init__(name, value, label)
        self._keys: dict[float, float] = {}
        self._expression: Callable[[float], float] | None = None

    def isAnimated(self, *args: Any) -> bool:
        _check_main(f"{self._name}.isAnimated")
        return bool(self._keys) or self._expression is not None

    def setValueAt(self, value: float, time: float, *args: Any) -> bool:
        self._keys[float(time)] = float(value)
        return True

    def set_fake_expression(self, expression: Callable[[float], float]) -> None:
        """Test helper: an expression (Nuke would take TCL text) evaluated at each frame."""
        self._expression = expression

    def animation(self, index: int) -> AnimationCurve | None:
        _check_main(f"{self._name}.animation")
        return AnimationCurve(self._keys) if self._keys else None

    def getValueAt(self, time: float, *args: Any) -> Any:
        _check_main(f"{self._name}.getValueAt")
        if self._expression is not None:
            return self._expression(time)
        if not self._keys:
            return self._value
        xs = sorted(self._keys)
        if time <= xs[0]:
            return self._keys[xs[0]]
        if time >= xs[-1]:
            return self._keys[xs[-1]]
        for x0, x1 in itertools.pairwise(xs):
            if x0 <= time <= x1:
                y0, y1 = self._keys[x0], self._keys[x1]
                return y0 + (y1 - y0) * (time - x0) / (x1 - x0)
        raise AssertionError("unreachable")


class Int_Knob(Array_Knob):
    default = 0

    def _coerce(self, value: Any) -> Any:
        return int(value)


class Double_Knob(Array_Knob):
    default = 0.0

    def _coerce(self, value: Any) -> Any:
        return float(value)


class Boolean_Knob(Array_Knob):
    default = False

    def _coerce(self, value: Any) -> Any:
        if isinstance(value, str):
            return value.strip().lower() in ("true", "1", "yes")
        return bool(value)


class Enumeration_Knob(Knob):
    def __init__(self, name: str, items: list[str], label: str = "") -> None:
        self._items = list(items)
        super().__init__(name, items[0] if items else "", label)

    def _coerce(self, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            return self._items[value]
        if str(value) not in self._items:
            raise ValueError(f"{self._name}: {value!r} is not one of {self._items}")
        return str(value)

    def getValue(self, *args: Any) -> Any:
        return self._items.index(self.value())

    def values(self) -> list[str]:
        return list(self._items)

    def numValues(self) -> int:
        return len(self._items)

    def setValues(self, items: list[str]) -> None:
        _check_main(f"{self._name}.setValues")
        self._items = [str(i) for i in items]
        if self._value not in self._items:
            self._value = self._items[0] if self._items else ""


class Script_Knob(String_Knob):
    def __init__(self, name: str, command: str = "", label: str = "",
                 action: Callable[[], None] | None = None) -> None:
        super().__init__(name, command, label)
        self._action = action

    def command(self) -> str:
        return str(self._value)

    def execute(self) -> None:
        """Run the button: a built-in action, or the knob's Python with thisNode set (as Nuke does)."""
        _check_main(f"{self._name}.execute")
        if self._action is not None:
            self._action()
            return
        import sys

        assert self.node is not None
        with _context(self.node, self):
            exec(compile(self.command(), f"<{self._name} button>", "exec"), {"nuke": sys.modules["nuke"]})


class PyScript_Knob(Script_Knob):
    pass


# -- nodes ------------------------------------------------------------------------------------

class _Context:
    def __init__(self, node: Node, knob: Knob | None) -> None:
        self.entry = (node, knob)

    def __enter__(self) -> None:
        state.context.append(self.entry)

    def __exit__(self, *exc: object) -> None:
        state.context.pop()


def _context(node: Node, knob: Knob | None = None) -> _Context:
    return _Context(node, knob)


class Node:
    def __init__(self, cls: str, name: str, *, inputs: int = 1, parent: Group | None = None) -> None:
        self._class = cls
        self._knobs: dict[str, Knob] = {}
        self._inputs: list[Node | None] = [None] * inputs
        self._parent = parent
        self.deleted = False
        self.addKnob(String_Knob("name", name))
        self.addKnob(Boolean_Knob("disable", False))
        if parent is not None:
            parent._children.append(self)

    def _alive(self) -> None:
        if self.deleted:
            raise ValueError("A PythonObject is not attached to a node")

    def Class(self) -> str:
        return self._class

    def name(self) -> str:
        return str(self._knobs["name"]._value)

    def fullName(self) -> str:
        if self._parent is None or isinstance(self._parent, Root):
            return self.name()
        return f"{self._parent.fullName()}.{self.name()}"

    def addKnob(self, knob: Knob) -> None:
        knob.node = self
        self._knobs[knob.name()] = knob

    def knob(self, name: str) -> Knob | None:
        self._alive()
        _check_main(f"{self.name()}.knob")
        return self._knobs.get(name)

    def knobs(self) -> dict[str, Knob]:
        return dict(self._knobs)

    def __getitem__(self, name: str) -> Knob:
        found = self.knob(name)
        if found is None:
            raise NameError(f"{self.name()} has no knob {name}")
        return found

    def input(self, index: int) -> Node | None:
        _check_main(f"{self.name()}.input")
        return self._inputs[index] if index < len(self._inputs) else None

    def setInput(self, index: int, node: Node | None) -> bool:
        self._inputs[index] = node
        return True

    def inputs(self) -> int:
        return len(self._inputs)

    def dependencies(self, what: int = INPUTS | HIDDEN_INPUTS) -> list[Node]:
        _check_main(f"{self.name()}.dependencies")
        return [n for n in self._inputs if n is not None]

    def parent(self) -> Group | None:
        return self._parent

    def firstFrame(self) -> int:
        source = self.input(0)
        return source.firstFrame() if source is not None else int(state.root["first_frame"].value())

    def lastFrame(self) -> int:
        source = self.input(0)
        return source.lastFrame() if source is not None else int(state.root["last_frame"].value())

    def content(self, frame: int) -> str:
        """What the node outputs at ``frame`` (stands in for pixels; feeds the EXR node hash)."""
        ups = "|".join(n.content(frame) for n in self._inputs if n is not None)
        return f"{self._class}:{self.name()}({ups})"


class Group(Node):
    def __init__(self, cls: str, name: str, *, inputs: int = 1, parent: Group | None = None) -> None:
        self._children: list[Node] = []
        super().__init__(cls, name, inputs=inputs, parent=parent)

    def node(self, name: str) -> Node | None:
        _check_main(f"{self.name()}.node")
        for child in self._children:
            if child.name() == name:
                return child
        return None

    def nodes(self) -> list[Node]:
        return list(self._children)

    def begin(self) -> Group:
        return self

    def end(self) -> None:
        pass

    def __enter__(self) -> Group:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


class Gizmo(Group):
    def content(self, frame: int) -> str:
        # A gizmo outputs what its Output node sees; for LDMVFI, the internal Read's file at frame.
        read = self.node("baked_result")
        if read is not None:
            return read.content(frame)
        return super().content(frame)


class Root(Group):
    def __init__(self) -> None:
        super().__init__("Root", "/shots/sq010/sh010/comp/sh010_comp_v001.nk", inputs=0)
        self.addKnob(Int_Knob("first_frame", 1))
        self.addKnob(Int_Knob("last_frame", 100))
        self.addKnob(Boolean_Knob("proxy", False))
        self.addKnob(Enumeration_Knob("colorManagement", ["Nuke", "OCIO"]))
        self.addKnob(String_Knob("OCIO_config", "custom"))
        self.addKnob(File_Knob("customOCIOConfigPath", ""))
        self.addKnob(String_Knob("workingSpaceLUT", ""))


class InputNode(Node):
    def content(self, frame: int) -> str:
        group = self._parent
        source = group.input(0) if group is not None else None
        return source.content(frame) if source is not None else "black"


class ReadNode(Node):
    """A Read: outputs its file at ``frame`` (or black when it has none)."""

    reloads = 0  # presses of its Reload button

    def reload(self) -> None:
        self.reloads += 1

    def content(self, frame: int) -> str:
        pattern = str(self._knobs["file"]._value)
        if not pattern:
            return "black"
        first, last = int(self._knobs["first"]._value), int(self._knobs["last"]._value)
        path = frame_path(pattern, min(max(frame, first), last))
        if not path.is_file():
            raise RuntimeError(f"{self.name()}: no such file {path}")
        return f"file:{path}:{hashlib.sha256(path.read_bytes()).hexdigest()[:12]}"


class Source(Node):
    """A plate for tests: a frame range and a 'content' version that stands in for its pixels."""

    def __init__(self, name: str, first: int, last: int, version: str = "v1") -> None:
        super().__init__("Read", name, inputs=0, parent=state.root)
        self.first, self.last, self.version = first, last, version

    def firstFrame(self) -> int:
        return self.first

    def lastFrame(self) -> int:
        return self.last

    def content(self, frame: int) -> str:
        return f"plate:{self.name()}:{self.version}:{frame}"


_WRITE_KNOBS = {
    "file": File_Knob, "file_type": String_Knob, "channels": String_Knob, "datatype": String_Knob,
    "compression": String_Knob, "autocrop": Boolean_Knob, "raw": Boolean_Knob,
    "create_directories": Boolean_Knob, "checkHashOnRead": Boolean_Knob, "colorspace": String_Knob,
    "xpos": Int_Knob, "ypos": Int_Knob,
}
_READ_KNOBS = {
    "file": File_Knob, "first": Int_Knob, "last": Int_Knob, "origfirst": Int_Knob, "origlast": Int_Knob,
    "raw": Boolean_Knob, "on_error": String_Knob, "colorspace": String_Knob, "xpos": Int_Knob, "ypos": Int_Knob,
}
_POS_KNOBS = {"xpos": Int_Knob, "ypos": Int_Knob}


def _internal_node(cls: str, values: dict[str, str], group: Group) -> Node:
    name = values.get("name", cls)
    if cls == "Write":
        node: Node = Node("Write", name, parent=group)
        known: dict[str, type[Knob]] = _WRITE_KNOBS
    elif cls == "Read":
        read = ReadNode("Read", name, inputs=0, parent=group)
        read.addKnob(Script_Knob("reload", action=read.reload))
        node, known = read, _READ_KNOBS
    elif cls == "Input":
        node = InputNode("Input", name, inputs=0, parent=group)
        known = _POS_KNOBS
    elif cls == "Output":
        node = Node("Output", name, parent=group)
        known = _POS_KNOBS
    else:
        raise ValueError(f"the fake has no {cls} node")
    for knob_name, knob_type in known.items():
        if node.knob(knob_name) is None:
            node.addKnob(knob_type(knob_name))
    for knob_name, text in values.items():
        if knob_name in ("name", "inputs"):
            continue
        found = node.knob(knob_name)
        if found is None:
            raise ValueError(f"{cls} {name}: the fake does not know knob {knob_name!r} (a typo in the gizmo?)")
        found.fromScript(text)
    return node


def _build_gizmo(cls: str, path: Path, name: str) -> Gizmo:
    spec = load_gizmo(path)
    group = Gizmo(cls, name, inputs=int(spec.values.get("inputs", "1")), parent=state.root)
    for uk in spec.knobs:
        knob: Knob
        if uk.class_name == "Enumeration_Knob":
            knob = Enumeration_Knob(uk.name, uk.items, uk.label or "")
        elif uk.class_name in ("PyScript_Knob",):
            knob = PyScript_Knob(uk.name, uk.text or "", uk.label or "")
        elif uk.class_name == "Text_Knob":
            knob = Text_Knob(uk.name, uk.text or "", uk.label or "")
        else:
            knob = globals()[uk.class_name](uk.name, None, uk.label or "")
        knob.flags = set(uk.flags)
        if "+INVISIBLE" in uk.flags:
            knob._visible = False
        group.addKnob(knob)
    for knob_name, text in spec.values.items():
        found = group.knob(knob_name)
        if found is not None:
            found.fromScript(text)
    previous: Node | None = None
    for definition in spec.nodes:
        child = _internal_node(definition.cls, definition.values, group)
        if child.inputs() and previous is not None:  # Nuke's stack: a node takes the one before it
            child.setInput(0, previous)
        previous = child
    return group


# -- module functions -------------------------------------------------------------------------

def root() -> Root:
    return state.root


def thisNode() -> Node:
    return state.context[-1][0]


def thisKnob() -> Knob:
    knob = state.context[-1][1]
    assert knob is not None
    return knob


def toNode(name: str) -> Node | None:
    for node in allNodes():
        if node.fullName() == name:
            return node
    return None


def allNodes(filter: str | None = None, group: Group | None = None) -> list[Node]:
    nodes = (group or state.root).nodes()
    return [n for n in nodes if filter is None or n.Class() == filter]


def pluginAddPath(path: str, addToSysPath: bool = True) -> None:
    state.plugin_paths.insert(0, str(path))


def _add(kind: str) -> Callable[..., None]:
    def add(call: Callable[..., Any], args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None,
            nodeClass: str = "*") -> None:
        state.callbacks[kind].append((call, tuple(args), dict(kwargs or {}), nodeClass))
    return add


addOnCreate = _add("onCreate")
addOnUserCreate = _add("onUserCreate")
addKnobChanged = _add("knobChanged")
addBeforeRender = _add("beforeRender")


def _run_callbacks(kind: str, node: Node, knob: Knob | None = None) -> None:
    for call, args, kwargs, node_class in list(state.callbacks[kind]):
        if node_class in ("*", node.Class()):
            with _context(node, knob):
                call(*args, **kwargs)


def _find_gizmo(cls: str) -> Path | None:
    for folder in state.plugin_paths:
        path = Path(folder) / f"{cls}.gizmo"
        if path.is_file():
            return path
    return None


def _unique_name(cls: str) -> str:
    taken = {n.name() for n in state.root.nodes()}
    i = 1
    while f"{cls}{i}" in taken:
        i += 1
    return f"{cls}{i}"


def createNode(cls: str, knobs: str = "", inpanel: bool = True) -> Node:
    """Like Nuke: build the node (gizmos from the plug-in path), wire it below the selection."""
    _check_main("createNode")
    path = _find_gizmo(cls)
    if path is None:
        raise RuntimeError(f"{cls}: unknown command (no {cls}.gizmo on the plug-in path)")
    node = _build_gizmo(cls, path, _unique_name(cls))
    if state.selected is not None:
        node.setInput(0, state.selected)
    _run_callbacks("onCreate", node)
    _run_callbacks("onUserCreate", node)
    return node


def load_node(cls: str, values: dict[str, Any], input_node: Node | None = None, name: str | None = None) -> Node:
    """Test helper: a node as a script load makes it: knob values restored, then onCreate only."""
    path = _find_gizmo(cls)
    assert path is not None
    node = _build_gizmo(cls, path, name or _unique_name(cls))
    node.setInput(0, input_node)
    for knob_name, value in values.items():
        node[knob_name].setValue(value)
    _run_callbacks("onCreate", node)
    return node


def delete(node: Node) -> None:
    node.deleted = True


def ui_set(node: Node, knob_name: str, value: Any) -> None:
    """Test helper: the artist changes a knob in the panel (knobChanged callbacks run)."""
    knob = node[knob_name]
    knob.setValue(value)
    _run_callbacks("knobChanged", node, knob)


def open_panel(node: Node) -> None:
    """Test helper: the artist opens the node's panel (knobChanged with 'showPanel')."""
    _run_callbacks("knobChanged", node, Knob("showPanel"))


def press(node: Node, knob_name: str) -> None:
    """Test helper: the artist presses a button."""
    knob = node[knob_name]
    assert isinstance(knob, Script_Knob), f"{knob_name} is not a button"
    knob.execute()


def frame_path(pattern: str, frame: int) -> Path:
    match = re.search(r"#+", pattern)
    assert match is not None, pattern
    width = match.end() - match.start()
    return Path(pattern[: match.start()] + f"{frame:0{width}d}" + pattern[match.end():])


def exr_header(strings: dict[str, str]) -> bytes:
    """A minimal EXR header: magic, version 2, string attributes, end of header."""
    out = struct.pack("<ii", 20000630, 2)
    out += b"channels\0chlist\0" + struct.pack("<i", 1) + b"\0"
    for name, value in strings.items():
        data = value.encode()
        out += name.encode() + b"\0string\0" + struct.pack("<i", len(data)) + data
    return out + b"\0"


def execute(node: Node | str, start: int, end: int, incr: int = 1, views: list[str] | None = None) -> None:
    """Render a Write: beforeRender callbacks, then one file per frame."""
    _check_main("execute")
    if isinstance(node, str):
        found = toNode(node)
        assert found is not None
        node = found
    if node.Class() != "Write":
        raise RuntimeError(f"{node.name()} cannot be executed")
    if node["disable"].value():
        raise RuntimeError(f"{node.name()} is disabled")
    _run_callbacks("beforeRender", node)
    pattern = str(node["file"].value())
    if not pattern:
        raise RuntimeError(f"{node.name()}: no file name")
    source = node.input(0)
    for frame in range(start, end + 1, incr):
        content = source.content(frame) if source is not None else "black"
        path = frame_path(pattern, frame)
        path.parent.mkdir(parents=True, exist_ok=True)
        node_hash = hashlib.sha256(content.encode()).hexdigest()[:16]
        state.exr_writer(path, frame, node_hash, str(node["channels"].value()))
    state.executed.append((node.fullName(), start, end))


def render(write: Node, start: int, end: int) -> list[str]:
    """Test helper: a render of a top-level Write (farm or F7): callbacks, then what it would write."""
    _run_callbacks("beforeRender", write)
    source = write.input(0)
    return [source.content(f) if source is not None else "black" for f in range(start, end + 1)]


def make_write(name: str, source: Node) -> Node:
    write = Node("Write", name, parent=state.root)
    for knob_name, knob_type in _WRITE_KNOBS.items():
        write.addKnob(knob_type(knob_name))
    write.setInput(0, source)
    return write


def message(text: str) -> None:
    _check_main("message")
    state.messages.append(text)


def getColorspaceList(knob: Knob) -> list[str]:
    _check_main("getColorspaceList")
    if state.colorspaces is None:
        raise AttributeError("no colourspace menu")
    return list(state.colorspaces)


class ProgressTask:
    def __init__(self, title: str) -> None:
        _check_main("ProgressTask")
        self.title = title
        self.messages: list[str] = []
        self.progress: list[int] = []
        self.cancelled = False
        state.tasks.append(self)

    def setMessage(self, text: str) -> None:
        _check_main("ProgressTask.setMessage")
        self.messages.append(text)

    def setProgress(self, percent: int) -> None:
        _check_main("ProgressTask.setProgress")
        self.progress.append(int(percent))

    def isCancelled(self) -> bool:
        _check_main("ProgressTask.isCancelled")
        return self.cancelled


def executeInMainThread(call: Callable[..., Any], args: Any = (), kwargs: dict[str, Any] | None = None) -> None:
    args = args if isinstance(args, tuple) else (args,)
    state.main_queue.put(lambda: call(*args, **(kwargs or {})))


def executeInMainThreadWithResult(call: Callable[..., Any], args: Any = (),
                                  kwargs: dict[str, Any] | None = None) -> Any:
    args = args if isinstance(args, tuple) else (args,)
    if threading.get_ident() == state.main_ident:
        return call(*args, **(kwargs or {}))
    done = threading.Event()
    box: list[Any] = []

    def run() -> None:
        try:
            box.append(call(*args, **(kwargs or {})))
        finally:
            done.set()

    state.main_queue.put(run)
    if not done.wait(timeout=30):
        raise TimeoutError("the main thread did not run the call (is the test pumping events?)")
    return box[0]


def process_events(until: Callable[[], bool], timeout: float = 20.0) -> None:
    """Test helper: be Nuke's main loop, running queued calls until ``until()`` and the queue is empty."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            state.main_queue.get(timeout=0.02)()
            continue
        except queue.Empty:
            pass
        if until():
            return
        if time.monotonic() > deadline:
            raise TimeoutError("process_events: condition not met in time")


class Menu:
    def __init__(self, name: str) -> None:
        self._name = name
        self.items: dict[str, Any] = {}

    def name(self) -> str:
        return self._name

    def addMenu(self, name: str, **kwargs: Any) -> Menu:
        _check_main("Menu.addMenu")
        menu = self.items.get(name)
        if not isinstance(menu, Menu):
            menu = self.items[name] = Menu(name)
        return menu

    def addCommand(self, name: str, command: Any = None, shortcut: str = "", **kwargs: Any) -> None:
        _check_main("Menu.addCommand")
        self.items[name] = (command, shortcut)


def toolbar(name: str, create: bool = True) -> Menu:
    return state.toolbars.setdefault(name, Menu(name))


def menu(name: str) -> Menu:
    return toolbar(name)


state = _State()  # built last: it needs the classes above
