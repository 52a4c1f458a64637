# SPDX-License-Identifier: MIT
"""Nuke start-up for the LDMVFI node; runs when NUKE_PATH contains this folder.

Adds ../gizmos (LDMVFI.gizmo) and this folder (the ``ldmvfi_nuke`` package) to the plug-in
path and registers the node's callbacks. Nuke puts NUKE_PATH folders on ``sys.path`` before
running this file, so the package imports by its own name.
"""

import importlib

# importlib rather than an import statement: Nuke runs this file as a script with this folder on
# sys.path, while mypy sees it as nuke_plugin.init and would look for the package elsewhere.
importlib.import_module("ldmvfi_nuke.startup").install()
