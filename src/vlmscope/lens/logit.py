"""The logit lens off a cached activation store: every stored layer read through the output head.

For each stored layer (one lazy read of ``(N, D)``), each sample's residual
goes through the LM's final norm and unembedding, read from the checkpoint's
safetensors files (never the whole model). The store holds the residual
*before* the final norm at every layer, the last one included (transformers'
``hidden_states[-1]`` would already be normed; vlmscope's capture hooks the
block outputs instead), so the norm is applied exactly once at every layer and
the last layer's lens equals the model's own next-token distribution.

Outputs in ``out/``: ``topk.parquet`` (sample_id, layer, rank, token_id,
token, prob), ``targets.parquet`` (sample_id, layer, target_token_id,
target_token, target_rank, target_prob), ``summary.csv`` (layer,
top1_accuracy, mean_target_rank, median_target_rank, mean_target_prob),
``metrics.json`` (flat), ``rank_by_layer.png`` and ``config.json``.

Shapes: N samples, C samples per chunk, D hidden size, V vocabulary, K top-k.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vlmscope.errors import StoreError
from vlmscope.lens.config import LogitLensConfig
from vlmscope.lens.inputs import check_model, label_values, open_store, require_variable
from vlmscope.lens.outputs import finite, layer_progress, write_json
from vlmscope.lens.plots import plot_rank_by_layer
from vlmscope.lens.projection import apply_final_norm, target_rank_prob, top_tokens, unembed
from vlmscope.lens.tokens import AnswerTokenizer, decode_tokens
from vlmscope.lens.weights import LensModel, open_lens_model

__all__ = ["LayerLens", "lens_layer", "logit_lens"]


@dataclass(frozen=True)
class LayerLens:
    """One layer's lens for all samples."""

    top_ids: np.ndarray
    """(N, K) int64 token ids, most likely first."""
    top_probs: np.ndarray
    """(N, K) float32 probabilities."""
    target_rank: np.ndarray
    """(N,) int64, 1 = the target is the most likely token."""
    target_prob: np.ndarray
    """(N,) float32."""


def lens_layer(
    hidden: np.ndarray,
    targets: np.ndarray,
    unembedding: Any,
    *,
    norm: Any | None,
    softcap: float | None,
    top_k: int,
    batch_size: int,
) -> LayerLens:
    """The lens of one layer: (N, D) residuals -> top-k and target rank/probability, C samples per matmul.

    ``norm`` is a :class:`~vlmscope.lens.weights.FinalNorm` or None (raw
    residual into the head); ``unembedding`` the (V, D) float32 matrix.
    """
    import torch

    n = hidden.shape[0]
    k = min(top_k, int(unembedding.shape[0]))
    ids = np.empty((n, k), dtype=np.int64)
    probs = np.empty((n, k), dtype=np.float32)
    ranks = np.empty(n, dtype=np.int64)
    tprob = np.empty(n, dtype=np.float32)
    tgt = torch.from_numpy(np.ascontiguousarray(targets, dtype=np.int64))
    with torch.inference_mode():
        for lo in range(0, n, batch_size):
            hi = min(n, lo + batch_size)
            h = torch.from_numpy(np.ascontiguousarray(hidden[lo:hi], dtype=np.float32))  # (C, D)
            if norm is not None:
                h = apply_final_norm(h, norm)
            logits = unembed(h, unembedding, softcap)  # (C, V)
            top_i, top_p = top_tokens(logits, k)
            r, p = target_rank_prob(logits, tgt[lo:hi])
            ids[lo:hi], probs[lo:hi] = top_i.numpy(), top_p.numpy()
            ranks[lo:hi], tprob[lo:hi] = r.numpy(), p.numpy()
    return LayerLens(ids, probs, ranks, tprob)


def _layer_hidden(da: Any, layer: int, sample_ids: list[str], path: object) -> np.ndarray:
    """(N, D) float32 of one stored layer (one lazy read); non-finite values are refused, sample named."""
    h = np.asarray(da.sel(layer=layer).values, dtype=np.float32)
    bad = ~np.isfinite(h).all(axis=1)
    if bad.any():
        first = sample_ids[int(np.flatnonzero(bad)[0])]
        raise StoreError(
            f"{path}: {int(bad.sum())} sample(s) have non-finite {da.name!r} values at layer {layer} "
            f"(first: {first!r}); re-extract with --dtype float32 or bfloat16"
        )
    return h


def _token_column(ids: np.ndarray, strings: dict[int, str]) -> np.ndarray:
    keys = np.fromiter(strings.keys(), dtype=np.int64, count=len(strings))
    order = np.argsort(keys)
    keys = keys[order]
    vals = np.array(list(strings.values()), dtype=object)[order]
    return vals[np.searchsorted(keys, ids)]


