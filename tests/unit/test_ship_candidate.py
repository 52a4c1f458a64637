# SPDX-License-Identifier: MIT
"""tools/ship_candidate.py: split parts rejoin byte for byte; "better" means better on every set."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from types import ModuleType

import pytest

from tests.conftest import load_tool


@pytest.fixture(scope="module")
def tool() -> ModuleType:
    return load_tool("ship_candidate")


def test_parts_rejoin_in_name_order(tool: ModuleType, tmp_path: Path) -> None:
    data = bytes(range(256)) * 100
    parts = tmp_path / "parts"
    parts.mkdir()
    for name, start in (("export.partac", 20000), ("export.partaa", 0), ("export.partab", 10000)):  # out of order
        (parts / name).write_bytes(data[start:start + 10000])
    joined = tool.assemble(parts, tmp_path / "out")
    assert joined.read_bytes() == data
    assert tool.sha256_of(joined) == hashlib.sha256(data).hexdigest()


def _scores(path: Path, rows: dict[str, float]) -> Path:
    sets = [{"set_name": name, "method": "ours", "psnr": psnr, "ssim": 0.9, "n": 1} for name, psnr in rows.items()]
    path.write_text(json.dumps({"sets": sets}))
    return path


def test_better_only_when_higher_on_every_set(tool: ModuleType, tmp_path: Path) -> None:
    shipped = _scores(tmp_path / "shipped.json", {"a": 30.0, "b": 31.0})
    assert tool.compare(_scores(tmp_path / "c1.json", {"a": 30.1, "b": 31.2}), shipped)
    assert not tool.compare(_scores(tmp_path / "c2.json", {"a": 30.5, "b": 30.9}), shipped)
    assert not tool.compare(_scores(tmp_path / "c3.json", {"a": 30.0, "b": 31.0}), shipped)  # a tie is no gain
