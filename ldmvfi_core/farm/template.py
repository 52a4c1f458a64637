# SPDX-License-Identifier: MIT
"""The shipped Open Job Description job templates and their GPU / CPU variants.

Open Job Description host requirements are fixed text: a job parameter cannot switch them on or
off. So there are two templates. ``farm/retime_exr/template.yaml`` is written by hand and is the
source: its Render step requires ``amount.worker.gpu >= 1``. ``farm/retime_exr_cpu/template.yaml``
is generated from it (:func:`cpu_variant`: the GPU amount removed, ``Device`` defaulting to ``cpu``);
a test keeps the shipped copy equal to the generated one. ``ldmvfi farm bundle`` writes one or the
other (``--no-gpu``) into the job bundle.
"""

from __future__ import annotations

from importlib import resources
from importlib.abc import Traversable
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped,unused-ignore]

GPU_AMOUNT = "amount.worker.gpu"
GPU_TEMPLATE = ("retime_exr", "template.yaml")
CPU_TEMPLATE = ("retime_exr_cpu", "template.yaml")

_CPU_HEADER = """\
# SPDX-License-Identifier: MIT
#
# GENERATED from ../retime_exr/template.yaml by `ldmvfi farm template --no-gpu`: do not edit.
# The CPU variant of the LDMVFI retime job: no GPU host requirement, Device defaults to cpu.
# Read ../retime_exr/template.yaml for how the job works.
"""


def templates_root() -> Traversable:
    """The folder of the shipped templates: package data when installed, ``farm/`` in a checkout."""
    packaged = resources.files("ldmvfi_core").joinpath("farm_templates")
    if packaged.joinpath(*GPU_TEMPLATE).is_file():
        return packaged
    return Path(__file__).resolve().parents[2] / "farm"


def gpu_template_text() -> str:
    """The hand-written GPU template, verbatim."""
    return templates_root().joinpath(*GPU_TEMPLATE).read_text(encoding="utf-8")


def template_text(gpu: bool = True) -> str:
    """The job template to submit: the GPU template, or its generated CPU variant."""
    source = gpu_template_text()
    return source if gpu else cpu_variant(source)


def template_document(gpu: bool = True) -> dict[str, Any]:
    return dict(yaml.safe_load(template_text(gpu)))


def cpu_variant(gpu_text: str) -> str:
    """The template without the GPU host requirement and with ``Device`` defaulting to ``cpu``."""
    cpu = yaml.safe_load(gpu_text)
    removed = 0
    for step in cpu["steps"]:
        requirements = step.get("hostRequirements")
        if not requirements:
            continue
        amounts = requirements.get("amounts", [])
        kept = [a for a in amounts if a.get("name") != GPU_AMOUNT]
        removed += len(amounts) - len(kept)
        if kept:
            requirements["amounts"] = kept
        else:
            requirements.pop("amounts", None)
        if not requirements:
            del step["hostRequirements"]
    if not removed:
        raise ValueError(f"the GPU template has no {GPU_AMOUNT} host requirement to remove")
    for parameter in cpu["parameterDefinitions"]:
        if parameter["name"] == "Device":
            parameter["default"] = "cpu"
    return _CPU_HEADER + dump_yaml(cpu)


class _BlockDumper(yaml.SafeDumper):
    """Multi-line strings (the embedded scripts) as ``|`` blocks, so the YAML stays readable."""


def _represent_str(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_BlockDumper.add_representer(str, _represent_str)


def dump_yaml(document: Any) -> str:
    return yaml.dump(document, Dumper=_BlockDumper, sort_keys=False, width=1_000_000, allow_unicode=True)
