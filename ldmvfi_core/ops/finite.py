# SPDX-License-Identifier: MIT
"""Whether a frame holds only finite values, cheaply: it runs on the thread that feeds the GPU."""

from __future__ import annotations

import torch
from torch import Tensor


def all_finite(values: Tensor) -> bool:
    """True when no value is NaN or +-Inf. One float32 sum first (~1 ms against ~20 ms for
    ``isfinite().all()`` on a 1080p frame): it is finite when every value is, and the exact test
    decides when it is not (a sum of huge finite values may overflow). On a GPU tensor either
    waits for the GPU: check on the host where the values are there."""
    return bool(torch.isfinite(values.sum()) or torch.isfinite(values).all())
