# SPDX-License-Identifier: MIT
"""Host frames onto the model's device without making the host wait for the GPU.

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
