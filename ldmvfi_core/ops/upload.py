# SPDX-License-Identifier: MIT
"""Frames between the host and the model's device without making the host wait for the GPU.

Why: a copy from ordinary (pageable) host memory to a GPU is staged by the driver and returns
only once it is done, and it runs in the stream's order, so the host thread waits until every
kernel queued before it has finished. Each source frame's upload then stalled the thread that
queues the next in-between's work, and the GPU idled while the host caught up. From page-locked
memory the copy is asynchronous (and about twice as fast); PyTorch's pinned-memory cache keeps
the staging buffer alive until the copy has run.
"""

from __future__ import annotations

import torch
from torch import Tensor


def upload(tensor: Tensor, device: torch.device) -> Tensor:
    """``tensor`` on ``device``; from the CPU to a GPU through pinned memory, without waiting."""
    if device.type == "cuda" and tensor.device.type == "cpu":
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device)


class Download:
    """A device tensor's copy to the host, queued now; ``result()`` waits for that copy alone.

    Why: ``tensor.cpu()`` blocks the host until every kernel queued before it has run, then copies
    from device to pageable memory. The thread that feeds the GPU then queues nothing while the
    in-between decodes and downloads, and the GPU idles while that thread prepares the next
    source frame. Queued into page-locked memory and awaited later (after the next in-between's
    work is queued), the copy overlaps the GPU's next work instead. The result lives in that
    page-locked memory (PyTorch's pinned-memory cache reuses it once freed): keep few at once."""

    def __init__(self, tensor: Tensor) -> None:
        self._ready: torch.cuda.Event | None = None
        if tensor.device.type != "cuda":
            self._host = tensor.cpu()
            return
        self._host = torch.empty(tensor.shape, dtype=tensor.dtype, pin_memory=True)
        self._host.copy_(tensor, non_blocking=True)  # ordered after the kernels that make ``tensor``
        self._ready = torch.cuda.Event()
        self._ready.record(torch.cuda.current_stream(tensor.device))

    def done(self) -> bool:
        return self._ready is None or self._ready.query()

    def result(self) -> Tensor:
        """The host copy (contiguous), once it has landed."""
        if self._ready is not None:
            self._ready.synchronize()
        return self._host
