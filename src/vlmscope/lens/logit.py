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

Compute, then write: ``compute_*`` returns the labelled result (an xarray
Dataset, provenance record in ``attrs``), ``write_*`` puts it on disk; the
run function is the two in a row.

Shapes: N samples, C samples per chunk, D hidden size, V vocabulary, K top-k.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vlmscope.errors import StoreError
from vlmscope.io.atomic import atomic_dir
from vlmscope.io.jsonfile import write_json
from vlmscope.io.outguard import check_out
from vlmscope.io.progress import track
from vlmscope.io.store import require_variable
from vlmscope.lens.config import LogitLensConfig
from vlmscope.lens.inputs import check_model, label_values
from vlmscope.lens.outputs import finite
from vlmscope.lens.plots import plot_rank_by_layer
from vlmscope.lens.projection import apply_final_norm, target_rank_prob, top_tokens, unembed
from vlmscope.lens.tokens import AnswerTokenizer, decode_tokens
from vlmscope.lens.weights import LensModel, open_lens_model

if TYPE_CHECKING:  # pragma: no cover
    import polars as pl
    import xarray as xr

__all__ = [
    "LayerLens",
    "compute_logit_lens",
    "lens_layer",
    "logit_lens",
    "logit_lens_metrics",
    "logit_lens_summary",
    "write_logit_lens",
]


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


def compute_logit_lens(
    store: str | os.PathLike[str],
    model_dir: str | os.PathLike[str],
    config: LogitLensConfig = LogitLensConfig(),
    *,
    model: LensModel | None = None,
    revision: str | None = None,
    progress: bool = False,
) -> xr.Dataset:
    """The logit lens of every stored layer of ``store``, labelled; nothing is written.

    Returns a Dataset over ``layer`` (L), ``sample`` (N, the sample ids) and
    ``rank`` (K, 1 = most likely): ``top_token_id``/``top_token``/``top_prob``
    (layer, sample, rank), ``target_rank``/``target_prob`` (layer, sample),
    ``target_token_id``/``target_token`` (sample); ``attrs`` hold the
    provenance record written as ``config.json``. Arguments and errors as
    :func:`logit_lens`.
    """
    import xarray as xr

    from vlmscope.activations.store import open_store

    store = Path(store)
    ds = open_store(store)
    da = require_variable(ds, config.variable, ("sample", "layer", "dim"), path=store)
    lm = model or open_lens_model(model_dir, revision=revision)
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
    per_layer: list[LayerLens] = []
    with track(len(layers), "logit lens", enabled=None if progress else False) as step:
        for layer in layers:
            h = _layer_hidden(da, layer, sample_ids, store)
            per_layer.append(
                lens_layer(h, targets, unembedding, norm=norm, softcap=softcap,
                           top_k=config.top_k, batch_size=config.batch_size)
            )
            step()

    k = per_layer[0].top_ids.shape[1]
    top_ids = np.stack([r.top_ids for r in per_layer])  # (L, N, K)
    strings = decode_tokens(tok.tokenizer, np.concatenate([top_ids.ravel(), targets]))
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
    return xr.Dataset(
        {
            "top_token_id": (("layer", "sample", "rank"), top_ids),
            "top_token": (("layer", "sample", "rank"), _token_column(top_ids.ravel(), strings).reshape(top_ids.shape)),
            "top_prob": (("layer", "sample", "rank"), np.stack([r.top_probs for r in per_layer])),
            "target_rank": (("layer", "sample"), np.stack([r.target_rank for r in per_layer])),
            "target_prob": (("layer", "sample"), np.stack([r.target_prob for r in per_layer])),
            "target_token_id": (("sample",), np.asarray(targets, dtype=np.int64)),
            "target_token": (("sample",), _token_column(targets, strings)),
        },
        coords={
            "layer": np.asarray(layers, dtype=np.int64),
            "sample": np.array(sample_ids, dtype=object),
            "rank": np.arange(1, k + 1, dtype=np.int64),
        },
        attrs=record,
    )


def logit_lens_summary(lens: xr.Dataset) -> pl.DataFrame:
    """``summary.csv``: per layer top-1 accuracy, mean/median target rank, mean target probability."""
    import polars as pl

    top1 = (lens["top_token_id"].values[:, :, 0] == lens["target_token_id"].values[None, :]).mean(axis=1)  # (L,)
    ranks = lens["target_rank"].values  # (L, N)
    return pl.DataFrame(
        {
            "layer": np.asarray(lens["layer"].values, dtype=np.int64),
            "top1_accuracy": top1,
            "mean_target_rank": ranks.mean(axis=1),
            "median_target_rank": np.median(ranks, axis=1),
            "mean_target_prob": lens["target_prob"].values.astype(np.float64).mean(axis=1),
        }
    )


