# SPDX-License-Identifier: MIT
"""One device's share of a multi-device retime (started by ``retime/multi.py``, not by people).

    python -m ldmvfi_core.retime.worker OPTIONS.json

Runs :func:`run_retime` with the options in the file (its device and output frames already set)
and reports JSON-lines progress on stdout; a failure is one ``error`` event and exit code 1.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from ldmvfi_core.retime.multi import THREADS_ENV, options_from_json
from ldmvfi_core.retime.progress import JsonProgress
from ldmvfi_core.retime.runner import run_retime


def use_device(device: str | None) -> None:
    """Make this worker's GPU the current CUDA device, so nothing it runs (graph capture, library
    defaults) touches another worker's GPU or opens a context there."""
    if device and device.startswith("cuda:"):
        import torch

        torch.cuda.set_device(torch.device(device))


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m ldmvfi_core.retime.worker OPTIONS.json", file=sys.stderr)
        return 2
    threads = int(os.environ.get(THREADS_ENV, "0") or 0)
    if threads > 0:
        import torch

        torch.set_num_threads(threads)
    progress = JsonProgress()
    try:
        options = options_from_json(Path(args[0]).read_text())
        use_device(options.device)
        run_retime(options, progress)
    except Exception as err:  # reported to the parent as one line; it names the frames left
        progress.error(str(err) or type(err).__name__)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
