"""A damaged activation store is an error naming the store and the shard, never NaN or garbage.

Each case damages one file of a real (tiny) store the way disks, copies and
hands do: truncation, a zero-length file, deletion, one changed byte. The
size/presence check runs on open; changed bytes are caught on read by the
CRC-32C zarr keeps per chunk. Stores written before the file record open as
before, with a warning.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from vlmscope.activations.integrity import FILES_ATTR
from vlmscope.activations.store import open_activations, open_store, write_activations
from vlmscope.errors import ShardCorrupt, StoreError

N, LAYERS, DIM, SHARD = 12, 3, 8, 4


def _dataset() -> xr.Dataset:
    rng = np.random.default_rng(0)
    return xr.Dataset(
        {"hidden": (("sample", "layer", "dim"), rng.standard_normal((N, LAYERS, DIM)).astype(np.float32))},
        coords={
            "sample": np.array([f"s{i:02d}" for i in range(N)], dtype=object),
            "layer": np.arange(LAYERS),
            "color": ("sample", np.array(["red", "blue"] * (N // 2), dtype=object)),
        },
    )


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return write_activations(tmp_path / "s.zarr", _dataset(), shard_samples=SHARD)


def _shard(store: Path, k: int = 1) -> Path:
    return store / "hidden" / "c" / str(k) / "0" / "0"


def _attrs(store: Path) -> dict:
    return json.loads((store / "zarr.json").read_text())["attributes"]


def test_every_data_file_is_recorded_with_size_and_crc32(store: Path) -> None:
    files = _attrs(store)[FILES_ATTR]
    assert set(files) >= {f"hidden/c/{k}/0/0" for k in range(N // SHARD)} | {"sample/c/0", "layer/c/0"}
    for rel, rec in files.items():
        assert (store / rel).stat().st_size == rec["size"]
        assert len(rec["crc32"]) == 8
    np.testing.assert_array_equal(open_activations(store).hidden.values, _dataset().hidden.values)


@pytest.mark.parametrize(
    "damage, word",
    [
        (lambda p: os.truncate(p, p.stat().st_size // 2), "truncated"),
        (lambda p: os.truncate(p, 0), "empty"),
        (lambda p: p.unlink(), "missing"),
    ],
    ids=["truncated", "zero-length", "deleted"],
)
def test_damaged_shard_is_refused_on_open_naming_store_and_shard(store: Path, damage, word: str) -> None:
    damage(_shard(store))
    with pytest.raises(ShardCorrupt, match=rf"s\.zarr: shard 1 of 'hidden' \(hidden/c/1/0/0\) is {word}"):
        open_activations(store)
    with pytest.raises(StoreError, match="hidden/c/1/0/0"):
        open_store(store)  # what lens, FFN and probes call


def _flip_byte(path: Path, at: int = 20) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0xFF
    path.write_bytes(bytes(data))


def test_changed_bytes_fail_the_chunk_checksum_on_read(store: Path) -> None:
    _flip_byte(_shard(store))
    ds = open_activations(store)  # same size: open is cheap and cannot tell
    np.testing.assert_array_equal(ds.hidden.isel(sample=slice(0, SHARD)).values, _dataset().hidden.values[:SHARD])
    with pytest.raises(ShardCorrupt, match=r"s\.zarr: cannot read shard 1 of 'hidden' \(hidden/c/1/0/0\).*checksum"):
        np.asarray(ds.hidden.sel(layer=0).values)


def test_changed_bytes_in_a_bfloat16_store_are_refused_too(tmp_path: Path) -> None:
    store = write_activations(tmp_path / "b.zarr", _dataset(), dtype="bfloat16", shard_samples=SHARD)
    _flip_byte(_shard(store, 2))
    with pytest.raises(ShardCorrupt, match="shard 2 of 'hidden'"):
        np.asarray(open_activations(store).hidden.values)


def test_a_reader_gets_the_error_not_nan(store: Path, tmp_path: Path) -> None:
    from vlmscope.probing.config import ProbeConfig
    from vlmscope.probing.run import run_probes

    _shard(store, 0).unlink()
    with pytest.raises(ShardCorrupt, match="hidden/c/0/0/0"):
        run_probes(store, ProbeConfig(label="color", controls=0), tmp_path / "probe")
    assert not (tmp_path / "probe").exists()


def test_an_all_fill_shard_writes_no_file_and_is_not_missing(tmp_path: Path) -> None:
    ds = _dataset()
    ds["hidden"][SHARD : 2 * SHARD] = np.nan
    store = write_activations(tmp_path / "n.zarr", ds, shard_samples=SHARD)
    assert not _shard(store).exists()
    assert "hidden/c/1/0/0" not in _attrs(store)[FILES_ATTR]
    assert np.isnan(open_activations(store).hidden.values[SHARD : 2 * SHARD]).all()


def test_old_store_without_record_opens_with_a_warning(store: Path) -> None:
    meta = json.loads((store / "zarr.json").read_text())
    del meta["attributes"][FILES_ATTR]
    (store / "zarr.json").write_text(json.dumps(meta))
    with pytest.warns(UserWarning, match="cannot be detected"):
        ds = open_activations(store)
    np.testing.assert_array_equal(ds.hidden.values, _dataset().hidden.values)


def test_incomplete_store_is_not_checked_against_a_record_it_does_not_have(store: Path) -> None:
    meta = json.loads((store / "zarr.json").read_text())
    meta["attributes"]["complete"] = False
    del meta["attributes"][FILES_ATTR]
    (store / "zarr.json").write_text(json.dumps(meta))
    open_activations(store, allow_incomplete=True)  # no warning, no error: nothing to check yet


def test_extracted_store_records_every_shard(tiny_checkpoint, tiny_dataset, tmp_path: Path) -> None:
    """The extract path (writer thread + progress records) ends with the same record as write_activations."""
    from vlmscope.activations.config import ExtractConfig
    from vlmscope.activations.extract import extract
    from vlmscope.activations.store import store_files

    cfg = ExtractConfig(batch_size=2, shard_samples=3, dtype="float32", mlp=True, device="cpu")
    out = extract(cfg, tiny_checkpoint("composite"), tiny_dataset("spatial", 6), tmp_path / "x.zarr")
    files = _attrs(out)[FILES_ATTR]
    on_disk = {p.relative_to(out).as_posix() for p in store_files(out) if p.name != "zarr.json"}
    on_disk -= {p for p in on_disk if not p.split("/")[1:2] == ["c"]}  # skipped.csv and the like
    assert set(files) == on_disk
    assert {"hidden/c/0/0/0", "hidden/c/1/0/0", "mlp/c/0/0/0", "mlp/c/1/0/0"} <= set(files)
    os.truncate(out / "mlp" / "c" / "1" / "0" / "0", 10)
    with pytest.raises(ShardCorrupt, match=r"shard 1 of 'mlp' \(mlp/c/1/0/0\) is truncated"):
        open_activations(out)


def test_extract_records_checksums_when_shards_are_written(tiny_checkpoint, tiny_dataset, tmp_path: Path) -> None:
    """A shard damaged after it was written, before the run finishes, is caught: the record predates the damage."""
    import shutil

    import polars as pl

    from vlmscope.activations.config import ExtractConfig
    from vlmscope.activations.extract import extract
    from vlmscope.errors import ImageError
    from vlmscope.verify import verify_path

    data = Path(shutil.copytree(tiny_dataset("spatial", 6), tmp_path / "ds"))
    image = data / pl.read_parquet(data / "manifest.parquet")["image"][4]
    good = image.read_bytes()
    image.write_bytes(b"broken")
    cfg = ExtractConfig(batch_size=1, shard_samples=3, dtype="float32", device="cpu")
    out = tmp_path / "x.zarr"
    with pytest.raises(ImageError):
        extract(cfg, tiny_checkpoint("composite"), data, out)  # shard 0 written and recorded, then stops
    _flip_byte(out / "hidden" / "c" / "0" / "0" / "0")
    image.write_bytes(good)
    extract(cfg, tiny_checkpoint("composite"), data, out)  # resumes shard 1 and completes
    problems = verify_path(out).problems
    assert any("shard 0 of 'hidden' (hidden/c/0/0/0) fails its checksum (crc32" in p for p in problems), problems
