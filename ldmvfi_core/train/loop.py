# SPDX-License-Identifier: MIT
"""The shared training loop of both stages, run in resumable slices.

``ldmvfi train --stage 1|2 --out DIR --data CACHE [--resume] [--steps N] [--time-limit S]``
(the options: ``command.py``; devices and processes: ``runtime.py``)

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
* ``--ae-ema DECAY`` (stage 1) keeps a moving average of the autoencoder beside it; checkpoints
  carry it, resumed slices continue it, and it is the stage's inference weights (``train/ema.py``);
* ``--export PATH.safetensors`` writes the inference weights at the end (EMA U-Net for stage 2)
  with ``model/export.py::save_safetensors``; ``--export-only`` just converts a checkpoint.

Randomness: every step re-seeds the global RNG from ``(seed, step, rank)`` before it runs, so a
step's diffusion timesteps, noise and any dropout depend only on those three numbers. The data
order is the DistributedSampler permutation of ``(seed, epoch)``; the dataset gets
``set_epoch(epoch)`` if it has it, and its augmentations must depend only on (its seed, epoch,
index) for a resumed run to see the same crops (with worker processes too).
"""

from __future__ import annotations

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
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from ldmvfi_core.config import LDMVFIConfig
from ldmvfi_core.interpolate import compile_autoencoder, dtype_named
from ldmvfi_core.model.checkpoint import AE_PREFIX, UNET_PREFIX
from ldmvfi_core.model.ldmvfi import LatentDiffusionVFI
from ldmvfi_core.train.checkpoint import (
    FORMAT,
    VERSION,
    checkpoint_path,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    prune_checkpoints,
    rng_snapshot,
    save_checkpoint,
)
from ldmvfi_core.train.configs import EMA_DECAY, STAGE1_OPTIM, STAGE2_OPTIM, Stage1Loss, model_config
from ldmvfi_core.train.ema import holds_shadow
from ldmvfi_core.train.quadrants import quadrants, quartered_at
from ldmvfi_core.train.runtime import Runtime, setup_runtime
from ldmvfi_core.train.schedule import RateSchedule

if TYPE_CHECKING:
    from ldmvfi_core.train.synthetic import Resample

LOG_NAME = "train_log.jsonl"


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
    ema_decay: float = EMA_DECAY  # stage 2: the U-Net's average (what ships)
    ae_ema: float | None = None  # stage 1: the autoencoder's average; None: the checkpoint's, else off
    loss: Stage1Loss = field(default_factory=Stage1Loss)
    perceptual: str = "auto"  # auto: use it if installed | on: required | off
    compile: str = ""  # a torch.compile backend for the networks being trained ("inductor"); "": eager
    channels_last: bool = False  # store the networks NHWC (no cuDNN layout transposes around convs)
    rewarm_steps: int = 200  # linear LR ramp after resuming without optimiser state (0: off)
    lr_decay: tuple[int, int] | None = None  # steps (start, end) of a linear decay to lr_final
    lr_final: float | None = None
    mattes: float = 0.0  # share of training items given black letterbox/pillarbox bars
    synthetic_resample: Resample = "bilinear"  # how synthetic triplets sample their stills (train.synthetic)
    quarter_every: int = 0  # every Nth step trains on each crop's four quadrants (train.quadrants; 0: off)

    def as_record(self) -> dict[str, Any]:
        return asdict(self)


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


def _rate(stage: int, lr: float | None, base_lr: float | None, batch_size: int, world_size: int) -> float:
    """``lr`` when given, else the per-sample rate (``base_lr`` or the stage's) x batch x processes."""
    if lr is not None:
        return float(lr)
    base = base_lr if base_lr is not None else (STAGE1_OPTIM if stage == 1 else STAGE2_OPTIM).base_lr
    return float(base) * batch_size * world_size


