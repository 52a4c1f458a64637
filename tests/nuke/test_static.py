# SPDX-License-Identifier: MIT
"""The plug-in's import rules and ``mypy --strict`` against the types-nuke stubs."""

from __future__ import annotations

import ast
import importlib.metadata
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PLUGIN = ROOT / "nuke_plugin"
PURE = ("settings", "commands", "progress", "process", "cache", "ocio")


def imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "import_module"
              and node.args and isinstance(node.args[0], ast.Constant)):
            found.add(str(node.args[0].value).split(".")[0])
    return found


def test_only_the_standard_library_and_nuke() -> None:
    allowed = set(sys.stdlib_module_names) | {"nuke", "ldmvfi_nuke", "__future__", "PyOpenColorIO"}
    for path in PLUGIN.rglob("*.py"):
        assert imports(path) <= allowed, f"{path.relative_to(ROOT)}: {imports(path) - allowed}"


def test_logic_modules_do_not_import_nuke() -> None:
    for name in PURE:
        assert "nuke" not in imports(PLUGIN / "ldmvfi_nuke" / f"{name}.py"), name


def _installed(distribution: str) -> bool:
    try:
        importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


@pytest.mark.skipif(not (_installed("mypy") and _installed("types-nuke")),
                    reason="mypy and types-nuke are dev dependencies")
def test_mypy_strict() -> None:
    done = subprocess.run([sys.executable, "-m", "mypy", "--strict", "nuke_plugin"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
