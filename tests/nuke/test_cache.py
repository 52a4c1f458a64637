# SPDX-License-Identifier: MIT
"""Cache folders, fingerprints, keys and result states (no Nuke needed)."""

from __future__ import annotations

import os
import struct
import tempfile
from pathlib import Path

import pytest
from ldmvfi_nuke import cache
from ldmvfi_nuke.settings import DEFAULTS, K, settings_from_values


def settings(**changes: object):
    values = dict(DEFAULTS)
    values.update({K.INPUT_FIRST: 1, K.INPUT_LAST: 3})
    values.update(changes)
    return settings_from_values(values)


def test_cache_root() -> None:
    assert cache.cache_root("", {}) == Path(tempfile.gettempdir()) / "ldmvfi_cache"
    assert cache.cache_root("", {"LDMVFI_CACHE": "/shared/cache"}) == Path("/shared/cache")
    assert cache.cache_root(" /knob/wins ", {"LDMVFI_CACHE": "/x"}) == Path("/knob/wins")
    env = {"SHOW": "/shows/abc", "SHOT": "sh010"}
    assert cache.cache_root("$SHOW/cache/${SHOT}", env) == Path("/shows/abc/cache/sh010")
    assert cache.cache_root("~/cache", {}) == Path.home() / "cache"
    with pytest.raises(cache.CacheError, match=r"\$SHOW is not set"):
        cache.cache_root("$SHOW/cache", {})


def test_frame_path_follows_nuke_padding() -> None:
    assert cache.frame_path("/c/a.####.exr", 7) == Path("/c/a.0007.exr")
    assert cache.frame_path("/c/a.####.exr", 12345) == Path("/c/a.12345.exr")
    assert cache.frame_path("/c/a.##.exr", -3) == Path("/c/a.-03.exr")
    assert cache.frame_path("/c/v#/a.####.exr", 1001) == Path("/c/v#/a.1001.exr")  # only the file name
    with pytest.raises(cache.CacheError):
        cache.frame_path("/c/a.exr", 1)


def test_input_dir_is_per_node_and_script(tmp_path: Path) -> None:
    a = cache.input_dir(tmp_path, "/s/shot.nk", "LDMVFI1")
    assert a.parent == tmp_path / "inputs" and a.name.startswith("LDMVFI1-")
    assert a != cache.input_dir(tmp_path, "/s/shot.nk", "LDMVFI2")
    assert a != cache.input_dir(tmp_path, "/s/other.nk", "LDMVFI1")
    assert cache.input_dir(tmp_path, "s", "Group1.LD MV/FI").name.startswith("Group1.LD_MV_FI-")


def exr(strings: dict[str, str], extra: bytes = b"") -> bytes:
    out = struct.pack("<ii", 20000630, 2)
    out += b"channels\0chlist\0" + struct.pack("<i", 3) + b"abc"
    out += b"dataWindow\0box2i\0" + struct.pack("<i", 16) + struct.pack("<4i", -8, -8, 99, 99)
    for name, value in strings.items():
        out += name.encode() + b"\0string\0" + struct.pack("<i", len(value)) + value.encode()
    return out + b"\0" + extra


def test_exr_string_attributes(tmp_path: Path) -> None:
    path = tmp_path / "a.exr"
    path.write_bytes(exr({"nuke/node_hash": "1d15cdf91144c78c", "nuke/version": "13.2v8"}, b"pixels"))
    assert cache.exr_string_attributes(path) == {"nuke/node_hash": "1d15cdf91144c78c", "nuke/version": "13.2v8"}
    path.write_bytes(b"not an exr at all")
    assert cache.exr_string_attributes(path) == {}
    path.write_bytes(exr({"x": "y"})[:30])  # truncated header
    assert cache.exr_string_attributes(path) == {}


