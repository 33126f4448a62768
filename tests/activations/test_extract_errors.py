"""Unreadable images: stop naming file and sample (keeping finished work), or skip and record."""

from __future__ import annotations

import csv
import shutil

import numpy as np
import polars as pl
import pytest

from vlmscope import open_activations
from vlmscope.activations.extract import ExtractConfig, extract, skipped_csv_path
from vlmscope.activations.progress import load_progress
from vlmscope.errors import DatasetError

CONFIG = ExtractConfig(batch_size=2, shard_samples=4, dtype="float32", positions=("last", "text_mean"), device="cpu")


@pytest.fixture
def broken(tmp_path, spatial12):
    """A copy of the dataset and the manifest row whose image we break (row 7: shard 1, batch [6, 8))."""
    data = tmp_path / "data"
    shutil.copytree(spatial12, data)
    row = pl.read_parquet(data / "manifest.parquet").row(7, named=True)
    return data, row


@pytest.fixture(scope="module")
def clean(tiny_model, spatial12, tmp_path_factory):
    path, adapter = tiny_model
    return open_activations(extract(CONFIG, path, spatial12, tmp_path_factory.mktemp("clean") / "s", adapter=adapter))


def test_missing_image_stops_naming_it_keeps_finished_rows_and_resumes_exactly(tmp_path, tiny_model, broken, clean):
    path, adapter = tiny_model
    data, row = broken
    image = data / row["image"]
    saved = image.read_bytes()
    image.unlink()
    out = tmp_path / "s.zarr"
    with pytest.raises(
        DatasetError,
        match=rf"{image}: image of sample '{row['sample_id']}' \(manifest row 7\) does not exist.*--on-error skip",
    ):
        extract(CONFIG, path, data, out, adapter=adapter)
    # shard 0 is finished; shard 1 keeps the batch before the failing one (rows 4, 5)
    records = load_progress(out)
    assert records[0].complete and records[1].rows_done == 2 and 2 not in records
    partial = open_activations(out, allow_incomplete=True)
    np.testing.assert_array_equal(partial.hidden.values[:6], clean.hidden.values[:6])
    assert np.isnan(partial.hidden.values[6:]).all()

    image.write_bytes(saved)
    extract(CONFIG, path, data, out, adapter=adapter)
    done = open_activations(out)
    for name in clean.data_vars:
        np.testing.assert_array_equal(done[name].values, clean[name].values, err_msg=name)


def test_skip_records_samples_and_writes_skipped_csv(tmp_path, tiny_model, broken, clean):
    path, adapter = tiny_model
    data, row = broken
    (data / row["image"]).unlink()
    other = pl.read_parquet(data / "manifest.parquet").row(0, named=True)
    (data / other["image"]).write_bytes(b"not a png")  # unreadable rather than missing
    out = tmp_path / "s.zarr"
    extract(CONFIG.model_copy(update={"on_error": "skip"}), path, data, out, adapter=adapter)

    ds = open_activations(out)
    skipped = ds.attrs["skipped"]
    assert [s["sample_id"] for s in skipped] == [other["sample_id"], row["sample_id"]]
    assert "unreadable" in skipped[0]["reason"] and "does not exist" in skipped[1]["reason"]
    assert ds.attrs["n_skipped"] == 2 and ds.attrs["nonfinite"] == {"hidden": 0, "hidden_text_mean": 0}
    assert ds.sizes["sample"] == 10 and row["sample_id"] not in list(ds.sample.values)
    keep = [s for s in clean.sample.values if s in set(ds.sample.values)]
    np.testing.assert_allclose(ds.hidden.values, clean.hidden.sel(sample=keep).values, rtol=1e-5, atol=1e-6)
    full = open_activations(out, include_skipped=True)
    assert np.isnan(full.hidden.sel(sample=row["sample_id"]).values).all()

    with open(skipped_csv_path(out), newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert skipped_csv_path(out).name == "s.skipped.csv"
    assert [r["sample_id"] for r in rows] == [other["sample_id"], row["sample_id"]]
    assert str(data / row["image"]) in rows[1]["reason"]