def logit_lens_metrics(lens: xr.Dataset, summary: pl.DataFrame) -> dict[str, float | int]:
    """``metrics.json``: the best layer (earliest among ties) and the final layer's numbers."""
    layers = [int(v) for v in lens["layer"].values.tolist()]
    top1 = summary["top1_accuracy"].to_numpy()
    ranks, tprobs = lens["target_rank"].values, lens["target_prob"].values
    best = int(np.argmax(top1))
    return {
        "best_layer": layers[best],
        "best_layer_top1_accuracy": float(top1[best]),
        "final_layer": layers[-1],
        "final_layer_top1_accuracy": float(top1[-1]),
        "final_layer_mean_target_prob": float(tprobs[-1].astype(np.float64).mean()),
        "final_layer_median_target_rank": float(np.median(ranks[-1])),
        "n_samples": int(lens.sizes["sample"]),
        "n_layers": len(layers),
    }


def write_logit_lens(lens: xr.Dataset, out: str | os.PathLike[str]) -> dict[str, float | int]:
    """Write :func:`compute_logit_lens`'s result to ``out`` (atomically, see the module docstring); return the metrics."""
    import polars as pl

    out = Path(out)
    L, n, k = lens.sizes["layer"], lens.sizes["sample"], lens.sizes["rank"]
    layers = np.asarray(lens["layer"].values, dtype=np.int64)
    sid = np.asarray(lens["sample"].values, dtype=object)
    topk = pl.DataFrame(
        {
            "sample_id": np.tile(np.repeat(sid, k), L),
            "layer": np.repeat(layers, n * k),
            "rank": np.tile(np.asarray(lens["rank"].values, dtype=np.int64), L * n),
            "token_id": lens["top_token_id"].values.ravel(),
            "token": lens["top_token"].values.ravel(),
            "prob": lens["top_prob"].values.ravel(),
        },
        schema={"sample_id": pl.String, "layer": pl.Int64, "rank": pl.Int64, "token_id": pl.Int64,
                "token": pl.String, "prob": pl.Float32},
    )
    target_df = pl.DataFrame(
        {
            "sample_id": np.tile(sid, L),
            "layer": np.repeat(layers, n),
            "target_token_id": np.tile(lens["target_token_id"].values, L),
            "target_token": np.tile(lens["target_token"].values, L),
            "target_rank": lens["target_rank"].values.ravel(),
            "target_prob": lens["target_prob"].values.ravel(),
        },
        schema={"sample_id": pl.String, "layer": pl.Int64, "target_token_id": pl.Int64, "target_token": pl.String,
                "target_rank": pl.Int64, "target_prob": pl.Float32},
    )
    summary = logit_lens_summary(lens)
    metrics = logit_lens_metrics(lens, summary)
    record = dict(lens.attrs)
    with atomic_dir(out, kind="logit-lens") as tmp:
        topk.write_parquet(tmp / "topk.parquet")
        target_df.write_parquet(tmp / "targets.parquet")
        summary.write_csv(tmp / "summary.csv")
        write_json(tmp / "metrics.json", {k_: (finite(v) if isinstance(v, float) else v) for k_, v in metrics.items()},
                   allow_nan=False)
        write_json(tmp / "config.json", record, allow_nan=False)
        plot_rank_by_layer(
            tmp / "rank_by_layer.png",
            layers,
            summary["mean_target_rank"].to_numpy(),
            summary["median_target_rank"].to_numpy(),
            summary["top1_accuracy"].to_numpy(),
            summary["mean_target_prob"].to_numpy(),
            title=f"logit lens: {Path(str(record['model'])).name} on {Path(record['store']).name} "
            f"({record['config']['target_column']})",
        )
    return metrics


def logit_lens(
    store: str | os.PathLike[str],
    model_dir: str | os.PathLike[str],
    config: LogitLensConfig = LogitLensConfig(),
    out: str | os.PathLike[str] = "lens-logit",
    *,
    model: LensModel | None = None,
    revision: str | None = None,
    progress: bool = False,
) -> dict[str, float | int]:
    """Run the logit lens over every stored layer of ``store``; write ``out`` (atomically); return the metrics.

    :func:`compute_logit_lens` then :func:`write_logit_lens`.

    Args:
        store: activation store (``vlmscope extract``), complete.
        model_dir: the checkpoint the store was extracted with: a local
            directory, a pipeline ``vlmscope-ref.json`` pin, or a hub id in
            the local Hugging Face cache.
        config: see :class:`LogitLensConfig`.
        out: output directory (replaced when finished).
        model: an already opened :class:`LensModel` for ``model_dir``.
        revision: hub revision of ``model_dir`` when it is a cached hub id
            (a pin's own revision otherwise applies).
        progress: rich progress bar over layers (on a terminal).

    Raises:
        NotFound, StoreError (incomplete store, missing variable or column),
        StoreMismatch (hidden size / layer count of store vs model),
        ModelError, DatasetError (empty target answer).
    """
    check_out(out, "logit-lens", [store, model_dir])  # before the lens runs: refuse early
    return write_logit_lens(compute_logit_lens(store, model_dir, config, model=model, revision=revision, progress=progress), out)