def test_fingerprint_prefers_nukes_node_hash(tmp_path: Path) -> None:
    a, b = tmp_path / "a.exr", tmp_path / "b.exr"
    # Same tree hash, different bytes (e.g. a timestamp in the metadata): same fingerprint.
    a.write_bytes(exr({"nuke/node_hash": "abc", "time": "10:00"}, b"p"))
    b.write_bytes(exr({"nuke/node_hash": "abc", "time": "10:01"}, b"p"))
    assert cache.file_fingerprint(a) == cache.file_fingerprint(b) == "nuke:abc"
    # Without it, the content decides (mtime does not).
    a.write_bytes(b"same")
    b.write_bytes(b"same")
    os.utime(b, (1, 1))
    assert cache.file_fingerprint(a) == cache.file_fingerprint(b)
    assert cache.file_fingerprint(a).startswith("sha256:")
    b.write_bytes(b"different")
    assert cache.file_fingerprint(a) != cache.file_fingerprint(b)


def test_input_fingerprints_name_a_missing_frame(tmp_path: Path) -> None:
    for frame in (1, 3):
        (tmp_path / f"src.{frame:04d}.exr").write_bytes(b"x")
    with pytest.raises(cache.CacheError, match=r"src\.0002\.exr: input frame 2 was not written"):
        cache.input_fingerprints(tmp_path / "src.####.exr", 1, 3)


def test_keys() -> None:
    d = cache.settings_digest(settings())
    assert d == cache.settings_digest(settings())
    assert d == cache.settings_digest(settings(device="cpu"))  # the card does not change the frames
    assert d != cache.settings_digest(settings(steps=20))
    assert d != cache.settings_digest(settings(), upstream=["/c/abc"])
    k = cache.cache_key(d, ["nuke:1", "nuke:2"])
    assert len(k) == 16 and k == cache.cache_key(d, ["nuke:1", "nuke:2"])
    assert k != cache.cache_key(d, ["nuke:1", "nuke:3"])
    assert k != cache.cache_key(d, ["nuke:2", "nuke:1"])


def test_model_file_identity(tmp_path: Path) -> None:
    model = tmp_path / "m.safetensors"
    model.write_bytes(b"1")
    before = cache.settings_digest(settings(checkpoint=str(model)))
    model.write_bytes(b"22")  # replaced by another file of the same name
    assert cache.settings_digest(settings(checkpoint=str(model))) != before
    assert cache.model_identity("") == "default"
    # The same file seen through another mount point is the same model.
    other = tmp_path / "mount" / "m.safetensors"
    other.parent.mkdir()
    other.write_bytes(b"22")
    os.utime(other, (model.stat().st_atime, model.stat().st_mtime))
    assert cache.model_identity(str(other)) == cache.model_identity(str(model))


def test_ocio_config_enters_by_content(tmp_path: Path) -> None:
    here, there = tmp_path / "a" / "config.ocio", tmp_path / "b" / "config.ocio"
    for path in (here, there):
        path.parent.mkdir()
        path.write_text("ocio_profile_version: 2\n")

    def digest(config: Path) -> str:
        values = dict(DEFAULTS)
        values.update({K.INPUT_FIRST: 1, K.INPUT_LAST: 3, K.TRANSFER: "ocio", K.OCIO_TO: "disp"})
        return cache.settings_digest(settings_from_values(values, working_space="lin", ocio_config=str(config)))

    assert digest(here) == digest(there)  # artist and farm mount the config differently
    there.write_text("ocio_profile_version: 2\n# edited\n")
    assert digest(here) != digest(there)


def test_result_states(tmp_path: Path) -> None:
    s = settings()
    folder = tmp_path / "k"
    assert cache.result_state(None, "d") == (cache.ResultState.MISSING, None)
    assert cache.result_state(folder, "d")[0] is cache.ResultState.MISSING
    job = cache.Job(digest="d", first=1, last=3)
    cache.write_job(folder, job, s, ["python3", "-m", "ldmvfi_core.cli"])
    assert cache.read_job(folder) == job
    assert cache.result_state(folder, "other") == (cache.ResultState.STALE, job)
    assert cache.result_state(folder, "d") == (cache.ResultState.INCOMPLETE, job)
    for frame in (1, 2, 3):
        (folder / f"ldmvfi.{frame:04d}.exr").write_bytes(b"x")
    assert cache.result_state(folder, "d") == (cache.ResultState.COMPLETE, job)
    assert (folder / cache.MARKER_FILE).is_file()  # recorded when the frames turned up
    (folder / "ldmvfi.0002.exr").unlink()  # someone cleaned up by hand
    assert cache.result_state(folder, "d")[0] is cache.ResultState.INCOMPLETE
