"""FFN value-vector tokens equal a direct computation from the loaded model's weights."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest
import torch

from vlmscope import open_activations
from vlmscope.activations.store import write_activations
from vlmscope.errors import ConfigError
from vlmscope.lens import FfnConfig, ffn_analysis
from vlmscope.lens.ffn import random_neurons


def _records(out):
    return [json.loads(line) for line in (out / "ffn.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def ffn_run(lens_setup, tmp_path_factory):
    s = lens_setup("composite")
    out = tmp_path_factory.mktemp("ffn") / "ffn"
    ffn_analysis(s.store, s.model_dir, FfnConfig(neurons=3, tokens=4, seed=7), out)
    return s, out


def test_top_neurons_and_tokens_match_the_model(ffn_run):
    s, out = ffn_run
    ds = open_activations(s.store)
    recs = _records(out)
    assert [r["sample_id"] for r in recs] == ds["sample"].values.tolist()
    assert [r["label"] for r in recs] == ds["answer"].values.tolist()
    assert [r["prompt"] for r in recs] == ds["prompt"].values.tolist()
    tok = s.adapter.tokenizer
    W_U = s.adapter.unembedding.weight.detach()
    for layer_rec_index, layer in enumerate(range(1, s.adapter.num_layers + 1)):
        acts = ds["mlp"].sel(layer=layer).values  # (N, F)
        W = s.adapter.mlp_down_proj(layer - 1).weight.detach()  # block layer-1: (D, F)
        for i, rec in enumerate(recs):
            lr = rec["layers"][layer_rec_index]
            assert lr["layer"] == layer
            assert lr["top_neurons"] == np.argsort(-acts[i], kind="stable")[:3].tolist()
            for key_n, key_t in (("top_neurons", "top_tokens"), ("random_neurons", "random_tokens")):
                for j, toks in zip(lr[key_n], lr[key_t]):
                    ids = (W[:, j] @ W_U.T).topk(4).indices.tolist()
                    assert toks == [tok.decode([t]) for t in ids]


def test_random_baseline_is_seeded(ffn_run, tmp_path):
    s, out = ffn_run
    ffn_analysis(s.store, s.model_dir, FfnConfig(neurons=3, tokens=4, seed=7), tmp_path / "same")
    ffn_analysis(s.store, s.model_dir, FfnConfig(neurons=3, tokens=4, seed=8), tmp_path / "other")
    rnd = [[lr["random_neurons"] for lr in r["layers"]] for r in _records(out)]
    assert rnd == [[lr["random_neurons"] for lr in r["layers"]] for r in _records(tmp_path / "same")]
    assert rnd != [[lr["random_neurons"] for lr in r["layers"]] for r in _records(tmp_path / "other")]
    F = int(s.adapter.mlp_down_proj(0).in_features)
    flat = [row for layers in rnd for row in layers]
    assert all(len(set(row)) == 3 and all(0 <= j < F for j in row) for row in flat)
    assert len({tuple(r) for r in flat}) > len(flat) // 2  # drawn per (sample, layer), not one fixed set


@pytest.mark.parametrize("n, F", [(3, 256), (60, 64), (64, 64)])
def test_random_neurons_without_replacement(n, F):
    a = random_neurons(np.random.default_rng([0, 1]), 50, F, n)
    b = random_neurons(np.random.default_rng([0, 1]), 50, F, n)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (50, n) and a.min() >= 0 and a.max() < F
    assert all(len(set(row)) == n for row in a.tolist())
    with pytest.raises(ConfigError, match="exceeds the FFN width"):
        random_neurons(np.random.default_rng(0), 5, F, F + 1)


def test_label_found_among_tokens_of_a_crafted_neuron(ffn_run, tmp_path):
    """Samples whose crafted top neuron projects onto their label count as hits at exactly that layer."""
    s, _ = ffn_run
    ds = open_activations(s.store).load()
    layer, j = 2, 17
    W = s.adapter.mlp_down_proj(layer - 1).weight.detach()
    top_id = int((W[:, j] @ s.adapter.unembedding.weight.detach().T).argmax())
    word = s.adapter.tokenizer.decode([top_id]).strip()
    assert word, "pick another neuron: its top token is whitespace"
    mlp = ds["mlp"].values.copy()
    mlp[:, layer, :] = 0.0  # layer coordinate == index (all layers stored)
    mlp[:, layer, j] = 10.0  # neuron j is every sample's top neuron at this layer
    labels = np.array([word] * ds.sizes["sample"], dtype=object)
    ds["mlp"] = (ds["mlp"].dims, mlp)
    ds = ds.assign_coords(cls=("sample", labels))
    write_activations(tmp_path / "crafted.zarr", ds)
    metrics = ffn_analysis(tmp_path / "crafted.zarr", s.model_dir, FfnConfig(label_column="cls"), tmp_path / "o")
    summary = pl.read_csv(tmp_path / "o" / "summary.csv")
    assert summary.columns == ["layer", "gt_in_top", "gt_in_random", "n_samples"]
    row = summary.filter(pl.col("layer") == layer)
    assert row["gt_in_top"][0] == 1.0
    assert row["gt_in_random"][0] < 1.0
    assert metrics["best_layer"] == layer and metrics["best_layer_gt_in_top"] == 1.0
    above = summary.filter(pl.col("gt_in_top") > pl.col("gt_in_random"))["layer"].to_list()
    assert metrics["first_layer_above_baseline"] == above[0]
    assert metrics["gt_in_top"] == pytest.approx(summary["gt_in_top"].mean())
    assert metrics["gt_in_random"] == pytest.approx(summary["gt_in_random"].mean())
    # the recorded tokens show the label word at that layer, first token of the first neuron
    rec = _records(tmp_path / "o")[0]
    lr = next(x for x in rec["layers"] if x["layer"] == layer)
    assert lr["top_neurons"][0] == j and lr["top_tokens"][0][0].strip() == word


def test_ffn_outputs(ffn_run):
    s, out = ffn_run
    assert sorted(p.name for p in out.iterdir()) == [
        ".vlmscope-artifact", "config.json", "ffn.jsonl", "ffn_by_layer.png", "metrics.json", "summary.csv",
    ]  # fmt: skip
    summary = pl.read_csv(out / "summary.csv")
    assert summary["layer"].to_list() == list(range(1, s.adapter.num_layers + 1))  # layer 0 has no MLP
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) >= {"first_layer_above_baseline", "gt_in_top", "gt_in_random"}
    rec = _records(out)[0]
    assert set(rec) == {"sample_id", "label", "prompt", "layers"}
    assert set(rec["layers"][0]) == {"layer", "top_neurons", "top_tokens", "random_neurons", "random_tokens"}
    assert torch.tensor([len(t) for t in rec["layers"][0]["top_tokens"]]).eq(4).all()


def test_compute_is_a_labelled_result_and_write_puts_it_on_disk(ffn_run, tmp_path):
    """compute_ffn writes nothing; its Dataset, written, is byte for byte the ``ffn_analysis`` output."""
    from vlmscope.lens.ffn import compute_ffn, write_ffn

    s, out = ffn_run
    ffn = compute_ffn(s.store, s.model_dir, FfnConfig(neurons=3, tokens=4, seed=7))
    assert ffn["top_tokens"].dims == ("layer", "sample", "neuron", "token")
    assert ffn.sizes["neuron"] == 3 and ffn.sizes["token"] == 4 and ffn.sizes["sample"] == 12
    assert ffn["layer"].values.tolist() == list(range(1, s.adapter.num_layers + 1))  # no MLP at the embeddings
    assert ffn["gt_in_top"].dtype == bool and ffn["label"].dims == ("sample",)
    assert ffn.attrs == json.loads((out / "config.json").read_text())
    assert list(tmp_path.iterdir()) == []
    again = tmp_path / "again"
    assert write_ffn(ffn, again) == json.loads((out / "metrics.json").read_text())
    for name in ("ffn.jsonl", "summary.csv", "metrics.json", "config.json", "ffn_by_layer.png"):
        assert (again / name).read_bytes() == (out / name).read_bytes(), name
