"""FFN value-vector analysis (unseen-class study, STUDIES.md D) off a cached activation store.

Per stored layer k >= 1 (the MLP of decoder block k-1; the store's ``mlp``
at layer k is that block's down-projection input at the last prompt token)
and per sample: the ``neurons`` largest activations pick neurons; each
neuron's value vector (its column of the down projection, (D,)) is projected
through the unembedding *without* the final norm, as the original study did
(a value vector is a direction added to the residual, not a residual state),
and its ``tokens`` most likely tokens are kept. The baseline takes the same
number of neurons uniformly at random (without replacement, seeded by
``(seed, layer)``). Each layer projects the union of the needed neurons
over all samples in one batched matmul, so a value vector is projected once
per layer however many samples pick it.

A sample counts as a hit when its label's first token (as the model would
generate it, see :mod:`vlmscope.lens.tokens`) is among the tokens, or a
token equals the label word case-insensitively after stripping whitespace.
Never a substring match.

Outputs in ``out/``: ``ffn.jsonl`` (one record per sample: sample_id,
label, prompt, layers: [{layer, top_neurons, top_tokens, random_neurons,
random_tokens}], tokens per neuron in neuron order), ``summary.csv`` (layer,
gt_in_top, gt_in_random, n_samples), ``metrics.json``, ``ffn_by_layer.png``
and ``config.json``.

Compute, then write: ``compute_*`` returns the labelled result (an xarray
Dataset, provenance record in ``attrs``), ``write_*`` puts it on disk; the
run function is the two in a row.

Shapes: N samples, F FFN width, D hidden size, V vocabulary, n neurons,
t tokens per neuron, U unique neurons of a layer.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vlmscope.errors import ConfigError, StoreError
from vlmscope.io.atomic import atomic_dir
from vlmscope.io.jsonfile import write_json
from vlmscope.io.outguard import check_out
from vlmscope.io.progress import track
from vlmscope.io.store import require_variable
from vlmscope.lens.config import FfnConfig
from vlmscope.lens.inputs import check_model, label_values, layer_blocks
from vlmscope.lens.outputs import finite
from vlmscope.lens.plots import plot_ffn_by_layer
from vlmscope.lens.tokens import AnswerTokenizer, decode_tokens, normalise_word
from vlmscope.lens.weights import LensModel, open_lens_model

if TYPE_CHECKING:  # pragma: no cover
    import polars as pl
    import xarray as xr

__all__ = [
    "FfnLayer",
    "compute_ffn",
    "ffn_analysis",
    "ffn_layer",
    "ffn_metrics",
    "ffn_summary",
    "random_neurons",
    "top_neurons",
    "value_vector_tokens",
    "write_ffn",
]


@dataclass(frozen=True)
class FfnLayer:
    """One layer's neurons and their tokens for all samples."""

    top_neurons: np.ndarray
    """(N, n) int64, largest activation first."""
    top_tokens: np.ndarray
    """(N, n, t) int64 token ids per top neuron, most likely first."""
    random_neurons: np.ndarray
    """(N, n) int64."""
    random_tokens: np.ndarray
    """(N, n, t) int64."""


def top_neurons(acts: np.ndarray, n: int) -> np.ndarray:
    """(N, F) activations -> (N, n) indices of the n largest values per row, largest first."""
    import torch

    return torch.from_numpy(np.ascontiguousarray(acts, dtype=np.float32)).topk(n, dim=1).indices.numpy()


