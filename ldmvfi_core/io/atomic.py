# SPDX-License-Identifier: MIT
"""Write a file so that readers see the old file or the whole new one, never half of it."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary name beside ``path`` (``.NAME.tmpPID.SUFFIX``, same folder, same extension).

    Write to it inside the block; on success it is flushed to disk and renamed over ``path``, on
    any failure (interrupts included) it is removed and ``path`` is left as it was.
    """
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}{path.suffix}")
    try:
        yield tmp
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
