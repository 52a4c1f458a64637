# SPDX-License-Identifier: MIT
"""What ``init.py`` and ``menu.py`` run: plug-in paths, callbacks, menus."""

from __future__ import annotations

import os
from pathlib import Path

import nuke

from . import bake, node
from .settings import NODE_CLASS

PACKAGE_DIR = Path(__file__).resolve().parent  # nuke_plugin/ldmvfi_nuke
PLUGIN_DIR = PACKAGE_DIR.parent  # nuke_plugin: NUKE_PATH points here
# An installed wheel ships the gizmo inside the plug-in (nuke_plugin/gizmos); a checkout has ../gizmos.
GIZMO_DIR = PLUGIN_DIR / "gizmos" if (PLUGIN_DIR / "gizmos").is_dir() else PLUGIN_DIR.parent / "gizmos"
DEFAULT_SHORTCUT = "alt+shift+l"

_installed = False  # init.py can be run twice (a second NUKE_PATH entry): register once


def install() -> None:
    """init.py (GUI and headless): make the gizmo and this package findable, register callbacks."""
    global _installed
    if _installed:
        return
    nuke.pluginAddPath(str(GIZMO_DIR))
    nuke.pluginAddPath(str(PLUGIN_DIR))
    nuke.addOnCreate(node.on_create, nodeClass=NODE_CLASS)
    nuke.addOnUserCreate(node.on_user_create, nodeClass=NODE_CLASS)
    nuke.addKnobChanged(node.knob_changed, nodeClass=NODE_CLASS)
    # Every Write render checks the LDMVFI nodes above it (headless: bakes what is missing).
    nuke.addBeforeRender(bake.before_render)
    _installed = True


def create_node() -> nuke.Node:
    return nuke.createNode(NODE_CLASS)


def add_menus() -> None:
    """menu.py (GUI only): an LDMVFI menu on the Nodes toolbar, with a shortcut, and Time > LDMVFI."""
    if not nuke.GUI:
        return
    shortcut = os.environ.get("LDMVFI_SHORTCUT", DEFAULT_SHORTCUT)
    toolbar = nuke.toolbar("Nodes")
    if toolbar is None:
        return
    toolbar.addMenu("LDMVFI").addCommand("LDMVFI", create_node, shortcut)
    # Next to Kronos and OFlow, where compositors look for retimers.
    toolbar.addCommand("Time/LDMVFI", create_node)
