# SPDX-License-Identifier: MIT
"""The shared training loop of both stages, run in resumable slices.

``ldmvfi train --stage 1|2 --out DIR --data CACHE [--resume] [--steps N] [--time-limit S]``

* optimiser per stage (``configs.py``), bf16 autocast on CUDA, gradient clipping;
* stops cleanly at ``--steps`` (the total step count, not the steps of this slice) or before
  ``--time-limit`` seconds (measured from the start of the command; the next step and a
  checkpoint write must still fit), or on SIGTERM/SIGINT, and always writes a checkpoint then;
* checkpoints every ``--ckpt-every`` steps, atomic, newest ``--keep`` kept (``checkpoint.py``);
* ``--resume`` continues from the newest checkpoint in ``--out`` (or a given file) exactly where
  it stopped: the same weights, optimiser moments, EMA, data position and per-step randomness,
  so resumed training is bitwise the same as uninterrupted training on CPU;
* JSON lines log ``<out>/train_log.jsonl``: one record per ``--log-every`` steps with the mean of
  each loss term over the interval and all processes, the learning rate, images/s;
* DistributedDataParallel when started by ``torchrun`` (RANK/WORLD_SIZE/LOCAL_RANK set): NCCL on
  CUDA, Gloo on CPU, one DistributedSampler shard per process; only rank 0 writes files.
  ``--batch-size`` is per process. State dicts are saved unwrapped, so any world size resumes.
* ``--export PATH.safetensors`` writes the inference weights at the end (EMA U-Net for stage 2)
  with ``model/export.py::save_safetensors``; ``--export-only`` just converts a checkpoint.

Randomness: every step re-seeds the global RNG from ``(seed, step, rank)`` before it runs, so a
step's diffusion timesteps, noise and any dropout depend only on those three numbers. The data
order is the DistributedSampler permutation of ``(seed, epoch)``; the dataset gets
``set_epoch(epoch)`` if it has it, and its augmentations must depend only on (its seed, epoch,
index) for a resumed run to see the same crops (with worker processes too).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import statistics
import sys
import threading
import time
import warnings
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ldmvfi_core.config import LDMVFIConfig
from ldmvfi_core.interpolate import compile_autoencoder, dtype_named
from ldmvfi_core.model.ldmvfi import LatentDiffusionVFI
from ldmvfi_core.train.checkpoint import (
    FORMAT,
    VERSION,
    TrainCheckpointError,
    checkpoint_path,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    prune_checkpoints,
    rng_snapshot,
    save_checkpoint,
)
from ldmvfi_core.train.configs import EMA_DECAY, STAGE1_OPTIM, STAGE2_OPTIM, Stage1Loss, model_config
from ldmvfi_core.train.schedule import RateSchedule

LOG_NAME = "train_log.jsonl"
AE_PREFIX = "first_stage_model."
UNET_PREFIX = "model.diffusion_model."


@dataclass(frozen=True)
class TrainOptions:
    stage: int
    out: str
    config: str | None = None  # tiny|small|released|path; None: the checkpoint's, else "small"
    data: str | None = None
    batch_size: int = 8  # per process
    crop: int = 256  # frame size the dataset yields (a multiple of the model's 2^L * window)
    lr: float | None = None  # absolute learning rate (overrides base_lr)
    base_lr: float | None = None  # per-sample rate: lr = base_lr * batch_size * world_size
    steps: int = 1000  # total optimiser steps to reach
    time_limit: float | None = None  # seconds from the start of the run
    resume: str | None = None  # None, "auto" (newest in out/, or a fresh start) or a path
    init_from: str | None = None  # weights to start from (stage 2: the stage-1 checkpoint)
    device: str | None = None  # default: cuda if available, else cpu
    precision: str = "bf16"  # bf16 (autocast, CUDA only) | fp32
    export: str | None = None
    export_dtype: str = "float32"  # storage type of the exported parameters: float32 | float16
    seed: int = 0
    num_workers: int = 4
    ckpt_every: int = 1000
    log_every: int = 10
    keep: int = 2
    grad_clip: float = 1.0  # 0: off
    ema_decay: float = EMA_DECAY
    loss: Stage1Loss = field(default_factory=Stage1Loss)
    perceptual: str = "auto"  # auto: use it if installed | on: required | off
    compile: str = ""  # a torch.compile backend for the networks being trained ("inductor"); "": eager
    channels_last: bool = False  # store the networks NHWC (no cuDNN layout transposes around convs)
    rewarm_steps: int = 200  # linear LR ramp after resuming without optimiser state (0: off)
    lr_decay: tuple[int, int] | None = None  # steps (start, end) of a linear decay to lr_final
    lr_final: float | None = None
    mattes: float = 0.0  # share of training items given black letterbox/pillarbox bars

    def as_record(self) -> dict[str, Any]:
        return asdict(self)


# --------------------------------------------------------------------------------------------
# Runtime: device, precision, distributed


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


# --------------------------------------------------------------------------------------------
# Model set-up


def load_init_weights(path: str | os.PathLike[str]) -> dict[str, Tensor]:
    """Inference-named tensors from a training checkpoint (EMA U-Net if it has one) or from a
    weights file (official ``.ckpt`` or our ``.safetensors``; EMA U-Net when present)."""
    from ldmvfi_core.model.checkpoint import read_tensors, select_inference_weights

    p = Path(path)
    if p.suffix in (".safetensors", ".ckpt"):
        tensors, _ = read_tensors(p)
        return select_inference_weights(tensors, p, "ema")
    state = load_checkpoint(p)
    out = dict(state["model"])
    if state.get("ema"):
        out.update(state["ema"]["shadow"])
    return out


def _apply_init(model: LatentDiffusionVFI, tensors: Mapping[str, Tensor], stage: int, path: str) -> list[str]:
    """Copy the autoencoder (and, for stage 2, the U-Net when the file has one) into ``model``."""
    own = model.state_dict()
    parts = [AE_PREFIX] + ([UNET_PREFIX] if stage == 2 else [])
    loaded = []
    for prefix in parts:
        keys = [k for k in own if k.startswith(prefix)]
        present = [k for k in keys if k in tensors]
        if not present:
            if prefix == AE_PREFIX:
                raise ValueError(f"--init-from {path}: no autoencoder weights ({AE_PREFIX}*) in it")
            continue
        if len(present) != len(keys):
            missing = sorted(set(keys) - set(present))
            raise ValueError(f"--init-from {path}: {len(missing)} {prefix}* tensors missing, e.g. {missing[0]}")
        for k in keys:
            if tuple(tensors[k].shape) != tuple(own[k].shape):
                raise ValueError(f"--init-from {path}: {k} has shape {tuple(tensors[k].shape)}, this config "
                                 f"expects {tuple(own[k].shape)} (use the same --config)")
            own[k].copy_(tensors[k].to(own[k].dtype))
        loaded.append(prefix.rstrip("."))
    return loaded


def _learning_rate(opts: TrainOptions, world_size: int) -> float:
    if opts.lr is not None:
        return opts.lr
    optim = STAGE1_OPTIM if opts.stage == 1 else STAGE2_OPTIM
    base = opts.base_lr if opts.base_lr is not None else optim.base_lr
    return base * opts.batch_size * world_size


def build_task(opts: TrainOptions, config: LDMVFIConfig, rt: Runtime, *, fresh: bool) -> Any:
    """Model + task for ``opts.stage``; a fresh start is initialised from ``opts.seed``."""
    _clear_inference_caches()
    torch.manual_seed(opts.seed)
    model = LatentDiffusionVFI(config)
    lr = _learning_rate(opts, rt.world_size)
    task: Any
    if opts.stage == 1:
        from ldmvfi_core.train.perceptual import build_perceptual
        from ldmvfi_core.train.stage1 import Stage1Task, init_autoencoder

        if fresh:
            init_autoencoder(model.first_stage_model)
        perceptual = None
        if opts.loss.perceptual_weight > 0 and opts.perceptual != "off":
            perceptual = build_perceptual(required=opts.perceptual == "on")
        loss = opts.loss if perceptual is not None else replace(opts.loss, perceptual_weight=0.0)
        init = _init_weights(model, opts, fresh, rt)
        task = Stage1Task(model, loss, rt, lr, STAGE1_OPTIM.betas, STAGE1_OPTIM.weight_decay,
                          STAGE1_OPTIM.adamw, opts.grad_clip, perceptual, seed=opts.seed,
                          channels_last=opts.channels_last)
    elif opts.stage == 2:
        from ldmvfi_core.train.stage2 import Stage2Task, init_unet, warn_untrained_autoencoder

        if fresh:
            init_unet(model.unet)
        init = _init_weights(model, opts, fresh, rt)
        if fresh and "first_stage_model" not in init:
            warn_untrained_autoencoder()
        task = Stage2Task(model, rt, lr, STAGE2_OPTIM.betas, STAGE2_OPTIM.weight_decay, STAGE2_OPTIM.adamw,
                          opts.grad_clip, opts.ema_decay, channels_last=opts.channels_last)
    else:
        raise ValueError(f"--stage must be 1 or 2, got {opts.stage}")
    task.init_loaded = init
    if opts.compile:
        compile_trained_networks(model, opts.stage, opts.compile)
    return task


def compile_trained_networks(model: LatentDiffusionVFI, stage: int, backend: str) -> None:
    """``torch.compile`` in place what a stage runs every step: stage 1 the encoder and decoder,
    stage 2 the U-Net and the frozen encoder that makes its latents.

    Why: their full-resolution levels are chains of memory-bound passes (GroupNorm, SiLU, layout
    changes) that inductor fuses, forward and backward. In place (``Module.compile``), so the
    state-dict keys, the checkpoints and DDP's wrapping are unchanged; the warp (dsepconv) stays
    outside, as its own CUDA kernel. One graph per input shape: the first steps compile.
    """
    if stage == 1:
        compile_autoencoder(model.first_stage_model, backend)
    else:
        model.unet.compile(dynamic=False, backend=backend)
        model.first_stage_model.encoder.compile(dynamic=False, backend=backend)


def _clear_inference_caches() -> None:
    """Drop the MaxViT relative-position index cache: an index first built under
    ``torch.inference_mode()`` (by an earlier interpolation in this process) is an inference
    tensor, and autograd refuses it. (To be fixed in ``model/maxvit.py``.)"""
    from ldmvfi_core.model import maxvit

    cached = getattr(maxvit, "_relative_position_index", None)
    if cached is not None and hasattr(cached, "cache_clear"):
        cached.cache_clear()


def _init_weights(model: LatentDiffusionVFI, opts: TrainOptions, fresh: bool, rt: Runtime) -> list[str]:
    if not fresh or not opts.init_from:
        return []
    return _apply_init(model, load_init_weights(opts.init_from), opts.stage, opts.init_from)


# --------------------------------------------------------------------------------------------
# Data


def open_dataset(opts: TrainOptions) -> Any:
    if not opts.data:
        raise ValueError("--data is required for training")
    from ldmvfi_core.train.data import TripletDataset  # imported lazily: numpy readers etc.

    dataset = TripletDataset(opts.data, size=(opts.crop, opts.crop), seed=opts.seed, train=True,
                             mattes=opts.mattes)
    if opts.stage == 1 and opts.loss.flow_teacher_weight > 0:
        from ldmvfi_core.train.flow_teacher import FlowTeacherDataset

        return FlowTeacherDataset(dataset)
    return dataset


class _EpochItems(torch.utils.data.Dataset[Any]):
    """``dataset`` addressed by ``epoch * len(dataset) + index``: each item selects its own epoch, so
    one DataLoader (and its worker processes) serves every epoch. Restarting the workers at each
    epoch boundary stalled the GPUs: an epoch of the training cache is only ~20 steps."""

    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset
        self.size = len(dataset)

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, item: int) -> Any:
        epoch, index = divmod(item, self.size)
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)
        return self.dataset[index]


class _StreamSampler(torch.utils.data.Sampler[int]):
    def __init__(self, items: Iterator[int]) -> None:
        self.items = items

    def __iter__(self) -> Iterator[int]:
        return self.items


def _epoch_batches(dataset: Any, opts: TrainOptions, rt: Runtime, epoch: int, skip: int
                   ) -> Iterator[tuple[int, int, Any]]:
    """Yield ``(epoch, batches done in that epoch, batch)`` forever, from batch ``skip`` of ``epoch``.

    ``batch`` is the frames tensor, or ``(frames, teacher, ...)`` when the dataset adds targets.
    Epoch ``e`` visits this process's shard of the DistributedSampler permutation of ``(seed, e)``
    (whole batches only), so a resumed run sees exactly the batches of an uninterrupted one."""
    from torch.utils.data import DataLoader, DistributedSampler

    bs = opts.batch_size
    size = len(dataset)

    def shard(e: int) -> list[int]:
        sampler: DistributedSampler[int] = DistributedSampler(
            dataset, num_replicas=rt.world_size, rank=rt.rank, shuffle=True, seed=opts.seed, drop_last=True)
        sampler.set_epoch(e)
        indices = list(sampler)
        return indices[: len(indices) // bs * bs]

    n_batches = len(shard(epoch)) // bs
    if n_batches == 0:
        raise ValueError(f"the dataset has {size} triplets: fewer than one batch of {bs} per "
                         f"process ({rt.world_size} processes)")
    epoch, skip = epoch + skip // n_batches, skip % n_batches

    def items() -> Iterator[int]:
        e, first = epoch, skip * bs
        while True:
            for index in shard(e)[first:]:
                yield e * size + index
            e, first = e + 1, 0

    gen = torch.Generator()
    gen.manual_seed(_mix(opts.seed, epoch, skip, rt.rank))
    loader = DataLoader(_EpochItems(dataset), batch_size=bs, sampler=_StreamSampler(items()), drop_last=True,
                        num_workers=opts.num_workers, generator=gen, pin_memory=rt.device.type == "cuda",
                        prefetch_factor=4 if opts.num_workers > 0 else None,
                        worker_init_fn=_leave_stop_signals_to_the_trainer if opts.num_workers > 0 else None)
    done = skip
    for batch in loader:
        done += 1
        yield epoch, done, batch
        if done == n_batches:
            epoch, done = epoch + 1, 0


def _leave_stop_signals_to_the_trainer(_worker_id: int) -> None:
    """Data workers ignore SIGTERM/SIGINT. A farm's cancel (or Ctrl-C) signals the whole process
    group; a worker that died of it first would crash the trainer before it could save. The
    trainer stops cleanly (``_StopSignal``) and then shuts its workers down itself."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _mix(*values: int) -> int:
    """A deterministic 63-bit seed from small integers (not Python's salted hash)."""
    h = 0x9E3779B97F4A7C15
    for v in values:
        h = ((h ^ (v & 0xFFFFFFFFFFFFFFFF)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
        h ^= h >> 31
    return h & 0x7FFFFFFFFFFFFFFF


def step_seed(seed: int, step: int, rank: int) -> int:
    return _mix(seed, step, rank, 0x5EED)


# --------------------------------------------------------------------------------------------
# Checkpoints, logs, export


def _task_checkpoint(task: Any, opts: TrainOptions, config: LDMVFIConfig, step: int, data_pos: dict[str, int]
                     ) -> dict[str, Any]:
    state = task.state()
    return {
        "format": FORMAT, "version": VERSION, "stage": task.stage, "step": step, "seed": opts.seed,
        "config": config.to_official(), "train": _plain(opts.as_record()),
        "model": state["model"], "discriminator": state.get("discriminator"), "ema": state.get("ema"),
        "optimizers": state["optimizers"], "data": dict(data_pos), "rng": rng_snapshot(),
        "codebook_usage": state.get("codebook_usage"), "lr": task.lr,
    }


def checkpoint_rate(ckpt: Mapping[str, Any]) -> float | None:
    """The learning rate a checkpoint was trained at (older checkpoints: from its options and
    its batch size and process count)."""
    if ckpt.get("lr"):
        return float(ckpt["lr"])
    train, data = ckpt.get("train") or {}, ckpt.get("data") or {}
    if train.get("lr"):
        return float(train["lr"])
    optim = STAGE1_OPTIM if ckpt.get("stage") == 1 else STAGE2_OPTIM
    base = train.get("base_lr") or optim.base_lr
    if "batch_size" not in data or "world_size" not in data:
        return None
    return float(base) * int(data["batch_size"]) * int(data["world_size"])


def _warn_changed_rate(ckpt: Mapping[str, Any], path: Path | None, opts: TrainOptions, task: Any,
                       world_size: int) -> None:
    """The default rate scales with batch size x processes, so resuming on another number of GPUs
    silently changes it (a 2 -> 4 GPU resume doubled it and cost 1.6 dB in session 7). Say so
    unless --lr chose the rate."""
    before = checkpoint_rate(ckpt)
    if opts.lr is not None or before is None or math.isclose(before, task.lr, rel_tol=1e-6):
        return
    data = ckpt.get("data") or {}
    warnings.warn(
        f"resuming {path} at learning rate {task.lr:g} (batch {opts.batch_size} x {world_size} processes); "
        f"it was trained at {before:g} (batch {data.get('batch_size')} x {data.get('world_size')}): "
        f"pass --lr {before:g} to keep its rate", RuntimeWarning, stacklevel=2)


def _plain(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    if obj is None or isinstance(obj, bool | int | float | str):
        return obj
    return str(obj)


class _JsonLog:
    def __init__(self, path: Path | None) -> None:
        self.path = path
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, record: Mapping[str, Any]) -> None:
        if self.path is None:
            return
        with open(self.path, "a") as f:
            f.write(json.dumps(record, sort_keys=False) + "\n")


def export_weights(config: LDMVFIConfig, state: Mapping[str, Tensor], path: str | os.PathLike[str], *,
                   weights_dtype: torch.dtype = torch.float32, **metadata: str) -> Path:
    """Write inference weights (``state``: inference key names) as our safetensors file.

    Keys the state lacks (the U-Net of a stage-1 run) keep the fresh model's values.
    ``weights_dtype``: storage type of the parameters (``model.export.save_safetensors``)."""
    from ldmvfi_core.model.export import save_safetensors

    model = LatentDiffusionVFI(config)
    own = model.state_dict()
    unknown = sorted(set(state) - set(own))
    if unknown:
        raise ValueError(f"export: unexpected tensor {unknown[0]!r} for this config")
    if not any(k.startswith(UNET_PREFIX) for k in state):
        warnings.warn("exporting a stage-1 run: the U-Net in the file is untrained", RuntimeWarning, stacklevel=2)
    for k, v in state.items():
        if tuple(v.shape) != tuple(own[k].shape):
            raise ValueError(f"export: {k} has shape {tuple(v.shape)}, the config expects {tuple(own[k].shape)}")
        own[k].copy_(v.to(own[k].dtype))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_safetensors(model, path, weights_dtype=weights_dtype, **metadata)
    return path


def checkpoint_inference_state(state: Mapping[str, Any]) -> dict[str, Tensor]:
    """Inference tensors of a training checkpoint: its model with the EMA U-Net swapped in."""
    out = dict(state["model"])
    if state.get("ema"):
        out.update(state["ema"]["shadow"])
    return out


def export_checkpoint(ckpt: str | os.PathLike[str], path: str | os.PathLike[str], *,
                      weights_dtype: torch.dtype = torch.float32) -> Path:
    """Convert a training checkpoint into the inference safetensors file."""
    state = load_checkpoint(ckpt)
    config = LDMVFIConfig.from_official(state["config"])
    return export_weights(config, checkpoint_inference_state(state), path, weights_dtype=weights_dtype,
                          stage=str(state["stage"]), training_step=str(state["step"]))


# --------------------------------------------------------------------------------------------
# The loop


class _StopSignal:
    """Turns SIGTERM/SIGINT into a clean stop (checkpoint, then exit) while training runs."""

    def __init__(self) -> None:
        self.requested = False
        self._old: dict[int, Any] = {}

    def __enter__(self) -> _StopSignal:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:  # a second signal: give up at once
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc: object) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


def _resolve_resume(opts: TrainOptions) -> Path | None:
    existing = list_checkpoints(opts.out)
    if opts.resume is None:
        if existing:
            raise ValueError(f"{opts.out} already has checkpoints (newest step {existing[-1][0]}): "
                             "pass --resume to continue, or choose another --out")
        return None
    if opts.resume == "auto":
        return latest_checkpoint(opts.out)
    return Path(opts.resume)


def run_training(opts: TrainOptions, dataset: Any = None, *, started: float | None = None) -> dict[str, Any]:
    """Train one slice. Returns ``{"step", "stop" ("steps"|"time"|"signal"), "checkpoint", "export"}``."""
    started = time.perf_counter() if started is None else started
    rt = setup_runtime(opts.device, opts.precision)
    try:
        with _StopSignal() as stop_signal:
            return _run(opts, dataset, rt, started, stop_signal)
    finally:
        rt.close()


def _run(opts: TrainOptions, dataset: Any, rt: Runtime, started: float, stop_signal: _StopSignal) -> dict[str, Any]:
    out = Path(opts.out)
    resume_path = _resolve_resume(opts)
    ckpt = load_checkpoint(resume_path) if resume_path is not None else None
    if ckpt is not None:
        if ckpt["stage"] != opts.stage:
            raise ValueError(f"{resume_path} is a stage-{ckpt['stage']} checkpoint, this is --stage {opts.stage} "
                             "(use another --out, and --init-from for stage 2)")
        config = LDMVFIConfig.from_official(ckpt["config"])
        if opts.config is not None and model_config(opts.config) != config:
            raise ValueError(f"--config {opts.config} differs from the config in {resume_path}")
    else:
        config = model_config(opts.config or "small")

    task = build_task(opts, config, rt, fresh=ckpt is None)
    step = 0
    data_pos = {"epoch": 0, "batch_in_epoch": 0, "batch_size": opts.batch_size, "world_size": rt.world_size}
    ramp_steps = 0
    if ckpt is not None:
        task.load_state(ckpt)
        step = int(ckpt["step"])
        data_pos = _resume_position(ckpt["data"], opts.batch_size, rt.world_size)
        if not ckpt.get("optimizers"):  # a carried (slim) checkpoint: Adam starts from nothing
            ramp_steps = opts.rewarm_steps
        if rt.is_main:
            _warn_changed_rate(ckpt, resume_path, opts, task, rt.world_size)
    del ckpt
    decay_start, decay_end = opts.lr_decay if opts.lr_decay else (None, None)
    schedule = RateSchedule(task.lr, ramp_start=step, ramp_steps=ramp_steps, decay_start=decay_start,
                            decay_end=decay_end, final=opts.lr_final)

    log = _JsonLog(out / LOG_NAME if rt.is_main else None)
    multiple = config.autoencoder.downscale * config.autoencoder.window
    if opts.crop % multiple:
        raise ValueError(f"--crop {opts.crop} is not a multiple of {multiple} (this config's frame multiple)")
    log.write({"event": "start", "stage": opts.stage, "step": step, "time": time.time(),
               "resumed_from": str(resume_path) if resume_path else None, "world_size": rt.world_size,
               "device": str(rt.device), "lr": task.lr, "init_from": getattr(task, "init_loaded", []),
               "rewarm_until": schedule.ramp_until, "options": _plain(opts.as_record())})

    result: dict[str, Any] = {"step": step, "stop": "steps", "checkpoint": None, "export": None}
    save_secs = 5.0 + sum(p.numel() for p in task.model.parameters()) * 16 / 200e6  # guess until measured

    def save(step_now: int) -> None:
        nonlocal save_secs
        t0 = time.perf_counter()
        if rt.is_main:
            path = save_checkpoint(_task_checkpoint(task, opts, config, step_now, data_pos),
                                   checkpoint_path(out, step_now))
            prune_checkpoints(out, opts.keep)
            result["checkpoint"] = str(path)
        rt.barrier()
        save_secs = time.perf_counter() - t0

    deadline = started + opts.time_limit if opts.time_limit else math.inf
    if step < opts.steps:
        if dataset is None:
            dataset = open_dataset(opts)
        batches = _epoch_batches(dataset, opts, rt, data_pos["epoch"], data_pos["batch_in_epoch"])
        step_times: list[float] = []
        sums: dict[str, Tensor] = {}
        interval_steps, interval_start = 0, time.perf_counter()
        last_saved = step
        if time.perf_counter() + save_secs > deadline:
            result["stop"] = "time"
        while result["stop"] != "time" and step < opts.steps:
            waited_from = time.perf_counter()
            epoch, done_in_epoch, batch = next(batches)
            frames, extras = (batch[0], batch[1:]) if isinstance(batch, (list, tuple)) else (batch, ())
            frames = frames.to(rt.device, dtype=torch.float32, non_blocking=True)
            extras = tuple(x.to(rt.device, non_blocking=True) for x in extras)  # e.g. the flow teacher
            torch.manual_seed(step_seed(opts.seed, step, rt.rank))
            schedule.apply(task.optimizers().values(), step)
            t0 = time.perf_counter()
            logs = task.train_step(frames, step, *extras)
            # Seconds this step waited for its batch: above ~0 the data workers, not the GPU, set the pace.
            logs["data_wait_s"] = torch.tensor(t0 - waited_from)
            step += 1
            data_pos.update(epoch=epoch, batch_in_epoch=done_in_epoch)
            for k, v in logs.items():
                sums[k] = sums[k] + v.detach() if k in sums else v.detach().clone()
            interval_steps += 1
            if rt.device.type == "cuda":
                torch.cuda.synchronize(rt.device)
            now = time.perf_counter()
            step_times.append(now - t0)
            if step % opts.log_every == 0 or step == opts.steps:
                _write_log(log, rt, opts, task, step, sums, interval_steps, now - interval_start, now - started)
                sums, interval_steps, interval_start = {}, 0, now
            recent = step_times[-20:]
            est_step = 1.25 * (recent[-1] if len(recent) < 3 else max(statistics.median(recent), recent[-1]))
            out_of_time = now + est_step + save_secs + 1.0 > deadline
            # Every rank stops at the same step; the reason is the same on all of them too.
            time_up = rt.any_true(out_of_time)
            signalled = rt.any_true(stop_signal.requested)
            stop = time_up or signalled
            if stop:
                result["stop"] = "time" if time_up else "signal"
            if stop or step % opts.ckpt_every == 0 or step >= opts.steps:
                if interval_steps:
                    _write_log(log, rt, opts, task, step, sums, interval_steps, now - interval_start,
                               now - started)
                    sums, interval_steps, interval_start = {}, 0, time.perf_counter()
                save(step)
                last_saved = step
            if stop:
                break
        if last_saved != step:
            save(step)
    result["step"] = step
    if result["checkpoint"] is None and rt.is_main:
        latest = latest_checkpoint(out)
        result["checkpoint"] = str(latest) if latest else None
    if opts.export and rt.is_main:
        result["export"] = str(export_weights(config, task.inference_state(), opts.export,
                                              weights_dtype=dtype_named(opts.export_dtype),
                                              stage=str(opts.stage), training_step=str(step)))
    log.write({"event": "end", "step": step, "stop": result["stop"], "time": time.time(),
               "elapsed_s": round(time.perf_counter() - started, 3), "checkpoint": result["checkpoint"],
               "export": result["export"]})
    rt.barrier()
    return result


def _resume_position(saved: Mapping[str, int], batch_size: int, world_size: int) -> dict[str, int]:
    """Where to continue in the data; rescaled when the batch size or process count changed."""
    epoch, done = int(saved["epoch"]), int(saved["batch_in_epoch"])
    old = int(saved["batch_size"]) * int(saved["world_size"])
    new = batch_size * world_size
    if old != new:
        done = (done * old) // new
    return {"epoch": epoch, "batch_in_epoch": done, "batch_size": batch_size, "world_size": world_size}


def _write_log(log: _JsonLog, rt: Runtime, opts: TrainOptions, task: Any, step: int, sums: Mapping[str, Tensor],
               n: int, seconds: float, elapsed: float) -> None:
    if not sums or n == 0:
        return
    keys = sorted(sums)
    values = rt.mean(torch.stack([sums[k].float().to(rt.device) for k in keys]) / n).tolist()
    record: dict[str, Any] = {"step": step, "stage": opts.stage}
    record.update({k: round(v, 7) for k, v in zip(keys, values, strict=True)})
    record.update({
        "lr": next(iter(task.optimizers().values())).param_groups[0]["lr"],  # the rate in effect
        "images_per_s": round(n * opts.batch_size * rt.world_size / max(seconds, 1e-9), 3),
        "s_per_step": round(seconds / n, 4),
        "elapsed_s": round(elapsed, 2),
        "time": time.time(),
    })
    log.write(record)


# --------------------------------------------------------------------------------------------
# Command line


def build_parser() -> argparse.ArgumentParser:
    d = TrainOptions(stage=1, out="")
    loss = Stage1Loss()
    p = argparse.ArgumentParser(
        prog="ldmvfi train",
        description="Train LDMVFI in resumable slices: stage 1 = VQ-FIGAN autoencoder, stage 2 = U-Net.",
    )
    p.add_argument("--stage", type=int, choices=(1, 2), required=True)
    p.add_argument("--config", help="tiny | small | released | official YAML/JSON (default: the checkpoint's, "
                   "else small)")
    p.add_argument("--data", help="training cache folder (ldmvfi_core.train.data.TripletDataset)")
    p.add_argument("--out", required=True, help="run folder: checkpoints/, train_log.jsonl")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="per process (default %(default)s)")
    p.add_argument("--crop", type=int, default=d.crop, help="frame side the dataset yields (default %(default)s)")
    p.add_argument("--lr", type=float, help="absolute learning rate (default: base lr x batch x processes)")
    p.add_argument("--base-lr", type=float,
                   help=f"per-sample learning rate (default {STAGE1_OPTIM.base_lr} stage 1, "
                        f"{STAGE2_OPTIM.base_lr} stage 2, as the official configs)")
    p.add_argument("--steps", "--max-steps", dest="steps", type=int, default=d.steps,
                   help="total optimiser steps to reach (default %(default)s)")
    p.add_argument("--time-limit", type=float, help="seconds: stop (with a checkpoint) before this much time")
    p.add_argument("--resume", nargs="?", const="auto",
                   help="continue from the newest checkpoint in --out (start fresh if none), or from PATH")
    p.add_argument("--init-from", help="starting weights: a stage-1 checkpoint for stage 2, or a "
                   ".safetensors/.ckpt model")
    p.add_argument("--device", help="cuda, cuda:1, cpu (default: cuda if available)")
    p.add_argument("--precision", choices=("bf16", "fp32"), default=d.precision)
    p.add_argument("--export", help="write the inference weights (.safetensors) at the end")
    p.add_argument("--export-only", action="store_true", help="only convert the checkpoint to --export")
    p.add_argument("--export-dtype", choices=("float32", "float16"), default="float32",
                   help="storage type of the exported parameters (float16 halves the file; buffers stay float32)")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--num-workers", type=int, default=d.num_workers)
    p.add_argument("--ckpt-every", type=int, default=d.ckpt_every)
    p.add_argument("--log-every", type=int, default=d.log_every)
    p.add_argument("--keep", type=int, default=d.keep, help="checkpoints kept (0: all)")
    p.add_argument("--grad-clip", type=float, default=d.grad_clip, help="max gradient norm (0: off)")
    p.add_argument("--ema-decay", type=float, default=d.ema_decay, help="stage 2")
    p.add_argument("--disc-start", type=int, default=loss.disc_start, help="stage 1")
    p.add_argument("--disc-weight", type=float, default=loss.disc_weight, help="stage 1")
    p.add_argument("--perceptual-weight", type=float, default=loss.perceptual_weight, help="stage 1")
    p.add_argument("--codebook-weight", type=float, default=loss.codebook_weight, help="stage 1")
    p.add_argument("--codebook-restart", type=int, default=loss.codebook_restart_every,
                   help="stage 1: move unused codes onto batch latents every N steps (0: off; default %(default)s)")
    p.add_argument("--flow-teacher", type=float, default=loss.flow_teacher_weight,
                   help="stage 1: weight (per px) pulling the decoder's offsets towards DIS flow (0: off, "
                        "the official loss; needs OpenCV)")
    p.add_argument("--flow-teacher-until", type=int, default=loss.flow_teacher_until,
                   help="stage 1: drop the flow-teacher term from this step on (0: never)")
    p.add_argument("--context-dropout", type=float, default=loss.context_dropout,
                   help="stage 1: share of samples decoded with another sample's neighbour features, so "
                        "they decode well only through their own latent (0: off, the official training)")
    p.add_argument("--offset-smoothness", type=float, default=loss.offset_smoothness_weight,
                   help="stage 1: weight of an edge-aware smoothness term on the decoder's tap offsets "
                        "(px per px; 0: off, the official loss)")
    p.add_argument("--perceptual", choices=("auto", "on", "off"), default=d.perceptual,
                   help="stage 1 EfficientNet-Lite0 term: auto = if installed")
    p.add_argument("--compile", nargs="?", const="inductor", default=d.compile, metavar="BACKEND",
                   help="torch.compile the networks being trained (default backend inductor; the first "
                        "steps compile, a minute or more on a GPU)")
    p.add_argument("--rewarm-steps", type=int, default=d.rewarm_steps,
                   help="after resuming from a checkpoint without optimiser state (a carried one), ramp the "
                        "learning rate up linearly over this many steps (0: off)")
    p.add_argument("--lr-decay", type=int, nargs=2, metavar=("START", "END"), default=d.lr_decay,
                   help="decay the learning rate linearly from step START to --lr-final at step END "
                        "(global steps: slices that resume in between continue it)")
    p.add_argument("--lr-final", type=float, default=d.lr_final, help="the rate at the end of --lr-decay")
    p.add_argument("--mattes", type=float, default=d.mattes,
                   help="share of training triplets given black letterbox or pillarbox bars, so that "
                        "in-betweens keep such bars at 0 (e.g. 0.1; 0: off)")
    p.add_argument("--channels-last", action="store_true", default=d.channels_last,
                   help="store the networks channels-last (NHWC): cuDNN's bf16 convolutions then need no "
                        "layout transposes (faster on GPUs; same values up to summation order)")
    return p


