# SPDX-License-Identifier: MIT
"""``ldmvfi train --compile``: the trained networks trace whole and train exactly as in eager.

Counting backends stand in for inductor: they record the graphs, so a graph break (which would
split a network into pieces that recompile) shows up as extra graphs, and run each one as it is
(stage 2) or through AOTAutograd (stage 1), so results must be bitwise those of eager.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
import torch._dynamo

from ldmvfi_core.train.checkpoint import latest_checkpoint, load_checkpoint
from ldmvfi_core.train.command import build_parser, options_from_args
from ldmvfi_core.train.loop import run_training
from tests.unit.test_train_loop import FixedTriplets, _opts, _tensors_equal
from tests.unit.test_train_loop import micro_config as micro_config

BACKEND = "ldmvfi_test_counting"
GRAPHS: list[torch.fx.GraphModule] = []


def _counting(gm: torch.fx.GraphModule, example_inputs: list[torch.Tensor]) -> Callable[..., object]:
    GRAPHS.append(gm)
    return gm.forward


if BACKEND not in torch._dynamo.list_backends(exclude_tags=()):
    torch._dynamo.register_backend(_counting, name=BACKEND)


@pytest.fixture
def graphs() -> Iterator[list[torch.fx.GraphModule]]:
    torch._dynamo.reset()
    GRAPHS.clear()
    yield GRAPHS
    torch._dynamo.reset()


def _train(stage: int, out: Path, config: str, compile: str = "", size: int = 64, **kw: object) -> dict[str, object]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run_training(_opts(stage, out, config, steps=2, perceptual="off", compile=compile, crop=size, **kw),
                     FixedTriplets(4, size))
    return load_checkpoint(latest_checkpoint(out))  # type: ignore[arg-type]


def _counting_aot_eager(gm: torch.fx.GraphModule, example_inputs: list[torch.Tensor]) -> Callable[..., object]:
    GRAPHS.append(gm)
    return torch._dynamo.lookup_backend("aot_eager")(gm, example_inputs)


COUNTING_AOT = "ldmvfi_test_counting_aot_eager"
if COUNTING_AOT not in torch._dynamo.list_backends(exclude_tags=()):
    torch._dynamo.register_backend(_counting_aot_eager, name=COUNTING_AOT)


def test_stage1_through_aot_autograd_trains_as_eager_in_one_graph_per_network(
        tmp_path: Path, micro_config: str, graphs: list[torch.fx.GraphModule]) -> None:
    """``aot_eager`` takes inductor's route up to code generation: AOTAutograd's joint forward and
    backward graph, with the BatchNorm running statistics as graph mutations. One sample of 64 px
    puts a single window in the middle block's attention map: there the window merge returned a
    view the GroupNorm after it refused on the CPU (found with the SMALL config, one 256-px
    sample), until the merged map was made contiguous. Counting the graphs on the way shows a graph
    break, which would split a network into pieces that recompile."""
    eager = _train(1, tmp_path / "eager", micro_config, size=64, batch_size=1)
    compiled = _train(1, tmp_path / "compiled", micro_config, compile=COUNTING_AOT, size=64, batch_size=1)
    assert len(graphs) == 2  # the encoder's graph and the decoder's, compiled once for both steps
    for key in ("model", "optimizers", "step"):
        _tensors_equal(compiled[key], eager[key], key)  # same keys too: compiling in place adds no prefix


def test_stage2_compiled_trains_as_eager_in_one_graph_per_network(
        tmp_path: Path, micro_config: str, graphs: list[torch.fx.GraphModule]) -> None:
    _train(1, tmp_path / "stage1", micro_config)
    init = str(latest_checkpoint(tmp_path / "stage1"))
    eager = _train(2, tmp_path / "eager", micro_config, init_from=init)
    compiled = _train(2, tmp_path / "compiled", micro_config, compile=BACKEND, init_from=init)
    assert len(graphs) == 2  # the U-Net's graph and the frozen encoder's
    for key in ("model", "ema", "optimizers", "step"):
        _tensors_equal(compiled[key], eager[key], key)


def test_compile_flag() -> None:
    parse = build_parser().parse_args
    assert options_from_args(parse(["--stage", "1", "--out", "x"])).compile == ""
    assert options_from_args(parse(["--stage", "1", "--out", "x", "--compile"])).compile == "inductor"
    assert options_from_args(parse(["--stage", "1", "--out", "x", "--compile", "aot_eager"])).compile == "aot_eager"