def random_neurons(rng: np.random.Generator, n_samples: int, n_ffn: int, n: int) -> np.ndarray:
    """(N, n) neuron indices drawn uniformly without replacement per row; deterministic given ``rng``'s state.

    Small ``n`` (n * 4 <= F): rows are drawn with replacement and rows with a
    repeat redrawn (rare); otherwise each row is the ``n`` smallest of F
    uniform keys.
    """
    if n > n_ffn:
        raise ConfigError(f"--neurons {n} exceeds the FFN width {n_ffn}")
    if n * 4 <= n_ffn:
        idx = rng.integers(0, n_ffn, size=(n_samples, n), dtype=np.int64)
        while True:
            s = np.sort(idx, axis=1)
            dup = (s[:, 1:] == s[:, :-1]).any(axis=1) if n > 1 else np.zeros(n_samples, dtype=bool)
            if not dup.any():
                return idx
            idx[dup] = rng.integers(0, n_ffn, size=(int(dup.sum()), n), dtype=np.int64)
    rows = max(1, (1 << 22) // n_ffn)
    parts = [
        np.argsort(rng.random((min(rows, n_samples - lo), n_ffn)), axis=1)[:, :n]
        for lo in range(0, n_samples, rows)
    ]
    return np.concatenate(parts).astype(np.int64)


def value_vector_tokens(down_proj: Any, unembedding: Any, neurons: np.ndarray, t: int, batch_size: int) -> np.ndarray:
    """(U,) neuron ids -> (U, t) top token ids of each value vector ``down_proj[:, j]`` through the unembedding.

    ``down_proj``: (D, F), ``unembedding``: (V, D) float32 tensors; no final
    norm (see the module docstring); ``batch_size`` vectors per matmul.
    """
    import torch

    out = np.empty((len(neurons), t), dtype=np.int64)
    cols = torch.from_numpy(np.ascontiguousarray(neurons, dtype=np.int64))
    with torch.inference_mode():
        for lo in range(0, len(neurons), batch_size):
            vecs = down_proj[:, cols[lo : lo + batch_size]].T  # (B, D)
            logits = vecs @ unembedding.T  # (B, V)
            out[lo : lo + batch_size] = logits.topk(t, dim=1).indices.numpy()
    return out


def ffn_layer(
    acts: np.ndarray,
    down_proj: Any,
    unembedding: Any,
    *,
    n: int,
    t: int,
    rng: np.random.Generator,
    batch_size: int,
) -> FfnLayer:
    """Top and random neurons of one layer and their tokens; each needed value vector projected once."""
    N, F = acts.shape
    if n > F:
        raise ConfigError(f"--neurons {n} exceeds the FFN width {F}")
    top = top_neurons(acts, n)
    rnd = random_neurons(rng, N, F, n)
    unique = np.unique(np.concatenate([top.ravel(), rnd.ravel()]))  # (U,)
    toks = value_vector_tokens(down_proj, unembedding, unique, t, batch_size)  # (U, t)
    return FfnLayer(top, toks[np.searchsorted(unique, top)], rnd, toks[np.searchsorted(unique, rnd)])


def _hits(tokens: np.ndarray, gt_ids: np.ndarray, gt_words: np.ndarray, words: dict[int, str]) -> np.ndarray:
    """(N, n, t) token ids -> (N,) bool: the label's first token, or the label word, is among them."""
    flat = tokens.reshape(tokens.shape[0], -1)  # (N, n*t)
    by_id = (flat == gt_ids[:, None]).any(axis=1)
    keys = np.fromiter(words.keys(), dtype=np.int64, count=len(words))
    order = np.argsort(keys)
    norm = np.array([words[int(k)] for k in keys[order]], dtype=object)
    as_words = norm[np.searchsorted(keys[order], flat)]  # (N, n*t) normalised strings
    by_word = (as_words == gt_words[:, None]).any(axis=1)
    return by_id | by_word


def compute_ffn(
    store: str | os.PathLike[str],
    model_dir: str | os.PathLike[str],
    config: FfnConfig = FfnConfig(),
    *,
    model: LensModel | None = None,
    revision: str | None = None,
    progress: bool = False,
) -> xr.Dataset:
    """FFN top-neuron vs random-neuron tokens per decoder layer of ``store``, labelled; nothing is written.

    Returns a Dataset over ``layer`` (L, decoder layers only), ``sample`` (N,
    the sample ids; coordinates ``label`` and, when the store has one,
    ``prompt``), ``neuron`` (n) and ``token`` (t): ``top_neurons`` /
    ``random_neurons`` (layer, sample, neuron) and their decoded
    ``top_tokens`` / ``random_tokens`` (layer, sample, neuron, token),
    ``gt_in_top`` / ``gt_in_random`` (layer, sample) hits; ``attrs`` hold the
    provenance record written as ``config.json``. Arguments and errors as
    :func:`ffn_analysis`.
    """
    import xarray as xr

    from vlmscope.activations.store import open_store

    store = Path(store)
    ds = open_store(store)
    mlp = require_variable(ds, "mlp", ("sample", "layer", "ffn"), path=store)
    lm = model or open_lens_model(model_dir, revision=revision)
    check_model(ds, lm, path=store)
    sample_ids = [str(s) for s in ds["sample"].values.tolist()]
    labels = label_values(ds, config.label_column, path=store, option="--label-column")
    prompts = [str(q) for q in ds["prompt"].values.tolist()] if "prompt" in ds.coords else None
    tok = AnswerTokenizer(lm)
    gt_ids = tok.first_tokens(labels, prompts, sample_ids, column=config.label_column)
    gt_words = np.array([normalise_word(x) for x in labels], dtype=object)

    pairs = [(int(k), int(b)) for k, b in zip(ds["layer"].values.tolist(), layer_blocks(ds).tolist()) if b >= 0]
    layers = [k for k, _ in pairs]  # layer 0 (embeddings) has no MLP
    if not layers:
        raise StoreError(f"{store}: no decoder-block layer in the store (only the embedding layer); nothing to analyse")
    f_store = int(ds.sizes["ffn"])
    unembedding = lm.unembedding()
    t = min(config.tokens, int(unembedding.shape[0]))
    results: list[FfnLayer] = []
    with track(len(layers), "ffn", enabled=None if progress else False) as step:
        for layer, block in pairs:
            f_model = lm.ffn_size(block)
            if f_model != f_store:
                raise StoreError(
                    f"{store}: FFN width {f_store} in the store vs {f_model} in block {block} of {lm.source}; "
                    "pass the model the store was made with"
                )
            acts = np.asarray(mlp.sel(layer=layer).values, dtype=np.float32)  # (N, F)
            bad = ~np.isfinite(acts).all(axis=1)
            if bad.any():
                raise StoreError(
                    f"{store}: non-finite 'mlp' values at layer {layer} for {int(bad.sum())} sample(s) "
                    f"(first: {sample_ids[int(np.flatnonzero(bad)[0])]!r}); re-extract with --mlp"
                )
            rng = np.random.default_rng([config.seed, layer])
            results.append(
                ffn_layer(acts, lm.down_proj(block), unembedding, n=config.neurons, t=t, rng=rng,
                          batch_size=config.batch_size)
            )
            step()

    all_ids = np.concatenate([np.concatenate([r.top_tokens.ravel(), r.random_tokens.ravel()]) for r in results])
    strings = decode_tokens(tok.tokenizer, all_ids)
    words = {i: normalise_word(s) for i, s in strings.items()}
    in_top = np.stack([_hits(r.top_tokens, gt_ids, gt_words, words) for r in results])  # (L, N)
    in_rnd = np.stack([_hits(r.random_tokens, gt_ids, gt_words, words) for r in results])  # (L, N)
    record = {
        "config": config.model_dump(),
        "store": str(store),
        "model": lm.source,
        "family": lm.family,
        "store_model": ds.attrs.get("model"),
        "layers": "store layer k = MLP of decoder block k-1 (its down-projection input at the last prompt token)",
        "projection": "value vector (down_proj column) @ unembedding^T, no final norm (as the original study)",
        "random_baseline": f"uniform without replacement per (sample, layer), numpy default_rng([{config.seed}, layer])",
        "match": "label's first answer token id, or a token equal to the label word (case-insensitive, stripped)",
        "tensors": {"unembedding": lm.names.unembedding_weight, "down_proj": lm.names.down_proj_weight},
    }

    def tokens_of(ids: np.ndarray) -> np.ndarray:
        return np.array([strings[int(i)] for i in ids.ravel()], dtype=object).reshape(ids.shape)

    coords: dict[str, Any] = {
        "layer": np.asarray(layers, dtype=np.int64),
        "sample": np.array(sample_ids, dtype=object),
        "label": ("sample", np.array(labels, dtype=object)),
    }
    if prompts is not None:
        coords["prompt"] = ("sample", np.array(prompts, dtype=object))
    cell, tokens = ("layer", "sample", "neuron"), ("layer", "sample", "neuron", "token")
    return xr.Dataset(
        {
            "top_neurons": (cell, np.stack([r.top_neurons for r in results])),
            "top_tokens": (tokens, np.stack([tokens_of(r.top_tokens) for r in results])),
            "random_neurons": (cell, np.stack([r.random_neurons for r in results])),
            "random_tokens": (tokens, np.stack([tokens_of(r.random_tokens) for r in results])),
            "gt_in_top": (("layer", "sample"), in_top),
            "gt_in_random": (("layer", "sample"), in_rnd),
        },
        coords=coords,
        attrs=record,
    )


def ffn_summary(ffn: xr.Dataset) -> pl.DataFrame:
    """``summary.csv``: per layer the fraction of samples whose label is among the top / random neurons' tokens."""
    import polars as pl

    n_layers = ffn.sizes["layer"]
    return pl.DataFrame(
        {
            "layer": np.asarray(ffn["layer"].values, dtype=np.int64),
            "gt_in_top": ffn["gt_in_top"].values.mean(axis=1),
            "gt_in_random": ffn["gt_in_random"].values.mean(axis=1),
            "n_samples": np.full(n_layers, ffn.sizes["sample"], dtype=np.int64),
        }
    )


def ffn_metrics(ffn: xr.Dataset) -> dict[str, float | int]:
    """``metrics.json``: overall hit rates, the first layer above the random baseline, best and final layers."""
    layers = [int(v) for v in ffn["layer"].values.tolist()]
    in_top, in_rnd = ffn["gt_in_top"].values, ffn["gt_in_random"].values  # (L, N)
    frac_top, frac_rnd = in_top.mean(axis=1), in_rnd.mean(axis=1)
    above = np.flatnonzero(frac_top > frac_rnd)
    best = int(np.argmax(frac_top))
    return {
        "first_layer_above_baseline": int(layers[int(above[0])]) if above.size else -1,
        "gt_in_top": float(in_top.mean()),
        "gt_in_random": float(in_rnd.mean()),
        "best_layer": layers[best],
        "best_layer_gt_in_top": float(frac_top[best]),
        "final_layer_gt_in_top": float(frac_top[-1]),
        "final_layer_gt_in_random": float(frac_rnd[-1]),
        "n_samples": int(ffn.sizes["sample"]),
        "n_layers": len(layers),
    }


def write_ffn(ffn: xr.Dataset, out: str | os.PathLike[str]) -> dict[str, float | int]:
    """Write :func:`compute_ffn`'s result to ``out`` (atomically, see the module docstring); return the metrics."""
    out = Path(out)
    layers = [int(v) for v in ffn["layer"].values.tolist()]
    sample_ids = [str(s) for s in ffn["sample"].values.tolist()]
    labels = [str(s) for s in ffn["label"].values.tolist()]
    prompts = [str(s) for s in ffn["prompt"].values.tolist()] if "prompt" in ffn.coords else None
    top_n, top_t = ffn["top_neurons"].values, ffn["top_tokens"].values
    rnd_n, rnd_t = ffn["random_neurons"].values, ffn["random_tokens"].values
    summary = ffn_summary(ffn)
    metrics = ffn_metrics(ffn)
    record = dict(ffn.attrs)
    with atomic_dir(out, kind="ffn-lens") as tmp:
        with (tmp / "ffn.jsonl").open("w", encoding="utf-8") as fh:
            for i, sid in enumerate(sample_ids):
                rec = {
                    "sample_id": sid,
                    "label": labels[i],
                    "prompt": prompts[i] if prompts is not None else None,
                    "layers": [
                        {
                            "layer": layer,
                            "top_neurons": top_n[j, i].tolist(),
                            "top_tokens": top_t[j, i].tolist(),
                            "random_neurons": rnd_n[j, i].tolist(),
                            "random_tokens": rnd_t[j, i].tolist(),
                        }
                        for j, layer in enumerate(layers)
                    ],
                }
                fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
        summary.write_csv(tmp / "summary.csv")
        write_json(tmp / "metrics.json", {k: (finite(v) if isinstance(v, float) else v) for k, v in metrics.items()},
                   allow_nan=False)
        write_json(tmp / "config.json", record, allow_nan=False)
        plot_ffn_by_layer(
            tmp / "ffn_by_layer.png", np.asarray(layers),
            summary["gt_in_top"].to_numpy(), summary["gt_in_random"].to_numpy(),
            title=f"FFN value vectors: {Path(str(record['model'])).name} on {Path(record['store']).name} "
            f"({record['config']['label_column']})",
        )
    return metrics


def ffn_analysis(
    store: str | os.PathLike[str],
    model_dir: str | os.PathLike[str],
    config: FfnConfig = FfnConfig(),
    out: str | os.PathLike[str] = "lens-ffn",
    *,
    model: LensModel | None = None,
    revision: str | None = None,
    progress: bool = False,
) -> dict[str, float | int]:
    """FFN top-neuron vs random-neuron tokens per layer of ``store``; write ``out`` (atomically); return metrics.

    :func:`compute_ffn` then :func:`write_ffn`.

    Args:
        store: a complete activation store extracted with ``--mlp``.
        model_dir: the checkpoint the store was made with (local directory,
            ``vlmscope-ref.json`` pin, or a hub id in the local cache).
        config: see :class:`FfnConfig`.
        out: output directory (replaced when finished).
        model: an already opened :class:`LensModel`.
        revision: hub revision of ``model_dir`` when it is a cached hub id
            (a pin's own revision otherwise applies).
        progress: rich progress bar over layers (on a terminal).

    Raises:
        StoreError (no ``mlp``: re-extract with ``--mlp``; missing label column),
        StoreMismatch (hidden size / layers / FFN width vs the model),
        ModelError, DatasetError (empty label), ConfigError (``neurons`` > FFN width).
    """
    check_out(out, "ffn-lens", [store, model_dir])  # before the lens runs: refuse early
    return write_ffn(compute_ffn(store, model_dir, config, model=model, revision=revision, progress=progress), out)
