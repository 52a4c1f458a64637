# SPDX-License-Identifier: MIT
"""One retime across several devices: one worker process per GPU, output frames dealt out.

Why processes and not threads: each worker owns one device, one model copy, one CUDA context and
its own CUDA graphs, and a crash (out of memory, a driver reset) takes down only its own frames.

Why the result is identical to a one-device run: every output frame is a pure function of the
plate, the options and its own node seeds (``plan.node_seed``), which is what makes farm chunks
bit-identical too. The parent lists the output frames still to render, deals them out as
contiguous runs (neighbouring in-betweens share recursion nodes, so contiguous runs recompute the
fewest), and starts ``python -m ldmvfi_core.retime.worker`` per device with the options as JSON.
Workers report JSON-lines progress on stdout; the parent merges it into one bar / one JSON stream.

A worker that fails does not stop the others. Afterwards the frames it did not write are named in
one error line, and ``--skip-existing`` renders just those.
"""

from __future__ import annotations

import dataclasses
import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ldmvfi_core.io.sequence import format_frame_set, parse_pattern
from ldmvfi_core.retime.progress import Progress, SilentProgress
from ldmvfi_core.retime.runner import RetimeOptions, is_complete, run_retime
from ldmvfi_core.retime.sources import ColourSettings


class WorkerFailed(RuntimeError):
    """Some workers stopped early; the message names the devices and the frames not written."""


def parse_devices(spec: str) -> list[str]:
    """``"all"`` (every CUDA device) or a comma list such as ``cuda:0,cuda:1`` (``cpu`` is allowed)."""
    if spec.strip() == "all":
        import torch

        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ValueError("--devices all: no CUDA device is visible on this machine")
        return [f"cuda:{i}" for i in range(count)]
    devices = [d.strip() for d in spec.split(",") if d.strip()]
    if not devices:
        raise ValueError(f"--devices {spec!r}: name at least one device, e.g. cuda:0,cuda:1 or all")
    for device in devices:
        kind, _, index = device.partition(":")
        if kind not in ("cpu", "cuda") or (index and not index.isdigit()) or (kind == "cpu" and index):
            raise ValueError(f"--devices {spec!r}: {device!r} is not cpu, cuda or cuda:N")
    return devices


def deal(frames: Sequence[int], workers: int) -> list[list[int]]:
    """Split ``frames`` (in order) into at most ``workers`` contiguous runs whose sizes differ by <= 1."""
    if workers < 1:
        raise ValueError(f"need at least one worker, got {workers}")
    frames = list(frames)
    base, extra = divmod(len(frames), workers)
    runs, start = [], 0
    for i in range(workers):
        size = base + (1 if i < extra else 0)
        if size:
            runs.append(frames[start:start + size])
        start += size
    return runs


THREADS_ENV = "LDMVFI_WORKER_THREADS"


def _torch_threads() -> int:
    """This process's CPU thread count for the workers: CPU results depend on it in the last bits
    (reduction order), so ``cpu,cpu`` workers match a one-process run only with the same count."""
    if "torch" in sys.modules:
        return int(sys.modules["torch"].get_num_threads())
    return 0  # not chosen here: the workers keep torch's default, as a one-process run would


def options_to_json(options: RetimeOptions) -> str:
    return json.dumps(dataclasses.asdict(options))


def options_from_json(text: str) -> RetimeOptions:
    data: dict[str, Any] = json.loads(text)
    data["colour"] = ColourSettings(**data["colour"])
    return RetimeOptions(**data)


@dataclass
class _Worker:
    device: str
    frames: list[int]
    process: subprocess.Popen[str]
    options_file: Path
    stderr_tail: list[str] = field(default_factory=list)
    last_error: str | None = None


def frames_to_render(options: RetimeOptions) -> list[int]:
    """The output frames of the plan (after ``--output-frames``), minus complete ones with skip_existing."""
    planned = run_retime(replace(options, dry_run=True, detect_cuts=False), SilentProgress())
    frames = [f.output_frame for f in planned.plan.frames]
    if options.skip_existing:
        out = parse_pattern(options.output)
        frames = [f for f in frames if not is_complete(out.path(f))]
    return frames


