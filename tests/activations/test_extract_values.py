"""Extracted values equal an independent forward pass, whatever the batching, sharding or layer subset."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vlmscope import open_activations
from vlmscope.activations.extract import ExtractConfig, extract
from vlmscope.activations.loader import SampleTable
from vlmscope.data.manifest import read_manifest

ALL = dict(positions=("last", "text_mean", "image_mean", "image_last"), attention=True, mlp=True)


def _reference(adapter, dataset, rows):
    """Per sample in ``rows``, batch of one (no padding): transformers' own hidden states and attentions.

    ``tie_last_hidden_states=False`` makes transformers return the last block's
    output before the final norm (what the store holds); the default return
    (after the norm) is checked against ``final_norm`` of the stored value.
    The FFN activation is recomputed from the MLP's input: act(gate(y)) * up(y).
    """
    df = read_manifest(dataset)
    table = SampleTable(dataset, df["sample_id"].to_list(), df["image"].to_list(), df["prompt"].to_list())
    lm_config = adapter.model.config.get_text_config()
    mlp_inputs: list[torch.Tensor] = []
    hooks = [
        layer.mlp.register_forward_pre_hook(lambda m, args: mlp_inputs.append(args[0]))
        for layer in adapter.decoder_layers
    ]
    refs = []
    try:
        for row in rows:
            enc = adapter.encode([table.image(row)], [table.prompts[row]])
            mlp_inputs.clear()
            with torch.inference_mode():
                lm_config.tie_last_hidden_states = False
                pre = adapter.model(**enc.inputs, output_hidden_states=True, output_attentions=True)
                del lm_config.tie_last_hidden_states
                post = adapter.model(**enc.inputs, output_hidden_states=True) if row < 2 else None
            last = int(enc.last_index[0])
            img = enc.image_mask[0]
            text = enc.text_mask[0]
            hs = [h[0] for h in pre.hidden_states]  # L+1 x (T, D)
            ffn = []
            for block, y in enumerate(mlp_inputs[: adapter.num_layers]):
                mlp = adapter.decoder_layers[block].mlp
                y = y[0, last]
                with torch.inference_mode():
                    ffn.append(mlp.act_fn(mlp.gate_proj(y)) * mlp.up_proj(y))
            att = []
            for a in pre.attentions:
                r = a[0, :, last][:, img]  # (H, P)
                p = r.mean(0) / r.mean(0).sum()
                att.append((r.mean(0), r.amax(0), -(p * p.log()).sum()))
            refs.append(
                {
                    "hidden": torch.stack([h[last] for h in hs]),
                    "hidden_text_mean": torch.stack([h[text].mean(0) for h in hs]),
                    "hidden_image_mean": torch.stack([h[img].mean(0) for h in hs]),
                    "hidden_image_last": torch.stack([h[img.nonzero()[-1, 0]] for h in hs]),
                    "post_last": post.hidden_states[-1][0, last] if post is not None else None,
                    "mlp": torch.stack(ffn),
                    "attention_mean": torch.stack([m for m, _, _ in att]),
                    "attention_max": torch.stack([x for _, x, _ in att]),
                    "entropy": torch.stack([e for _, _, e in att]),
                }
            )
    finally:
        for h in hooks:
            h.remove()
    return refs


def test_every_variable_matches_an_independent_forward(tmp_path, tiny_model, spatial12):
    path, adapter = tiny_model
    cfg = ExtractConfig(batch_size=5, shard_samples=4, dtype="float32", device="cpu", **ALL)
    ds = open_activations(extract(cfg, path, spatial12, tmp_path / "s.zarr", adapter=adapter))
    refs = _reference(adapter, spatial12, range(7))  # 7 rows span two padded batches of 5
    L = adapter.num_layers
    assert list(ds.layer.values) == list(range(L + 1)) and list(ds.block.values) == list(range(-1, L))
    rows, cols = ds.attrs["patch_grid"]
    assert ds.sizes["patch"] == rows * cols == int(refs[0]["attention_mean"].shape[-1])
    assert list(ds.patch_row.values[: cols + 1]) == [0] * cols + [1] and list(ds.patch_col.values[:2]) == [0, 1]
    tol = dict(rtol=1e-4, atol=1e-5)
    for i, ref in enumerate(refs):
        for name in ("hidden", "hidden_text_mean", "hidden_image_mean", "hidden_image_last"):
            np.testing.assert_allclose(ds[name].values[i], ref[name].numpy(), **tol, err_msg=name)
        if ref["post_last"] is not None:  # transformers' default last hidden state is final_norm(our layer L)
            with torch.inference_mode():
                normed = adapter.final_norm(torch.from_numpy(ds.hidden.values[i, L]))
            np.testing.assert_allclose(normed.numpy(), ref["post_last"].numpy(), **tol)
        # attention / mlp at layer k come from block k-1; NaN at the embedding layer
        assert np.isnan(ds.mlp.values[i, 0]).all() and np.isnan(ds.attention.values[i, 0]).all()
        np.testing.assert_allclose(ds.mlp.values[i, 1:], ref["mlp"].numpy(), **tol)
        np.testing.assert_allclose(ds.attention.sel(stat="mean").values[i, 1:], ref["attention_mean"].numpy(), **tol)
        np.testing.assert_allclose(ds.attention.sel(stat="max").values[i, 1:], ref["attention_max"].numpy(), **tol)
        np.testing.assert_allclose(ds.attention_entropy.values[i, 1:], ref["entropy"].numpy(), **tol)
    assert ds.attrs["nonfinite"] == {k: 0 for k in ds.data_vars}
    assert ds.attrs["complete"] is True and ds.attrs["family"] == adapter.family


def test_batch_size_and_shard_size_do_not_change_values(tmp_path, tiny_model, spatial12):
    path, adapter = tiny_model
    a = extract(
        ExtractConfig(batch_size=1, shard_samples=12, dtype="float32", device="cpu", **ALL),
        path,
        spatial12,
        tmp_path / "a",
        adapter=adapter,
    )
    b = extract(
        ExtractConfig(batch_size=7, shard_samples=5, dtype="float32", device="cpu", **ALL),
        path,
        spatial12,
        tmp_path / "b",
        adapter=adapter,
    )
    da, db = open_activations(a), open_activations(b)
    for name in da.data_vars:
        np.testing.assert_allclose(da[name].values, db[name].values, rtol=1e-4, atol=1e-5, err_msg=name)


def test_layer_subset_stops_early_and_matches(tmp_path, tiny_model, spatial12):
    path, adapter = tiny_model
    full = open_activations(
        extract(
            ExtractConfig(batch_size=4, dtype="float32", device="cpu", **ALL),
            path,
            spatial12,
            tmp_path / "f",
            adapter=adapter,
        )
    )
    calls = []
    hook = adapter.decoder_layers[1].register_forward_hook(lambda *a: calls.append(1))
    try:
        cfg = ExtractConfig(batch_size=4, dtype="float32", device="cpu", layers=(0, 1), **ALL)
        sub = open_activations(extract(cfg, path, spatial12, tmp_path / "s", adapter=adapter))
    finally:
        hook.remove()
    assert calls == []  # block 1 never ran: layer 1 is block 0's output
    assert list(sub.layer.values) == [0, 1]
    for name in sub.data_vars:
        np.testing.assert_allclose(sub[name].values, full[name].sel(layer=[0, 1]).values, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_storage_is_the_rounded_float32_run(tmp_path, tiny_model, spatial12, dtype):
    import ml_dtypes

    path, adapter = tiny_model
    ref = open_activations(
        extract(
            ExtractConfig(batch_size=6, dtype="float32", device="cpu"),
            path,
            spatial12,
            tmp_path / "f32",
            adapter=adapter,
        )
    )
    half = open_activations(
        extract(
            ExtractConfig(batch_size=6, dtype=dtype, device="cpu"), path, spatial12, tmp_path / dtype, adapter=adapter
        )
    )
    np_dtype = ml_dtypes.bfloat16 if dtype == "bfloat16" else np.float16
    np.testing.assert_array_equal(
        half.hidden.values.astype(np.float32), ref.hidden.values.astype(np_dtype).astype(np.float32)
    )
    assert half.attrs["dtype"] == dtype


def test_bfloat16_model_compute_path(tmp_path, tiny_model, spatial12):
    """The GPU default (bf16 weights) on CPU: half-precision hooks, means in float32, close to the fp32 run."""
    path, adapter = tiny_model
    cfg = ExtractConfig(batch_size=6, dtype="float32", device="cpu", positions=("last", "image_mean"), mlp=True)
    ref = open_activations(extract(cfg, path, spatial12, tmp_path / "f32", adapter=adapter))
    half = open_activations(
        extract(cfg.model_copy(update={"model_dtype": "bfloat16"}), path, spatial12, tmp_path / "bf16")
    )
    assert half.attrs["model_dtype"] == "bfloat16" and ref.attrs["model_dtype"] == "float32"
    for name in ref.data_vars:
        a, b = ref[name].values, half[name].values
        both = np.isfinite(a)
        assert (np.isfinite(b) == both).all()
        scale = np.abs(a[both]).max()
        assert np.abs(a[both] - b[both]).max() < 0.1 * scale, name
