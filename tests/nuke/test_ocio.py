# SPDX-License-Identifier: MIT
"""Which OCIO config a script uses, and the colourspace names in it."""

from __future__ import annotations

from pathlib import Path

from ldmvfi_nuke import ocio

CONFIG = """\
ocio_profile_version: 2
roles:
  scene_linear: lin_rec709   # a role, not a colourspace
displays:
  sRGB:
    - !<View> {name: Film, colorspace: srgb_display}
colorspaces:
  - !<ColorSpace>
    name: lin_rec709
    family: Linear
    description: |
      name: not this one
  - !<ColorSpace>
    name: "ACES - ACEScg"
  - !<ColorSpace> {name: srgb_display, family: Display}
named_transforms:
  - !<NamedTransform>
    name: log_to_lin
looks:
  - !<Look>
    name: warm
"""


def test_colourspace_names_from_config_text() -> None:
    assert ocio.colourspaces_in_config_text(CONFIG) == ["lin_rec709", "ACES - ACEScg", "srgb_display", "log_to_lin"]


def test_colourspace_names_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "config.ocio"
    path.write_text(CONFIG)
    assert ocio.colourspaces_in_config(str(path))[:2] == ["lin_rec709", "ACES - ACEScg"]
    assert ocio.colourspaces_in_config(str(tmp_path / "missing.ocio")) == []
    assert ocio.colourspaces_in_config("") == []


def test_config_path(tmp_path: Path) -> None:
    shipped = tmp_path / "nuke" / "plugins" / "OCIOConfigs" / "configs" / "aces_1.2" / "config.ocio"
    shipped.parent.mkdir(parents=True)
    shipped.write_text(CONFIG)
    nuke_dir = str(tmp_path / "nuke")
    env = {"OCIO": "/env/config.ocio", "SHOW": "/show"}
    assert ocio.config_path("custom", "/studio/config.ocio", env, nuke_dir) == "/studio/config.ocio"
    assert ocio.config_path("custom", "$SHOW/config.ocio", env, nuke_dir) == "/show/config.ocio"
    assert ocio.config_path("aces_1.2", "", env, nuke_dir) == str(shipped)
    assert ocio.config_path("nuke-default", "", env, nuke_dir) == "/env/config.ocio"  # not shipped here: $OCIO
    assert ocio.config_path("nuke-default", "", {}, nuke_dir) == ""  # unknown: the runner's default
