# SPDX-License-Identifier: MIT
"""A small reader for Nuke's TCL-ish script text, enough for gizmos/LDMVFI.gizmo.

Words are separated by blanks; a word starting with ``{`` runs to the matching ``}`` (kept
verbatim), one starting with ``"`` runs to the next unescaped ``"`` (backslash escapes
applied); a newline or ``;`` ends a command; ``#`` at the start of a command is a comment.
A gizmo is ``Gizmo { ...knobs... }``, then its internal nodes ``Class { ... }``, then
``end_group``. ``addUserKnob {TYPE name l label t tooltip T text M {items} R lo hi +FLAG -FLAG}``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

ESCAPES = {"n": "\n", "t": "\t", "\\": "\\", '"': '"', "$": "$", "[": "[", "]": "]", "{": "{", "}": "}"}

# Nuke's addUserKnob type numbers used by the gizmo.
KNOB_TYPES = {
    1: "String_Knob",
    2: "File_Knob",
    3: "Int_Knob",
    4: "Enumeration_Knob",
    6: "Boolean_Knob",
    7: "Double_Knob",
    20: "Tab_Knob",
    22: "PyScript_Knob",
    26: "Text_Knob",
}


class TclError(ValueError):
    pass


@dataclass(frozen=True)
class Word:
    text: str
    braced: bool = False


def commands(text: str) -> list[list[Word]]:
    """Split script text into commands of words."""
    result: list[list[Word]] = []
    current: list[Word] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c in " \t\r":
            i += 1
        elif c in "\n;":
            if current:
                result.append(current)
                current = []
            i += 1
        elif c == "#" and not current:
            while i < n and text[i] != "\n":
                i += 1
        elif c == "{":
            depth, j = 1, i + 1
            while j < n and depth:
                if text[j] == "\\":
                    j += 2
                    continue
                depth += {"{": 1, "}": -1}.get(text[j], 0)
                j += 1
            if depth:
                raise TclError(f"unbalanced {{ at offset {i}")
            current.append(Word(text[i + 1 : j - 1], braced=True))
            i = j
        elif c == '"':
            chars, j = [], i + 1
            while j < n and text[j] != '"':
                if text[j] == "\\" and j + 1 < n:
                    chars.append(ESCAPES.get(text[j + 1], text[j + 1]))
                    j += 2
                else:
                    if text[j] == "[":
                        raise TclError(f"command substitution [ in a quoted word at offset {j}")
                    chars.append(text[j])
                    j += 1
            if j >= n:
                raise TclError(f'unterminated " at offset {i}')
            current.append(Word("".join(chars)))
            i = j + 1
        else:
            j = i
            while j < n and text[j] not in " \t\r\n;":
                j += 1
            current.append(Word(text[i:j]))
            i = j
    if current:
        result.append(current)
    return result


@dataclass
class UserKnob:
    type: int
    name: str
    label: str | None = None
    tooltip: str = ""
    text: str | None = None  # T: a Text_Knob's text or a PyScript_Knob's script
    items: list[str] = field(default_factory=list)  # M {...}
    range: tuple[float, float] | None = None
    flags: set[str] = field(default_factory=set)

    @property
    def class_name(self) -> str:
        return KNOB_TYPES[self.type]


@dataclass
class NodeDef:
    cls: str
    values: dict[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.values.get("name", "")


@dataclass
class Gizmo:
    knobs: list[UserKnob]
    values: dict[str, str]  # knob value lines of the Gizmo block (user knob defaults included)
    nodes: list[NodeDef]

    def knob(self, name: str) -> UserKnob:
        for k in self.knobs:
            if k.name == name:
                return k
        raise KeyError(name)


def _user_knob(spec: str) -> UserKnob:
    words = [w.text for w in commands(spec)[0]] if spec.strip() else []
    if len(words) < 2:
        raise TclError(f"addUserKnob {{{spec}}}: needs a type and a name")
    knob = UserKnob(type=int(words[0]), name=words[1])
    if knob.type not in KNOB_TYPES:
        raise TclError(f"{knob.name}: knob type {knob.type} not known to this reader")
    i = 2
    raw = commands(spec)[0]
    while i < len(words):
        word = words[i]
        if word in ("l", "t", "T"):
            value = words[i + 1]
            if word == "l":
                knob.label = value
            elif word == "t":
                knob.tooltip = value
            else:
                knob.text = value
            i += 2
        elif word == "M":
            if not raw[i + 1].braced:
                raise TclError(f"{knob.name}: M needs a {{list}}")
            knob.items = [w.text for cmd in commands(raw[i + 1].text) for w in cmd]
            i += 2
        elif word == "R":
            knob.range = (float(words[i + 1]), float(words[i + 2]))
            i += 3
        elif word[:1] in "+-" and word[1:].isupper():
            knob.flags.add(word)
            i += 1
        else:
            raise TclError(f"{knob.name}: unexpected {word!r} in addUserKnob")
    return knob


def parse_gizmo(text: str) -> Gizmo:
    cmds = commands(text)
    knobs: list[UserKnob] = []
    values: dict[str, str] = {}
    nodes: list[NodeDef] = []
    saw_gizmo = ended = False
    for cmd in cmds:
        head = cmd[0].text
        if head == "version":
            continue
        if head == "end_group":
            ended = True
            continue
        if len(cmd) != 2 or not cmd[1].braced:
            raise TclError(f"unexpected command {' '.join(w.text for w in cmd)!r}")
        body = commands(cmd[1].text)
        if head == "Gizmo":
            saw_gizmo = True
            for line in body:
                if line[0].text == "addUserKnob":
                    knobs.append(_user_knob(line[1].text))
                elif len(line) == 2:
                    values[line[0].text] = line[1].text
                else:
                    raise TclError(f"Gizmo: unexpected line {' '.join(w.text for w in line)!r}")
        else:
            node = NodeDef(head)
            for line in body:
                if len(line) != 2:
                    raise TclError(f"{head}: unexpected line {' '.join(w.text for w in line)!r}")
                node.values[line[0].text] = line[1].text
            nodes.append(node)
    if not saw_gizmo or not ended:
        raise TclError("not a gizmo: needs a Gizmo {...} block and end_group")
    return Gizmo(knobs=knobs, values=values, nodes=nodes)


def load_gizmo(path: Path) -> Gizmo:
    return parse_gizmo(path.read_text(encoding="utf-8"))
