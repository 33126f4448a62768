"""The logit lens of the last stored layer is the model's own next-token distribution."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest
import torch

from vlmscope import open_activations
from vlmscope.lens import LogitLensConfig, logit_lens

FAMILIES = ["composite", "paligemma", "paligemma2"]
"""Llama RMSNorm; Gemma (1 + w) RMSNorm; Gemma 2 (1 + w) plus final-logit soft-capping."""


def _layer_frame(out, name, layer, sample_ids):
    df = pl.read_parquet(out / name).filter(pl.col("layer") == layer)
    parts = [df.filter(pl.col("sample_id") == s) for s in sample_ids]
    return pl.concat([p.sort("rank") if "rank" in p.columns else p for p in parts])


@pytest.fixture(scope="module")
def lens_runs(lens_setup, tmp_path_factory):
    """``(setup, out)`` of one lens run (defaults, top-k 5) per family, cached for the module."""
    cache = {}

    def get(family):
        if family not in cache:
            s = lens_setup(family)
            out = tmp_path_factory.mktemp(f"lens-{family}") / "logit"
            logit_lens(s.store, s.model_dir, LogitLensConfig(top_k=5, batch_size=5), out)
            cache[family] = (s, out)
        return cache[family]

    return get


@pytest.mark.parametrize("family", FAMILIES)
def test_last_layer_equals_model_logits(lens_runs, family):
    s, out = lens_runs(family)
    n_ref = s.ref_logits.shape[0]
    last = s.adapter.num_layers
    ids_ref = s.manifest["sample_id"].to_list()[:n_ref]
    ref_p = torch.softmax(s.ref_logits, dim=-1)
    top = _layer_frame(out, "topk.parquet", last, ids_ref)
    ids = top["token_id"].to_numpy().reshape(n_ref, 5)
    probs = top["prob"].to_numpy().reshape(n_ref, 5)
    ref_top = ref_p.topk(5, dim=-1)
    np.testing.assert_array_equal(ids, ref_top.indices.numpy())
    np.testing.assert_allclose(probs, ref_top.values.numpy(), rtol=1e-4, atol=1e-6)

    tg = _layer_frame(out, "targets.parquet", last, ids_ref)
    target = tg["target_token_id"].to_numpy()
    np.testing.assert_array_equal(target, s.ref_first_answer_token)  # the token training would predict
    ref_prob = ref_p[torch.arange(n_ref), torch.as_tensor(target)].numpy()
    np.testing.assert_allclose(tg["target_prob"].to_numpy(), ref_prob, rtol=1e-4, atol=1e-7)
    ref_logit = s.ref_logits[torch.arange(n_ref), torch.as_tensor(target)]
    ref_rank = (s.ref_logits > ref_logit[:, None]).sum(1) + 1
    np.testing.assert_array_equal(tg["target_rank"].to_numpy(), ref_rank.numpy())
    tokens = [s.adapter.tokenizer.decode([int(t)]) for t in target]
    assert tg["target_token"].to_list() == tokens


@pytest.mark.parametrize("family", ["composite", "paligemma"])
def test_every_layer_uses_the_models_own_norm_and_head(lens_runs, family):
    """Layer k of the lens == lm_head(final_norm(h_k)) computed with the loaded model's modules."""
    s, out = lens_runs(family)
    ds = open_activations(s.store)
    sid = ds["sample"].values.tolist()
    for layer in ds["layer"].values.tolist():
        h = torch.from_numpy(ds["hidden"].sel(layer=layer).values)
        with torch.inference_mode():
            p = torch.softmax(s.adapter.unembedding(s.adapter.final_norm(h)).float(), dim=-1)
        top = _layer_frame(out, "topk.parquet", layer, sid)
        ref = p.topk(5, dim=-1)
        np.testing.assert_array_equal(top["token_id"].to_numpy().reshape(-1, 5), ref.indices.numpy())
        np.testing.assert_allclose(top["prob"].to_numpy().reshape(-1, 5), ref.values.numpy(), rtol=1e-4, atol=1e-6)


