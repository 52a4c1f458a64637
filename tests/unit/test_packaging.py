# SPDX-License-Identifier: MIT
"""The wheel ships every package folder and the CUDA sources."""

from __future__ import annotations

from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[2]


def test_every_package_folder_is_listed_in_pyproject() -> None:
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    for top in ("ldmvfi_core", "nuke_plugin"):
        for init in (ROOT / top).rglob("__init__.py"):
            package = ".".join(init.parent.relative_to(ROOT).parts)
            assert package in listed, f"{package} missing from [tool.setuptools] packages"
    assert "ldmvfi_core.kernels" in listed
    assert (ROOT / "kernels" / "dsepconv.cu").is_file()
