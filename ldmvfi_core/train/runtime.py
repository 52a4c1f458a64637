# SPDX-License-Identifier: MIT
"""Where a training process runs: its device, its precision, and its place among the processes
``torchrun`` started (NCCL on CUDA, Gloo on the CPU)."""

from __future__ import annotations

import os
import warnings
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn


@dataclass
class Runtime:
    device: torch.device
    autocast_dtype: torch.dtype | None
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    distributed: bool = False
    owns_group: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def autocast(self) -> AbstractContextManager[Any]:
        if self.autocast_dtype is None:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    def wrap(self, module: nn.Module) -> nn.Module:
        if not self.distributed:
            return module
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(module, device_ids=ids)

    def barrier(self) -> None:
        if self.distributed:
            torch.distributed.barrier()

    def any_true(self, flag: bool) -> bool:
        """True on every rank when ``flag`` is true on some rank."""
        if not self.distributed:
            return flag
        t = torch.tensor([1.0 if flag else 0.0], device=self.device)
        torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
        return bool(t.item() > 0)

    def mean(self, values: Tensor) -> Tensor:
        if self.distributed:
            values = values.to(self.device)
            torch.distributed.all_reduce(values)
            values = values / self.world_size
        return values

    def close(self) -> None:
        if self.owns_group and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def setup_runtime(device: str | None, precision: str) -> Runtime:
    """Pick the device and start the process group when launched by torchrun."""
    if precision not in ("bf16", "fp32"):
        raise ValueError(f"--precision must be bf16 or fp32, got {precision!r}")
    env = os.environ
    distributed = all(k in env for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"))
    dev = torch.device(device if device else ("cuda" if torch.cuda.is_available() else "cpu"))
    rank, world, local = 0, 1, 0
    owns = False
    if distributed:
        rank, world, local = int(env["RANK"]), int(env["WORLD_SIZE"]), int(env["LOCAL_RANK"])
        if dev.type == "cuda":
            dev = torch.device("cuda", local)
            torch.cuda.set_device(dev)
        if not torch.distributed.is_initialized():
            if dev.type == "cuda":
                torch.distributed.init_process_group(backend="nccl", device_id=dev)
            else:
                torch.distributed.init_process_group(backend="gloo")
            owns = True
    elif dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", torch.cuda.current_device())
    dtype: torch.dtype | None = None
    if precision == "bf16":
        if dev.type == "cuda":
            dtype = torch.bfloat16
        else:
            warnings.warn("bf16 autocast is only used on CUDA; training in float32", RuntimeWarning, stacklevel=2)
    return Runtime(device=dev, autocast_dtype=dtype, rank=rank, world_size=world, local_rank=local,
                   distributed=distributed, owns_group=owns)