def test_summary_metrics_and_files(lens_runs):
    s, out = lens_runs("composite")
    assert sorted(p.name for p in out.iterdir()) == [
        ".vlmscope-artifact", "config.json", "metrics.json", "rank_by_layer.png", "summary.csv", "targets.parquet", "topk.parquet",
    ]
    n, L = len(s.manifest), s.adapter.num_layers + 1
    top = pl.read_parquet(out / "topk.parquet")
    tg = pl.read_parquet(out / "targets.parquet")
    assert top.height == n * L * 5 and tg.height == n * L
    assert top.columns == ["sample_id", "layer", "rank", "token_id", "token", "prob"]
    assert tg.columns == ["sample_id", "layer", "target_token_id", "target_token", "target_rank", "target_prob"]
    summary = pl.read_csv(out / "summary.csv")
    assert summary.columns == ["layer", "top1_accuracy", "mean_target_rank", "median_target_rank", "mean_target_prob"]
    top1 = top.filter(pl.col("rank") == 1).join(tg, on=["sample_id", "layer"])
    expect = (
        top1.group_by("layer")
        .agg((pl.col("token_id") == pl.col("target_token_id")).mean().alias("acc"),
             pl.col("target_rank").mean().alias("rank"), pl.col("target_rank").median().alias("med"))
        .sort("layer")
    )
    np.testing.assert_allclose(summary["top1_accuracy"].to_numpy(), expect["acc"].to_numpy())
    np.testing.assert_allclose(summary["mean_target_rank"].to_numpy(), expect["rank"].to_numpy())
    np.testing.assert_allclose(summary["median_target_rank"].to_numpy(), expect["med"].to_numpy())
    # top-1 hit <=> rank 1 (no exact logit ties in a random float model)
    assert ((top1["token_id"] == top1["target_token_id"]) == (top1["target_rank"] == 1)).all()
    metrics = json.loads((out / "metrics.json").read_text())
    acc = summary["top1_accuracy"].to_numpy()
    assert metrics["best_layer"] == int(summary["layer"][int(np.argmax(acc))])
    assert metrics["best_layer_top1_accuracy"] == pytest.approx(acc.max())
    assert metrics["final_layer"] == s.adapter.num_layers
    assert metrics["final_layer_top1_accuracy"] == pytest.approx(acc[-1])
    assert all(isinstance(v, (int, float)) for v in metrics.values())
    assert (out / "rank_by_layer.png").read_bytes()[:4] == b"\x89PNG"


def test_no_final_norm_feeds_the_raw_residual(lens_setup, tmp_path):
    s = lens_setup("composite")
    out = tmp_path / "raw"
    logit_lens(s.store, s.model_dir, LogitLensConfig(top_k=5, final_norm=False), out)
    last = s.adapter.num_layers
    ds = open_activations(s.store)
    sid = ds["sample"].values.tolist()
    top = _layer_frame(out, "topk.parquet", last, sid)
    probs = top["prob"].to_numpy().reshape(-1, 5)
    h = torch.from_numpy(ds["hidden"].sel(layer=last).values)
    with torch.inference_mode():
        raw = torch.softmax(h @ s.adapter.unembedding.weight.T, dim=-1).topk(5, dim=-1)
    np.testing.assert_allclose(probs, raw.values.numpy(), rtol=1e-4, atol=1e-6)
    ref = torch.softmax(s.ref_logits, dim=-1).topk(5, dim=-1).values.numpy()
    assert not np.allclose(probs[: len(ref)], ref, rtol=1e-3, atol=1e-4)
    assert json.loads((out / "config.json").read_text())["config"]["final_norm"] is False


def test_other_variable_and_target_column(lens_setup, lens_runs, tmp_path):
    """``--variable`` and ``--target-column`` pick what is read and what is scored."""
    from vlmscope.activations.store import write_activations

    s, base = lens_runs("composite")
    ds = open_activations(s.store).load()
    words = np.array(["Red", "blue", "3"] * (ds.sizes["sample"] // 3), dtype=object)
    ds = ds.assign_coords(word=("sample", words))
    ds["hidden_copy"] = ds["hidden"]
    write_activations(tmp_path / "store.zarr", ds)
    cfg = LogitLensConfig(top_k=5, variable="hidden_copy", target_column="word")
    logit_lens(tmp_path / "store.zarr", s.model_dir, cfg, tmp_path / "b")
    top, top_base = pl.read_parquet(tmp_path / "b" / "topk.parquet"), pl.read_parquet(base / "topk.parquet")
    assert top["token_id"].to_list() == top_base["token_id"].to_list()  # same values, another variable name
    np.testing.assert_allclose(top["prob"].to_numpy(), top_base["prob"].to_numpy(), rtol=1e-5, atol=1e-7)
    tg = pl.read_parquet(tmp_path / "b" / "targets.parquet").filter(pl.col("layer") == 0)
    prompts = ds["prompt"].values.tolist()
    expect = [s.adapter.answer_ids(w, s.adapter.format_prompt(q))[0] for w, q in zip(words, prompts)]
    assert tg["target_token_id"].to_list() == expect


def test_compute_is_a_labelled_result_and_write_puts_it_on_disk(lens_setup, lens_runs, tmp_path):
    """compute_logit_lens writes nothing; its Dataset, written, is byte for byte the ``logit_lens`` output."""
    from vlmscope.lens.logit import compute_logit_lens, write_logit_lens

    s, out = lens_runs("composite")
    lens = compute_logit_lens(s.store, s.model_dir, LogitLensConfig(top_k=5, batch_size=5))
    assert sorted(lens.sizes.items()) == [("layer", s.adapter.num_layers + 1), ("rank", 5), ("sample", 12)]
    assert lens["top_token_id"].dims == ("layer", "sample", "rank") and lens["target_rank"].dims == ("layer", "sample")
    assert lens["sample"].values.tolist() == open_activations(s.store)["sample"].values.tolist()
    assert lens.attrs["store"] == str(s.store) and lens.attrs["config"]["top_k"] == 5
    assert lens.attrs == json.loads((out / "config.json").read_text())
    assert list(tmp_path.iterdir()) == []
    again = tmp_path / "again"
    assert write_logit_lens(lens, again) == json.loads((out / "metrics.json").read_text())
    for name in ("topk.parquet", "targets.parquet", "summary.csv", "metrics.json", "config.json", "rank_by_layer.png"):
        assert (again / name).read_bytes() == (out / name).read_bytes(), name
