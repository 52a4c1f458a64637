# SPDX-License-Identifier: MIT
"""Nuke GUI start-up for the LDMVFI node: the toolbar menu and its shortcut (see init.py)."""

import importlib

importlib.import_module("ldmvfi_nuke.startup").add_menus()