def logit_lens(
    store: str | os.PathLike[str],
    model_dir: str | os.PathLike[str],
    config: LogitLensConfig = LogitLensConfig(),
    out: str | os.PathLike[str] = "lens-logit",
    *,
    model: LensModel | None = None,
    progress: bool = False,
) -> dict[str, float | int]:
    """Run the logit lens over every stored layer of ``store``; write ``out`` (atomically); return the metrics.

    Args:
        store: activation store (``vlmscope extract``), complete.
        model_dir: the checkpoint the store was extracted with: a local
            directory, a pipeline ``vlmscope-ref.json`` pin, or a hub id in
            the local Hugging Face cache.
        config: see :class:`LogitLensConfig`.
        out: output directory (replaced when finished).
        model: an already opened :class:`LensModel` for ``model_dir``.
        progress: rich progress bar over layers (on a terminal).

    Raises:
        NotFound, StoreError (incomplete store, missing variable or column),
        StoreMismatch (hidden size / layer count of store vs model),
        ModelError, DatasetError (empty target answer).
    """
    import polars as pl

    from vlmscope.io.atomic import atomic_dir

    store, out = Path(store), Path(out)
    ds = open_store(store)
    da = require_variable(ds, config.variable, ("sample", "layer", "dim"), path=store)
    lm = model or open_lens_model(model_dir)
    check_model(ds, lm, path=store, variable=config.variable)
    sample_ids = [str(s) for s in ds["sample"].values.tolist()]
    answers = label_values(ds, config.target_column, path=store, option="--target-column")
    questions = [str(q) for q in ds["prompt"].values.tolist()] if "prompt" in ds.coords else None
    tok = AnswerTokenizer(lm)
    targets = tok.first_tokens(answers, questions, sample_ids, column=config.target_column)

    unembedding = lm.unembedding()
    norm = lm.final_norm() if config.final_norm else None
    softcap = lm.names.final_logit_softcapping
    layers = [int(v) for v in ds["layer"].values.tolist()]
    n = len(sample_ids)
    per_layer: list[LayerLens] = []
    with layer_progress(len(layers), "logit lens", progress) as step:
        for layer in layers:
            h = _layer_hidden(da, layer, sample_ids, store)
            per_layer.append(
                lens_layer(h, targets, unembedding, norm=norm, softcap=softcap,
                           top_k=config.top_k, batch_size=config.batch_size)
            )
            step()

    # -- tables ------------------------------------------------------------------------------------
    k = per_layer[0].top_ids.shape[1]
    L = len(layers)
    top_ids = np.stack([r.top_ids for r in per_layer])  # (L, N, K)
    strings = decode_tokens(tok.tokenizer, np.concatenate([top_ids.ravel(), targets]))
    sid = np.array(sample_ids, dtype=object)
    topk = pl.DataFrame(
        {
            "sample_id": np.tile(np.repeat(sid, k), L),
            "layer": np.repeat(np.asarray(layers, dtype=np.int64), n * k),
            "rank": np.tile(np.arange(1, k + 1, dtype=np.int64), L * n),
            "token_id": top_ids.ravel(),
            "token": _token_column(top_ids.ravel(), strings),
            "prob": np.stack([r.top_probs for r in per_layer]).ravel(),
        },
        schema={"sample_id": pl.String, "layer": pl.Int64, "rank": pl.Int64, "token_id": pl.Int64,
                "token": pl.String, "prob": pl.Float32},
    )
    ranks = np.stack([r.target_rank for r in per_layer])  # (L, N)
    tprobs = np.stack([r.target_prob for r in per_layer])  # (L, N)
    tgt_tokens = _token_column(targets, strings)
    target_df = pl.DataFrame(
        {
            "sample_id": np.tile(sid, L),
            "layer": np.repeat(np.asarray(layers, dtype=np.int64), n),
            "target_token_id": np.tile(targets, L),
            "target_token": np.tile(tgt_tokens, L),
            "target_rank": ranks.ravel(),
            "target_prob": tprobs.ravel(),
        },
        schema={"sample_id": pl.String, "layer": pl.Int64, "target_token_id": pl.Int64, "target_token": pl.String,
                "target_rank": pl.Int64, "target_prob": pl.Float32},
    )
    top1 = (top_ids[:, :, 0] == targets[None, :]).mean(axis=1)  # (L,)
    summary = pl.DataFrame(
        {
            "layer": np.asarray(layers, dtype=np.int64),
            "top1_accuracy": top1,
            "mean_target_rank": ranks.mean(axis=1),
            "median_target_rank": np.median(ranks, axis=1),
            "mean_target_prob": tprobs.astype(np.float64).mean(axis=1),
        }
    )
    best = int(np.argmax(top1))  # earliest layer among ties
    metrics: dict[str, float | int] = {
        "best_layer": layers[best],
        "best_layer_top1_accuracy": float(top1[best]),
        "final_layer": layers[-1],
        "final_layer_top1_accuracy": float(top1[-1]),
        "final_layer_mean_target_prob": float(tprobs[-1].astype(np.float64).mean()),
        "final_layer_median_target_rank": float(np.median(ranks[-1])),
        "n_samples": n,
        "n_layers": L,
    }
    record = {
        "config": config.model_dump(),
        "store": str(store),
        "model": lm.source,
        "family": lm.family,
        "store_model": ds.attrs.get("model"),
        "variable": config.variable,
        "final_norm": (
            f"{lm.names.norm_kind} (eps {lm.names.norm_eps}) applied once at every layer: the store holds the "
            "residual before the final norm at every layer, the last included"
            if config.final_norm
            else "not applied (raw residual into the unembedding)"
        ),
        "final_logit_softcapping": softcap,
        "target": f"first token of column {config.target_column!r} after the generation prefix "
        "(the family adapter's answer_ids)",
        "tensors": {"final_norm": lm.names.final_norm_weight, "unembedding": lm.names.unembedding_weight},
    }
    with atomic_dir(out) as tmp:
        topk.write_parquet(tmp / "topk.parquet")
        target_df.write_parquet(tmp / "targets.parquet")
        summary.write_csv(tmp / "summary.csv")
        write_json(tmp / "metrics.json", {k_: (finite(v) if isinstance(v, float) else v) for k_, v in metrics.items()})
        write_json(tmp / "config.json", record)
        plot_rank_by_layer(
            tmp / "rank_by_layer.png",
            np.asarray(layers),
            summary["mean_target_rank"].to_numpy(),
            summary["median_target_rank"].to_numpy(),
            top1,
            summary["mean_target_prob"].to_numpy(),
            title=f"logit lens: {Path(str(lm.source)).name} on {store.name} ({config.target_column})",
        )
    return metrics
