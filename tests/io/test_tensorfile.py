"""The safetensors structure check: a whole file passes; each way of breaking one is one line naming it.

The fault cases where loaders meet such files live in
tests/reliability/test_corrupt_checkpoints.py; here the check itself.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from vlmscope.errors import ModelError, NotFound, TrainingError
from vlmscope.io.tensorfile import check_safetensors, check_safetensors_dir


@pytest.fixture
def good(tmp_path: Path) -> Path:
    f = tmp_path / "good.safetensors"
    save_file({"a": torch.arange(6, dtype=torch.float32).reshape(2, 3), "b": torch.ones(4, dtype=torch.int64)}, str(f))
    return f


def _header_len(data: bytes) -> int:
    return struct.unpack("<Q", data[:8])[0]


CORRUPTIONS: dict[str, Callable[[bytes], bytes]] = {
    "zero-length": lambda d: b"",
    "shorter-than-length-field": lambda d: d[:5],
    "cut-in-header": lambda d: d[:20],
    "cut-in-data": lambda d: d[:-7],
    "trailing-garbage": lambda d: d + b"\0" * 16,
    "header-not-json": lambda d: d[:8] + b"#" * _header_len(d) + d[8 + _header_len(d) :],
    "header-length-huge": lambda d: struct.pack("<Q", 1 << 40) + d[8:],
    "offsets-lie": lambda d: d.replace(b'"data_offsets":[0,32]', b'"data_offsets":[0,36]'),
    "not-safetensors": lambda d: b"PK\x03\x04 this is a zip, or a pickle, or anything else" * 4,
}


def test_whole_file_passes(good: Path) -> None:
    check_safetensors(good)
    check_safetensors_dir(good.parent)


@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
def test_corrupt_file_is_one_line_naming_it(good: Path, name: str) -> None:
    data = good.read_bytes()
    bad = CORRUPTIONS[name](data)
    assert bad != data, "the corruption changed nothing"
    good.write_bytes(bad)
    with pytest.raises(ModelError) as e:
        check_safetensors(good)
    msg = str(e.value)
    assert msg.startswith(f"{good}: corrupt safetensors file") and "\n" not in msg


def test_error_class_is_the_callers(good: Path) -> None:
    good.write_bytes(b"")
    with pytest.raises(TrainingError):
        check_safetensors(good, TrainingError)


def test_dir_check_follows_the_index(good: Path) -> None:
    d = good.parent
    (d / "model.safetensors.index.json").write_text('{"weight_map": {"a": "good.safetensors", "b": "gone.safetensors"}}')
    with pytest.raises(NotFound, match="gone.safetensors: safetensors shard listed in model.safetensors.index.json"):
        check_safetensors_dir(d)
