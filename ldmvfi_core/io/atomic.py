# SPDX-License-Identifier: MIT
"""Write a file so that readers see the old file or the whole new one, never half of it."""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary name beside ``path`` (``.NAME.tmpPID.SUFFIX``, same folder, same extension).

    Write to it inside the block; on success it is flushed to disk and renamed over ``path``, on
    any failure (interrupts included) it is removed and ``path`` is left as it was.

    The result gets the permissions of a plainly created file (``0o666`` less the umask), or the
    old file's when it replaces one: some writers (safetensors) create their file owner-only,
    and a weights file or a frame that only its writer can read breaks a shared pipeline.
    """
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}{path.suffix}")
    try:
        yield tmp
        mode = stat.S_IMODE(path.stat().st_mode) if path.exists() else 0o666 & ~_umask()
        os.chmod(tmp, mode)
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise


def _umask() -> int:
    """The process umask, read without changing it where Linux allows (os.umask sets it too)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    current = os.umask(0o022)
    os.umask(current)
    return current
