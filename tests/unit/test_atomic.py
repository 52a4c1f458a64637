# SPDX-License-Identifier: MIT
"""``io/atomic.py``: whole file or old file, never half; sensible permissions."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from ldmvfi_core.io.atomic import atomic_path


def _owner_only_write(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # as safetensors does
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def test_success_renames_into_place_with_umask_permissions(tmp_path: Path) -> None:
    target = tmp_path / "w.safetensors"
    old = os.umask(0o027)
    try:
        with atomic_path(target) as tmp:
            assert tmp.parent == tmp_path and tmp.name.startswith(".w.safetensors.tmp")
            _owner_only_write(tmp, b"new")
    finally:
        os.umask(old)
    assert target.read_bytes() == b"new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640  # 0o666 less the umask, not owner-only
    assert [p.name for p in tmp_path.iterdir()] == ["w.safetensors"]


def test_replacing_keeps_the_old_files_permissions(tmp_path: Path) -> None:
    target = tmp_path / "frame.exr"
    target.write_bytes(b"old")
    target.chmod(0o664)
    with atomic_path(target) as tmp:
        _owner_only_write(tmp, b"new")
    assert target.read_bytes() == b"new" and stat.S_IMODE(target.stat().st_mode) == 0o664


def test_failure_keeps_the_old_file_and_removes_the_temporary(tmp_path: Path) -> None:
    target = tmp_path / "frame.exr"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("interrupted")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["frame.exr"]
