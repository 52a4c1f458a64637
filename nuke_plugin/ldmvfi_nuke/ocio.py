# SPDX-License-Identifier: MIT
"""The script's OCIO config: which file it is, and the colourspace names it defines.

No colourspace name is written in this code: names come from the config the artist's script
uses (Nuke's own colourspace menus first, see ``node.colourspace_names``), and the node passes
the chosen ones to the runner with ``--ocio-config`` so both sides read the same file.
PyOpenColorIO is used when Nuke's Python has it; it is never required.
"""

from __future__ import annotations

import importlib
import os
import re
from collections.abc import Mapping
from pathlib import Path

CUSTOM = "custom"
_TAGGED = re.compile(r"!<(ColorSpace|NamedTransform)>")
_VAR = re.compile(r"\$(?:\{(\w+)\}|(\w+))")
_COMMENT = re.compile(r"(^|\s)#.*$")
_NAME = re.compile(r"""(?:^|[{,\s])name\s*:\s*("(?:[^"\\]|\\.)*"|'[^']*'|[^,}\n#]+)""")


def config_path(config_name: str, custom_path: str, env: Mapping[str, str], nuke_dir: str) -> str:
    """The config file a script uses, or "" if it cannot be told (the runner then uses $OCIO).

    ``config_name``/``custom_path``: the root's ``OCIO_config`` and ``customOCIOConfigPath``
    knobs; a built-in config named ``X`` ships as ``<nuke>/plugins/OCIOConfigs/configs/X/config.ocio``.
    """
    if config_name == CUSTOM and custom_path.strip():
        expanded = _VAR.sub(lambda m: env.get(m.group(1) or m.group(2), m.group(0)), custom_path.strip())
        return os.path.expanduser(expanded)
    if config_name and config_name != CUSTOM and nuke_dir:
        shipped = Path(nuke_dir) / "plugins" / "OCIOConfigs" / "configs" / config_name / "config.ocio"
        if shipped.is_file():
            return str(shipped)
    return env.get("OCIO", "").strip()


def _unquote(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        return text[1:-1].replace('\\"', '"')
    return text


def colourspaces_in_config_text(text: str) -> list[str]:
    """Colourspace (and named transform) names of an OCIO config's YAML, in file order.

    A small scanner, not a YAML parser: after each ``!<ColorSpace>`` tag the first ``name:``
    (block or flow style) is the colourspace's name. Good enough to fill a menu.
    """
    names: list[str] = []
    pending = False
    for line in text.splitlines():
        code = _COMMENT.sub("", line)
        tag = _TAGGED.search(code)
        if tag:
            pending = True
            code = code[tag.end():]
        if pending:
            match = _NAME.search(code)
            if match:
                name = _unquote(match.group(1))
                if name and name not in names:
                    names.append(name)
                pending = False
    return names


def colourspaces_in_config(path: str) -> list[str]:
    """Names from the config file: through PyOpenColorIO when importable, else the text scanner."""
    if not path:
        return []
    try:
        names = _with_pyopencolorio(path)
    except Exception:  # a PyOpenColorIO that cannot read the config: try the scanner
        names = []
    if names or path.startswith("ocio://"):  # built-in configs (ocio://...) have no file to scan
        return names
    try:
        return colourspaces_in_config_text(Path(path).read_text(encoding="utf-8", errors="replace"))
    except OSError:
        return []


def _with_pyopencolorio(path: str) -> list[str]:
    try:
        ocio = importlib.import_module("PyOpenColorIO")
    except ImportError:
        return []
    config = ocio.Config.CreateFromFile(path)
    if hasattr(config, "getColorSpaceNames"):  # OCIO 2
        return [str(name) for name in config.getColorSpaceNames()]
    return [str(space.getName()) for space in config.getColorSpaces()]  # OCIO 1
