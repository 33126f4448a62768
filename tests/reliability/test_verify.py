"""`verify_path` on real tiny stores, datasets and checkpoints: clean ones pass, each kind of damage is one line."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from vlmscope.activations.integrity import FILES_ATTR
from vlmscope.activations.store import write_activations
from vlmscope.errors import NotFound
from vlmscope.verify import detect_kind, verify_path


@pytest.fixture
def store(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    ds = xr.Dataset(
        {"hidden": (("sample", "layer", "dim"), rng.standard_normal((9, 2, 4)).astype(np.float32))},
        coords={"sample": np.array([f"s{i}" for i in range(9)], dtype=object), "layer": [0, 1]},
    )
    return write_activations(tmp_path / "s.zarr", ds, shard_samples=3)


@pytest.fixture
def dataset(tiny_dataset, tmp_path: Path) -> Path:
    return Path(shutil.copytree(tiny_dataset("spatial", 6), tmp_path / "ds"))


@pytest.fixture
def checkpoint(tiny_checkpoint, tmp_path: Path) -> Path:
    return Path(shutil.copytree(tiny_checkpoint("composite"), tmp_path / "ckpt"))


# -- stores ---------------------------------------------------------------------


def test_clean_store_is_ok(store: Path) -> None:
    v = verify_path(store)
    assert (v.kind, v.ok, v.problems) == ("store", True, [])
    assert "9 samples" in v.summary and "hidden" in v.summary


def test_store_problems_each_name_the_shard(store: Path) -> None:
    os.truncate(store / "hidden/c/0/0/0", 5)
    (store / "hidden/c/1/0/0").unlink()
    data = bytearray((store / "hidden/c/2/0/0").read_bytes())
    data[20] ^= 0xFF
    (store / "hidden/c/2/0/0").write_bytes(bytes(data))
    v = verify_path(store)
    text = "\n".join(v.problems)
    assert not v.ok
    assert "shard 0 of 'hidden' (hidden/c/0/0/0) is truncated" in text
    assert "shard 1 of 'hidden' (hidden/c/1/0/0) is missing" in text
    assert "shard 2 of 'hidden' (hidden/c/2/0/0) fails its checksum" in text
    assert all(line.startswith(str(store)) for line in v.problems)


def test_store_without_record_is_decoded_and_noted(store: Path) -> None:
    meta = json.loads((store / "zarr.json").read_text())
    del meta["attributes"][FILES_ATTR]
    (store / "zarr.json").write_text(json.dumps(meta))
    v = verify_path(store)
    assert v.ok and "no record of its files" in v.notes[0]
    data = bytearray((store / "hidden/c/1/0/0").read_bytes())
    data[20] ^= 0xFF
    (store / "hidden/c/1/0/0").write_bytes(bytes(data))
    assert "cannot read shard 1 of 'hidden'" in "\n".join(verify_path(store).problems)


def test_incomplete_store_is_a_problem(store: Path) -> None:
    meta = json.loads((store / "zarr.json").read_text())
    meta["attributes"]["complete"] = False
    (store / "zarr.json").write_text(json.dumps(meta))
    assert "incomplete" in verify_path(store).problems[0]


# -- datasets -------------------------------------------------------------------


def test_clean_dataset_is_ok(dataset: Path) -> None:
    v = verify_path(dataset)
    assert (v.kind, v.problems) == ("dataset", [])
    assert "6 samples" in v.summary


def test_dataset_missing_and_corrupt_images_and_changed_content(dataset: Path) -> None:
    import polars as pl

    images = pl.read_parquet(dataset / "manifest.parquet")["image"].to_list()
    (dataset / images[0]).unlink()
    (dataset / images[1]).write_bytes(b"not a png")
    v = verify_path(dataset)
    text = "\n".join(v.problems)
    assert f"{images[0]}: image of sample" in text and "does not exist" in text
    assert f"{images[1]}: image of sample" in text and "is unreadable" in text
    assert "fingerprint" in text


def test_dataset_info_inconsistent_with_manifest(dataset: Path) -> None:
    info = json.loads((dataset / "dataset.json").read_text())
    info["n_samples"] = 99
    (dataset / "dataset.json").write_text(json.dumps(info))
    assert verify_path(dataset).problems == [f"{dataset / 'dataset.json'}: n_samples is 99, the manifest has 6 rows"]


def test_dataset_with_broken_manifest(dataset: Path) -> None:
    (dataset / "manifest.parquet").write_bytes(b"PAR1garbage")
    v = verify_path(dataset)
    assert "unreadable parquet" in v.problems[0]


# -- checkpoints ----------------------------------------------------------------


def test_clean_checkpoint_is_ok(checkpoint: Path) -> None:
    v = verify_path(checkpoint)
    assert (v.kind, v.problems) == ("checkpoint", [])
    assert "tensors" in v.summary and "0 index files" in v.summary


def test_truncated_safetensors_is_named(checkpoint: Path) -> None:
    f = sorted(checkpoint.rglob("*.safetensors"))[0]
    os.truncate(f, f.stat().st_size - 100)
    assert verify_path(checkpoint).problems == [
        f"{f}: truncated: the header needs {_data_bytes(f) + 100} data bytes, the file holds {_data_bytes(f)}"
    ]


def _data_bytes(f: Path) -> int:
    n = int.from_bytes(f.read_bytes()[:8], "little")
    return f.stat().st_size - 8 - n


def test_garbage_header_and_single_file(tmp_path: Path) -> None:
    f = tmp_path / "w.safetensors"
    f.write_bytes((10**9).to_bytes(8, "little") + b"{}")
    assert detect_kind(f) == "checkpoint"
    assert "header length 1000000000 exceeds the file" in verify_path(f).problems[0]
    f.write_bytes((4).to_bytes(8, "little") + b"{no}")
    assert "header is not JSON" in verify_path(f).problems[0]


def test_index_pointing_at_missing_shard_and_absent_tensor(checkpoint: Path) -> None:
    single = checkpoint / "model.safetensors"
    names = [n for n in json.loads(single.read_bytes()[8 : 8 + int.from_bytes(single.read_bytes()[:8], "little")])
             if n != "__metadata__"]  # fmt: skip
    wm = {names[0]: "model.safetensors", names[1]: "model-00002-of-00002.safetensors", "ghost.weight": "model.safetensors"}
    (checkpoint / "model.safetensors.index.json").write_text(json.dumps({"weight_map": wm}))
    problems = verify_path(checkpoint).problems
    assert any(f"tensor {names[1]!r} is in model-00002-of-00002.safetensors, which does not exist" in p for p in problems)
    assert any("tensor 'ghost.weight' is not in model.safetensors" in p for p in problems)


def test_not_a_known_artifact(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(NotFound, match="nothing to verify"):
        verify_path(tmp_path)
    with pytest.raises(NotFound, match="no such file"):
        verify_path(tmp_path / "absent")


def test_half_written_config_json_is_named(checkpoint: Path) -> None:
    (checkpoint / "config.json").write_text('{"model_type": "lla')
    problems = verify_path(checkpoint).problems
    assert len(problems) == 1 and problems[0].startswith(f"{checkpoint / 'config.json'}: not valid JSON")