def options_from_args(args: argparse.Namespace) -> TrainOptions:
    loss = replace(Stage1Loss(), disc_start=args.disc_start, disc_weight=args.disc_weight,
                   perceptual_weight=args.perceptual_weight, codebook_weight=args.codebook_weight,
                   codebook_restart_every=args.codebook_restart, flow_teacher_weight=args.flow_teacher,
                   flow_teacher_until=args.flow_teacher_until, context_dropout=args.context_dropout,
                   offset_smoothness_weight=args.offset_smoothness)
    return TrainOptions(
        stage=args.stage, out=args.out, config=args.config, data=args.data, batch_size=args.batch_size,
        crop=args.crop, lr=args.lr, base_lr=args.base_lr, steps=args.steps, time_limit=args.time_limit,
        resume=args.resume, init_from=args.init_from, device=args.device, precision=args.precision,
        export=args.export, export_dtype=args.export_dtype, seed=args.seed, num_workers=args.num_workers,
        ckpt_every=args.ckpt_every,
        log_every=args.log_every, keep=args.keep, grad_clip=args.grad_clip, ema_decay=args.ema_decay,
        loss=loss, perceptual=args.perceptual, compile=args.compile, channels_last=args.channels_last,
        rewarm_steps=args.rewarm_steps, mattes=args.mattes,
        lr_decay=tuple(args.lr_decay) if args.lr_decay else None, lr_final=args.lr_final,
    )


def main_train(argv: list[str] | None = None) -> int:
    """``ldmvfi train ...``: returns the exit status (2 for errors the user can fix)."""
    started = time.perf_counter()
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.export_only:
            if not args.export:
                raise ValueError("--export-only needs --export PATH.safetensors")
            ckpt = Path(args.resume) if args.resume not in (None, "auto") else latest_checkpoint(args.out)
            if ckpt is None:
                raise ValueError(f"no checkpoint in {args.out}")
            written = export_checkpoint(ckpt, args.export, weights_dtype=dtype_named(args.export_dtype))
            print(f"wrote {written} from {ckpt}")
            return 0
        result = run_training(options_from_args(args), started=started)
    except (ValueError, TrainCheckpointError, FileNotFoundError, ImportError) as err:
        print(f"ldmvfi train: {err}", file=sys.stderr)
        return 2
    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":  # torchrun --nproc_per_node N -m ldmvfi_core.train.loop ...
    sys.exit(main_train())