def _learning_rate(opts: TrainOptions, world_size: int) -> float:
    return _rate(opts.stage, opts.lr, opts.base_lr, opts.batch_size, world_size)


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
                          channels_last=opts.channels_last, ema_decay=opts.ae_ema or 0.0)
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
                             mattes=opts.mattes, resample=opts.synthetic_resample)
    if opts.stage == 1 and (opts.loss.flow_teacher_weight > 0 or opts.loss.flow_centroid_weight > 0):
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
    if "lr" in ckpt:  # written by _task_checkpoint; None: no rate known (train.from_weights)
        return None if ckpt["lr"] is None else float(ckpt["lr"])
    train, data = ckpt.get("train") or {}, ckpt.get("data") or {}
    if train.get("lr") is None and ("batch_size" not in data or "world_size" not in data):
        return None
    return _rate(int(ckpt.get("stage", 1)), train.get("lr"), train.get("base_lr"), int(data.get("batch_size", 0)),
                 int(data.get("world_size", 0)))


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
    """Inference tensors of a training checkpoint: its model with the moving average swapped in
    (stage 2's U-Net; stage 1's autoencoder with ``--ae-ema``)."""
    out = dict(state["model"])
    if state.get("ema"):
        out.update(state["ema"]["shadow"])
    return out


def export_checkpoint(ckpt: str | os.PathLike[str], path: str | os.PathLike[str], *,
                      weights_dtype: torch.dtype = torch.float32,
                      unet_from: str | os.PathLike[str] | None = None) -> Path:
    """Convert a training checkpoint into the inference safetensors file.

    ``unet_from``: a weights file whose U-Net goes beside a stage-1 checkpoint's autoencoder (a
    stage-1 run trains none). For an autoencoder fine-tuned a little from that file's own, whose
    latents the U-Net already knows; the eval says whether it still fits (tools/ship_candidate.py).
    """
    state = load_checkpoint(ckpt)
    config = LDMVFIConfig.from_official(state["config"])
    tensors = checkpoint_inference_state(state)
    metadata = {"stage": str(state["stage"]), "training_step": str(state["step"])}
    if unet_from is not None:
        if any(k.startswith(UNET_PREFIX) for k in tensors):
            raise ValueError(f"--unet-from: {ckpt} is a stage-{state['stage']} checkpoint with a U-Net "
                             "of its own (the option is for stage-1 checkpoints)")
        unet = {k: v for k, v in load_init_weights(unet_from).items() if k.startswith(UNET_PREFIX)}
        if not unet:
            raise ValueError(f"--unet-from {unet_from}: no U-Net weights ({UNET_PREFIX}*) in it")
        tensors.update(unet)
        metadata["unet_from"] = Path(unet_from).name
    return export_weights(config, tensors, path, weights_dtype=weights_dtype, **metadata)


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
    opts = replace(opts, ae_ema=_autoencoder_average(opts, ckpt))

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
    if opts.quarter_every < 0:
        raise ValueError(f"--quarter-every {opts.quarter_every}: give a step interval (1 = every step), or 0 for off")
    if opts.quarter_every and opts.crop % (2 * multiple):
        raise ValueError(f"--quarter-every needs a --crop whose quadrants fit the frame multiple {multiple}: "
                         f"a multiple of {2 * multiple}, not {opts.crop}")
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
            if quartered_at(step, opts.quarter_every):
                frames, extras = quadrants(frames), tuple(quadrants(x) for x in extras)
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


def _autoencoder_average(opts: TrainOptions, ckpt: Mapping[str, Any] | None) -> float | None:
    """The stage-1 average's decay: ``--ae-ema`` when given (0: off), else the resumed checkpoint's,
    so a resumed slice keeps averaging as the run did; None in stage 2, which averages the U-Net."""
    if opts.stage != 1:
        if opts.ae_ema:
            raise ValueError("--ae-ema averages the stage-1 autoencoder; stage 2 averages its U-Net "
                             "(--ema-decay)")
        return None
    if opts.ae_ema is not None:
        if not 0.0 <= opts.ae_ema < 1.0:
            raise ValueError(f"--ae-ema {opts.ae_ema:g}: a decay in [0, 1), e.g. 0.998 (0: off)")
        return opts.ae_ema
    if ckpt is not None and holds_shadow(ckpt.get("ema"), AE_PREFIX):
        return float(ckpt["ema"]["decay"])
    return 0.0


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
    if rt.device.type == "cuda":  # this process's peak so far: how much a larger batch could add
        record["peak_gib"] = round(torch.cuda.max_memory_allocated(rt.device) / 2**30, 2)
    log.write(record)


if __name__ == "__main__":  # torchrun --nproc_per_node N -m ldmvfi_core.train.loop ...
    from ldmvfi_core.train.command import main_train  # the command module imports this one

    sys.exit(main_train())
