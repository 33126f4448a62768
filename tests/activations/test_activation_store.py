"""The store: round trips, layout on disk, lazy reads, refusals."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import ml_dtypes
import numpy as np
import pytest
import zarr

from vlmscope import open_activations
from vlmscope.activations.encoding import count_nonfinite, to_storage
from vlmscope.activations.lock import StoreLock
from vlmscope.activations.store import LOCK_NAME, PROGRESS_DIR, store_files, write_activations
from vlmscope.errors import NotFound, StoreError, StoreLocked


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_round_trip_values_labels_attrs(tmp_path, activations, dtype):
    ds = activations(n=20)
    write_activations(tmp_path / "s.zarr", ds, dtype=dtype, shard_samples=8)
    back = open_activations(tmp_path / "s.zarr")

    expected = ds.hidden.values.astype(ml_dtypes.bfloat16 if dtype == "bfloat16" else dtype).astype(np.float32)
    got = back.hidden.values
    # bfloat16 is decoded to float32; float16 and float32 come back as stored
    assert got.dtype == (np.float32 if dtype == "bfloat16" else np.dtype(dtype))
    np.testing.assert_array_equal(got.astype(np.float32), expected)
    assert back.attrs["dtype"] == dtype
    assert back.attrs["complete"] is True
    assert back.attrs["model"] == "random" and back.attrs["layers"] == [0, 1, 2, 3]
    assert back.attrs["nonfinite"] == {"hidden": 0, "mlp": 0}
    # labels: strings (incl. empty) as str objects, ints, floats with NaN, bools
    assert list(back.sample.values) == list(ds.sample.values)
    assert back.color.dtype == object and list(back.color.values) == list(ds.color.values)
    np.testing.assert_array_equal(back["count"].values, ds["count"].values)
    np.testing.assert_array_equal(back.score.values, ds.score.values)
    np.testing.assert_array_equal(back.flag.values, ds.flag.values)
    assert set(back.coords) == {"sample", "layer", "color", "count", "score", "flag"}
    assert set(back.data_vars) == {"hidden", "mlp"}
    # label selection works like on any xarray Dataset
    assert back.hidden.sel(sample=back.color == "red").shape == (5, 4, 8)


def test_bfloat16_is_raw_bits_on_disk_and_optionally_kept(tmp_path, activations):
    ds = activations(n=6)
    write_activations(tmp_path / "s.zarr", ds, dtype="bfloat16")
    arr = zarr.open_array(tmp_path / "s.zarr" / "hidden", mode="r")
    assert arr.dtype == np.uint16 and arr.attrs["vlmscope_encoding"] == "bfloat16"
    raw = open_activations(tmp_path / "s.zarr", decode_bfloat16_to_float32=False)
    bits = ds.hidden.values.astype(ml_dtypes.bfloat16).view(np.uint16)
    np.testing.assert_array_equal(raw.hidden.values, bits)
    assert open_activations(tmp_path / "s.zarr").hidden.attrs["stored_as"] == "bfloat16"


def test_ml_dtypes_bfloat16_input_is_stored_as_bfloat16(tmp_path, activations):
    ds = activations(n=5)
    ds["hidden"] = ds.hidden.astype(ml_dtypes.bfloat16)
    ds["mlp"] = ds.mlp.astype(ml_dtypes.bfloat16)
    write_activations(tmp_path / "s.zarr", ds)
    back = open_activations(tmp_path / "s.zarr")
    assert back.attrs["dtype"] == "bfloat16"
    np.testing.assert_array_equal(back.hidden.values, ds.hidden.values.astype(np.float32))


def test_chunks_shards_and_file_count(tmp_path, activations):
    n, L, D, S = 50, 4, 8, 16  # 4 shards, the last one partial
    write_activations(tmp_path / "s.zarr", activations(n=n, layers=L, dim=D), shard_samples=S)
    arr = zarr.open_array(tmp_path / "s.zarr" / "hidden", mode="r")
    assert arr.shards == (S, L, D)  # one shard = S samples x all layers x all features
    assert arr.chunks == (S, 1, D)  # one layer of a shard is one contiguous inner chunk
    shard_files = sorted(
        p.relative_to(tmp_path / "s.zarr" / "hidden")
        for p in (tmp_path / "s.zarr" / "hidden").rglob("*")
        if p.is_file() and p.name != "zarr.json"
    )
    assert [str(p) for p in shard_files] == [f"c/{k}/0/0" for k in range(4)]
    # 1 group + 2 variables x (meta + 4 shards) + 6 coordinates x (meta + 1 chunk)
    files = store_files(tmp_path / "s.zarr")
    assert len(files) == 1 + 2 * 5 + 6 * 2
    assert not any(p.name in (LOCK_NAME, PROGRESS_DIR) or p.suffix == ".partial" for p in files)


def test_small_dataset_uses_one_shard_of_its_own_size(tmp_path, activations):
    write_activations(tmp_path / "s.zarr", activations(n=7), shard_samples=1024)
    arr = zarr.open_array(tmp_path / "s.zarr" / "hidden", mode="r")
    assert arr.shards == (7, 4, 8)


def test_open_is_lazy_and_one_layer_reads_one_layers_bytes(tmp_path, activations, monkeypatch):
    n, L, D = 64, 8, 64
    write_activations(tmp_path / "s.zarr", activations(n=n, layers=L, dim=D), shard_samples=16, dtype="float32")
    on_disk = sum(p.stat().st_size for p in (tmp_path / "s.zarr" / "hidden" / "c").rglob("*") if p.is_file())

    reads: list[tuple[str, int]] = []
    orig = zarr.storage.LocalStore.get

    async def counting_get(self, key, prototype=None, byte_range=None):
        buf = await orig(self, key, prototype, byte_range)
        if buf is not None and key.startswith("hidden/c/"):
            reads.append((key, len(buf)))
        return buf

    monkeypatch.setattr(zarr.storage.LocalStore, "get", counting_get)
    ds = open_activations(tmp_path / "s.zarr")
    assert reads == []  # opening reads no data
    layer = ds.hidden.sel(layer=3).values
    assert layer.shape == (n, D)
    one_layer = sum(b for _, b in reads)
    assert {k for k, _ in reads} == {f"hidden/c/{k}/0/0" for k in range(4)}
    # one inner chunk per shard (+ the small shard index): about 1/L of the bytes
    assert one_layer < on_disk / L * 1.25, (one_layer, on_disk)
    reads.clear()
    assert ds.hidden.values.shape == (n, L, D)
    assert sum(b for _, b in reads) >= on_disk * 0.95


def test_float16_overflow_is_refused_not_stored_as_inf(tmp_path, activations):
    ds = activations(n=6)
    ds.hidden[2, 1, 3] = 1.0e5
    with pytest.raises(StoreError, match=r"1 value\(s\) of 'hidden' overflow float16.*bfloat16"):
        write_activations(tmp_path / "s.zarr", ds, dtype="float16")
    assert not (tmp_path / "s.zarr").exists()  # atomic: nothing half-written
    write_activations(tmp_path / "s.zarr", ds, dtype="bfloat16")
    assert open_activations(tmp_path / "s.zarr").hidden.values[2, 1, 3] == pytest.approx(1.0e5, rel=1e-2)


def test_model_nonfinite_values_are_counted(tmp_path, activations):
    ds = activations(n=6)
    ds.hidden[0, 0, 0] = np.nan
    ds.hidden[1, 2, 0] = np.inf
    write_activations(tmp_path / "s.zarr", ds, dtype="float16")
    assert open_activations(tmp_path / "s.zarr").attrs["nonfinite"] == {"hidden": 2, "mlp": 0}


def test_attention_nan_at_the_embedding_layer_is_not_counted(tmp_path, activations):
    ds = activations(n=6)
    ds = ds.assign_coords(block=("layer", ds.layer.values - 1))
    ds.mlp[:, 0] = np.nan  # by definition: no MLP before block 0
    ds.hidden[1, 0, 0] = np.nan  # the model's own NaN
    ds.mlp[2, 3, 0] = np.nan
    write_activations(tmp_path / "s.zarr", ds)
    assert open_activations(tmp_path / "s.zarr").attrs["nonfinite"] == {"hidden": 1, "mlp": 1}


def test_encoding_helpers():
    x = np.array([[1.0, np.nan], [np.inf, 2.0]], dtype=np.float32)
    assert count_nonfinite(x) == 2
    assert count_nonfinite(x, np.array([True, False])) == 1
    assert count_nonfinite(to_storage(x, "bfloat16", name="x")) == 2
    with pytest.raises(StoreError, match="overflow float16"):
        to_storage(np.array([7e4], dtype=np.float32), "float16", name="x")


def test_skipped_samples_are_dropped_unless_asked(tmp_path, activations):
    ds = activations(n=6)
    ds.hidden[2] = np.nan
    ds.attrs["skipped"] = [{"sample_id": "s002", "reason": "missing image"}]
    write_activations(tmp_path / "s.zarr", ds)
    back = open_activations(tmp_path / "s.zarr")
    assert "s002" not in list(back.sample.values) and back.sizes["sample"] == 5
    assert back.attrs["nonfinite"]["hidden"] == 0  # skipped rows are not the model's NaNs
    assert open_activations(tmp_path / "s.zarr", include_skipped=True).sizes["sample"] == 6


def test_incomplete_store_is_refused_unless_allowed(tmp_path, activations):
    path = tmp_path / "s.zarr"
    write_activations(path, activations(n=4))
    meta = json.loads((path / "zarr.json").read_text())
    meta["attributes"]["complete"] = False
    (path / "zarr.json").write_text(json.dumps(meta))
    (path / PROGRESS_DIR).mkdir()  # what an interrupted extraction leaves
    with pytest.raises(StoreError, match=rf"{path}.*incomplete.*resume"):
        open_activations(path)
    assert open_activations(path, allow_incomplete=True).sizes["sample"] == 4


def test_missing_or_foreign_paths_name_the_path(tmp_path):
    with pytest.raises(NotFound, match=str(tmp_path / "nope.zarr")):
        open_activations(tmp_path / "nope.zarr")
    (tmp_path / "empty").mkdir()
    with pytest.raises(NotFound, match="not an activation store"):
        open_activations(tmp_path / "empty")
    zarr.create_group(str(tmp_path / "other.zarr"))
    with pytest.raises(StoreError, match="not a vlmscope activation store"):
        open_activations(tmp_path / "other.zarr")


def test_rewrite_replaces_the_store(tmp_path, activations):
    write_activations(tmp_path / "s.zarr", activations(n=4, seed=1))
    ds2 = activations(n=9, seed=2)
    write_activations(tmp_path / "s.zarr", ds2)
    np.testing.assert_array_equal(open_activations(tmp_path / "s.zarr").hidden.values, ds2.hidden.values)


def test_lock_refuses_a_second_writer_and_dies_with_its_holder(tmp_path):
    lock_path = tmp_path / "store" / LOCK_NAME
    with StoreLock(lock_path):
        with pytest.raises(StoreLocked, match=rf"{tmp_path / 'store'}: another process \(pid \d+\)"):
            StoreLock(lock_path).acquire()
    # released: a new writer gets it; a process killed while holding it releases it
    code = (
        "import sys, time; from vlmscope.activations.lock import StoreLock; "
        f"StoreLock({str(lock_path)!r}).acquire(); print('locked', flush=True); time.sleep(60)"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
        with pytest.raises(StoreLocked):
            StoreLock(lock_path).acquire()
    finally:
        proc.kill()
        proc.wait()
        assert proc.stdout is not None
        proc.stdout.close()
    deadline = time.monotonic() + 10
    while True:
        try:
            lock = StoreLock(lock_path).acquire()
            break
        except StoreLocked:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    lock.release(remove=True)
    assert not lock_path.exists()