def run_on_devices(options: RetimeOptions, devices: Sequence[str], progress: Progress | None = None,
                   python: str = sys.executable) -> list[int]:
    """Render ``options`` on ``devices`` in parallel; returns the output frames written.

    Raises :class:`WorkerFailed` if any worker stopped early (after the others have finished).
    """
    progress = progress or SilentProgress()
    todo = frames_to_render(options)
    progress.start(len(todo), input=options.input, output=options.output, frames=format_frame_set(todo),
                   devices=list(devices))
    if not todo:
        progress.finish()
        return []
    events: queue.Queue[tuple[int, str | None]] = queue.Queue()
    workers = [_start_worker(options, device, frames, i, events, python)
               for i, (device, frames) in enumerate(zip(devices, deal(todo, len(devices)), strict=False))]
    written: list[int] = []
    seen_warnings: set[str] = set()
    running = len(workers)
    try:
        while running:
            index, line = events.get()
            if line is None:
                running -= 1
                continue
            _relay(workers[index], line, progress, written, seen_warnings)
    except BaseException:
        for worker in workers:  # Ctrl-C: stop every worker; frames are renamed into place, never half-written
            worker.process.terminate()
        raise
    finally:
        for worker in workers:
            worker.process.wait()
            worker.options_file.unlink(missing_ok=True)
    failed = [w for w in workers if w.process.returncode != 0]
    if failed:
        out = parse_pattern(options.output)
        parts = []
        for w in failed:
            missing = [f for f in w.frames if not is_complete(out.path(f))]
            reason = w.last_error or (w.stderr_tail[-1] if w.stderr_tail else f"exit code {w.process.returncode}")
            parts.append(f"{w.device} stopped ({reason}): frames {format_frame_set(missing) or 'none'} not written")
        message = "; ".join(parts) + "; run again with --skip-existing to render them"
        progress.error(message)
        raise WorkerFailed(message)
    progress.finish()
    return sorted(written)


def _start_worker(options: RetimeOptions, device: str, frames: list[int], index: int,
                  events: queue.Queue[tuple[int, str | None]], python: str) -> _Worker:
    worker_options = replace(options, device=device, output_frames=format_frame_set(frames), dry_run=False)
    handle, name = tempfile.mkstemp(prefix="ldmvfi-worker-", suffix=".json")
    with os.fdopen(handle, "w") as f:
        f.write(options_to_json(worker_options))
    process = subprocess.Popen(
        [python, "-m", "ldmvfi_core.retime.worker", name], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, bufsize=1, env={**os.environ, THREADS_ENV: str(_torch_threads())},
    )
    worker = _Worker(device=device, frames=frames, process=process, options_file=Path(name))
    assert process.stdout is not None and process.stderr is not None

    def pump_stdout() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            events.put((index, line))
        events.put((index, None))

    def pump_stderr() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            if line.strip():
                worker.stderr_tail = [*worker.stderr_tail[-19:], line.rstrip()]

    threading.Thread(target=pump_stdout, daemon=True).start()
    threading.Thread(target=pump_stderr, daemon=True).start()
    return worker


def _relay(worker: _Worker, line: str, progress: Progress, written: list[int], seen_warnings: set[str]) -> None:
    try:
        event = json.loads(line)
    except json.JSONDecodeError:
        return  # not a progress line (a library printing to stdout): ignore it
    kind = event.get("event")
    if kind == "frame":
        written.append(int(event["frame"]))
        progress.frame(int(event["frame"]), f"{event.get('action', '')} [{worker.device}]".strip())
    elif kind == "skip":
        progress.skip(int(event["frame"]), str(event.get("reason", "")))
    elif kind == "warning":
        message = str(event.get("message", ""))
        if message not in seen_warnings:  # every worker sees the same cuts and clamps
            seen_warnings.add(message)
            progress.warning(message)
    elif kind == "error":
        worker.last_error = str(event.get("message", ""))
