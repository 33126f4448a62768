"""Errors name what is wrong and how to fix it; the CLI turns them into one line and exit 1."""

from __future__ import annotations

import json
import shutil

import polars as pl
import pytest
from typer.testing import CliRunner

from vlmscope import open_activations
from vlmscope.activations.store import write_activations
from vlmscope.cli.app import app
from vlmscope.errors import DatasetError, ModelError, NotFound, StoreError, StoreMismatch
from vlmscope.lens import FfnConfig, LogitLensConfig, ffn_analysis, logit_lens


def test_hidden_size_mismatch_names_both_sizes(lens_setup, tiny_checkpoint, tmp_path):
    s = lens_setup("composite")  # D = 128
    with pytest.raises(StoreMismatch, match=r"hidden size 128 in the store .* vs 32 in the model"):
        logit_lens(s.store, tiny_checkpoint("paligemma"), LogitLensConfig(), tmp_path / "o")
    assert not (tmp_path / "o").exists()


def test_missing_mlp_says_to_reextract(lens_setup, tmp_path):
    s = lens_setup("composite")
    ds = open_activations(s.store).load().drop_vars("mlp")
    write_activations(tmp_path / "nomlp.zarr", ds)
    with pytest.raises(StoreError, match=r"no variable 'mlp'.*vlmscope extract --mlp"):
        ffn_analysis(tmp_path / "nomlp.zarr", s.model_dir, FfnConfig(), tmp_path / "o")


def test_incomplete_store_is_refused(lens_setup, tmp_path):
    s = lens_setup("composite")
    copy = tmp_path / "copy.zarr"
    shutil.copytree(s.store, copy)
    meta = json.loads((copy / "zarr.json").read_text())
    meta["attributes"]["complete"] = False
    (copy / "zarr.json").write_text(json.dumps(meta))
    with pytest.raises(StoreError, match="incomplete"):
        logit_lens(copy, s.model_dir, LogitLensConfig(), tmp_path / "o")


def test_missing_or_empty_target_column(lens_setup, tmp_path):
    s = lens_setup("composite")
    with pytest.raises(StoreError, match=r"no label column 'nope'.*--target-column"):
        logit_lens(s.store, s.model_dir, LogitLensConfig(target_column="nope"), tmp_path / "o")
    with pytest.raises(StoreError, match=r"no variable 'hidden_image_mean'.*--positions image_mean"):
        logit_lens(s.store, s.model_dir, LogitLensConfig(variable="hidden_image_mean"), tmp_path / "o")
    ds = open_activations(s.store).load()
    blank = ds["answer"].values.copy()
    blank[2] = ""
    write_activations(tmp_path / "blank.zarr", ds.assign_coords(answer=("sample", blank)))
    sid = str(ds["sample"].values[2])
    with pytest.raises(DatasetError, match=rf"sample '{sid}': column 'answer' is empty"):
        logit_lens(tmp_path / "blank.zarr", s.model_dir, LogitLensConfig(), tmp_path / "o")


def test_model_errors(lens_setup, tmp_path):
    s = lens_setup("composite")
    with pytest.raises(NotFound, match="no model directory"):
        logit_lens(s.store, tmp_path / "missing", LogitLensConfig(), tmp_path / "o")
    with pytest.raises(ModelError, match="not in the local Hugging Face cache"):
        logit_lens(s.store, "no-such-org/no-such-model", LogitLensConfig(), tmp_path / "o")
    # a checkpoint without safetensors weights
    bare = tmp_path / "bare"
    bare.mkdir()
    for f in s.model_dir.iterdir():
        if f.suffix != ".safetensors":
            shutil.copy(f, bare / f.name)
    with pytest.raises(NotFound, match=r"no \*\.safetensors weight files"):
        logit_lens(s.store, bare, LogitLensConfig(), tmp_path / "o")


def test_config_bounds():
    with pytest.raises(ValueError, match="top_k"):
        LogitLensConfig(top_k=0)
    with pytest.raises(ValueError, match="extra"):
        FfnConfig(neuron=3)  # type: ignore[call-arg]


runner = CliRunner()


def test_cli_logit_and_ffn(lens_setup, tmp_path):
    s = lens_setup("composite")
    r = runner.invoke(
        app, ["lens", "logit", str(s.store), "--model", str(s.model_dir), "--out", str(tmp_path / "l"), "--top-k", "2"]
    )
    assert r.exit_code == 0, r.output
    assert pl.read_parquet(tmp_path / "l" / "topk.parquet")["rank"].max() == 2
    assert "best layer" in r.output
    r = runner.invoke(
        app,
        ["lens", "ffn", str(s.store), "--model", str(s.model_dir), "--out", str(tmp_path / "f"),
         "--neurons", "2", "--tokens", "1", "--seed", "3"],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    rec = json.loads((tmp_path / "f" / "ffn.jsonl").read_text().splitlines()[0])
    assert len(rec["layers"][0]["random_neurons"]) == 2 and len(rec["layers"][0]["top_tokens"][0]) == 1
    assert json.loads((tmp_path / "f" / "config.json").read_text())["config"]["seed"] == 3


def test_cli_errors_are_one_line(lens_setup, tmp_path):
    s = lens_setup("composite")
    ds = open_activations(s.store).load().drop_vars("mlp")
    write_activations(tmp_path / "nomlp.zarr", ds)
    r = runner.invoke(app, ["lens", "ffn", str(tmp_path / "nomlp.zarr"), "--model", str(s.model_dir), "--out", "x"])
    assert r.exit_code == 1
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "--mlp" in lines[0]
    r = runner.invoke(
        app, ["lens", "logit", str(s.store), "--model", str(s.model_dir), "--out", "x", "--top-k", "0"]
    )
    assert r.exit_code == 1
    assert r.output.strip().splitlines() == [r.output.strip()] and "--top-k" in r.output
