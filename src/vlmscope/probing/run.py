"""``run_probes``: per-layer probes of one label off an activation store, with controls and CIs.

For every layer (read a chunk of layers at a time), every fit (one split or
K folds) trains the real-label probe and the control-task probes together
(see :mod:`vlmscope.probing.backends`), predicts the held-out rows, and the
per-layer scores are aggregated:

- ``accuracy``: held-out accuracy (mean over folds with K-fold);
- ``accuracy_std``: std over folds with K-fold, else the bootstrap std;
- ``ci_low``/``ci_high``: percentile bootstrap over the held-out predictions
  (all out-of-fold predictions with K-fold), the same resamples for every layer;
- ``control_accuracy``: mean accuracy on the control tasks; ``selectivity`` =
  accuracy - control_accuracy.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import xarray as xr

from vlmscope import __version__
from vlmscope.activations.store import open_store
from vlmscope.errors import ConfigError, SmallSampleWarning, StoreError
from vlmscope.io.atomic import atomic_dir
from vlmscope.io.outguard import check_out
from vlmscope.io.progress import track
from vlmscope.probing.backends import fit_layers, n_problems, predict_classes
from vlmscope.probing.config import ProbeConfig
from vlmscope.probing.controls import control_labels
from vlmscope.probing.metrics import accuracy, balanced_accuracy, bootstrap_interval
from vlmscope.probing.outputs import (
    best_layer_metrics,
    plot_per_layer,
    write_metrics,
    write_probes,
    write_table,
)
from vlmscope.probing.source import (
    ProbeData,
    _label_strings,
    chunk_layers_for,
    iter_layer_chunks,
    probe_data,
)
from vlmscope.probing.splits import Fit, make_fits

__all__ = ["ProbeResult", "ProbeRun", "compute_probes", "run_probes", "write_probe_run"]

_PROVENANCE = ("model", "model_revision", "weights_hash", "family", "dataset", "dataset_fingerprint", "positions", "dtype")


@dataclass(frozen=True)
class ProbeRun:
    """A probing run in memory: :func:`compute_probes` returns it, :func:`write_probe_run` writes it."""

    table: pl.DataFrame
    """One row per probed layer (the ``per_layer.csv`` content)."""
    metrics: dict[str, Any]
    """The ``metrics.json`` content."""
    probes: xr.Dataset
    """``coef`` (layer, fit, problem, feature) and ``intercept`` (layer, fit, problem) of the real-label
    probes; ``attrs`` is the provenance record (``probes/config.json``: config, classes, store provenance)."""
    chance: float
    """Majority-class accuracy on the held-out rows (the plot's chance line)."""


@dataclass(frozen=True)
class ProbeResult:
    out: Path
    table: pl.DataFrame
    """One row per probed layer (the ``per_layer.csv`` content)."""
    metrics: dict[str, Any]
    """The ``metrics.json`` content."""


def _fits(ds: xr.Dataset, data: ProbeData, config: ProbeConfig) -> list[Fit]:
    split_values = None
    if config.split_kind == "column":
        col = config.split_column
        coords = sorted(str(n) for n, c in ds.coords.items() if c.dims == ("sample",) and n != "sample")
        if col not in ds.coords or ds[col].dims != ("sample",):
            raise StoreError(f"split column {col!r} is not a coordinate on 'sample' of the store; available: {', '.join(coords)}")
        split_values = _label_strings(ds[col].values[data.rows]).tolist()
    fits = make_fits(
        data.y, data.sample_ids.tolist(), kind=config.split_kind, test_size=config.test_size, folds=config.folds,
        seed=config.seed, stratify=config.stratify, split_file=config.split_file, split_values=split_values,
        split_column=config.split_column,
    )
    for k, fit in enumerate(fits):
        present = np.unique(data.y[fit.train])
        if len(present) < 2:
            raise ConfigError(
                f"fit {k}: the training rows hold a single class ({data.classes[int(present[0])]!r}); "
                "check the split (file/column) or use a stratified random split"
            )
    return fits


MIN_SAMPLES = 50
"""Below this many samples a probe's accuracy is noise: the 95% interval of an accuracy near 0.5
measured on n held-out predictions is about +-1/sqrt(n), +-0.14 at n=50 (and fewer are held out)."""

MIN_PER_CLASS = 10
"""Below this many samples of a class, a fold's training rows hold a few of it at best."""


def warn_if_small(y: np.ndarray, classes: Sequence[Any]) -> None:
    """:class:`SmallSampleWarning` when there are fewer than :data:`MIN_SAMPLES` samples or
    :data:`MIN_PER_CLASS` of some class: the probe still runs (smoke tests use tiny stores),
    but its numbers must not be read as results."""
    counts = np.bincount(np.asarray(y, dtype=np.int64), minlength=len(classes))
    small = int(counts.argmin())
    if len(y) < MIN_SAMPLES or counts[small] < MIN_PER_CLASS:
        warnings.warn(
            f"probing {len(y)} samples, {int(counts[small])} of class {classes[small]!r}: with fewer than "
            f"{MIN_SAMPLES} samples or {MIN_PER_CLASS} per class the accuracies mean nothing",
            SmallSampleWarning,
            stacklevel=3,
        )


def compute_probes(
    source: xr.Dataset | str | os.PathLike[str],
    config: ProbeConfig,
    *,
    progress: bool | None = None,
) -> ProbeRun:
    """Probe ``config.label`` from ``config.variable`` at every layer; nothing is written.

    Arguments and errors as :func:`run_probes`; ``progress`` None shows the
    bar on a terminal only.
    """
    ds = open_store(source)
    data = probe_data(ds, label=config.label, variable=config.variable, layers=config.layers)
    fits = _fits(ds, data, config)
    warn_if_small(data.y, data.classes)
    K = len(data.classes)
    P = n_problems(K)
    N = len(data.y)
    controls = control_labels(data.y, n=config.controls, seed=config.seed, groups=data.groups)
    label_sets = np.concatenate([data.y[None], controls], 0)  # (T, N): real labels first
    T = label_sets.shape[0]
    n_train = max(len(f.train) for f in fits)
    chunk = chunk_layers_for(N, n_train, data.n_features, config.memory_mb)
    tested = np.unique(np.concatenate([f.test for f in fits]))  # rows with a held-out prediction

    rows: list[dict[str, Any]] = []
    coefs: list[np.ndarray] = []
    intercepts: list[np.ndarray] = []
    probed: list[int] = []
    with track(len(data.layers), f"probing {config.label}", enabled=progress) as advance:
        for layers, X in iter_layer_chunks(data, chunk, variable=config.variable):
            Lc = X.shape[0]
            pred = np.full((Lc, T, N), -1, dtype=np.int64)
            acc = np.zeros((Lc, len(fits)))
            bal = np.zeros((Lc, len(fits)))
            ctrl = np.full((Lc, len(fits), max(T - 1, 1)), np.nan)
            coef = np.zeros((Lc, len(fits), P, X.shape[2]), np.float32)
            icpt = np.zeros((Lc, len(fits), P), np.float32)
            iters = np.zeros((Lc, len(fits)), np.int64)
            conv = np.ones((Lc, len(fits)), bool)
            for fi, fit in enumerate(fits):
                fl = fit_layers(
                    X[:, fit.train], label_sets[:, fit.train], K, method=config.method, C=config.C,
                    standardize=config.standardize, max_iter=config.max_iter, tol=config.resolved_tol,
                    solver=config.resolved_solver, overwrite_X=True,  # X[:, train] is a fresh copy
                )
                W = fl.coef.reshape(Lc, T * P, -1)  # (Lc, T*P, F)
                scores = np.matmul(X[:, fit.test], W.transpose(0, 2, 1)) + fl.intercept.reshape(Lc, 1, T * P)
                scores = scores.reshape(Lc, len(fit.test), T, P).transpose(0, 2, 1, 3)  # (Lc, T, M, P)
                p = predict_classes(scores, K)  # (Lc, T, M)
                pred[:, :, fit.test] = p
                truth = label_sets[:, fit.test]  # (T, M)
                acc[:, fi] = accuracy(p[:, 0], truth[0])
                bal[:, fi] = balanced_accuracy(p[:, 0], truth[0])
                for t in range(1, T):
                    ctrl[:, fi, t - 1] = accuracy(p[:, t], truth[t])
                coef[:, fi], icpt[:, fi] = fl.coef[:, 0], fl.intercept[:, 0]
                iters[:, fi] = fl.n_iter[:, 0].max(-1)
                conv[:, fi] = fl.converged[:, 0].all(-1)
            correct = pred[:, 0, tested] == label_sets[0, tested][None, :]  # (Lc, M_total)
            lo, hi, boot_std = bootstrap_interval(correct, n=config.bootstrap, level=config.ci, seed=config.seed)
            for j in range(Lc):
                control = float(np.mean(ctrl[j])) if T > 1 else float("nan")
                a = float(acc[j].mean())
                rows.append(
                    {
                        "layer": int(layers[j]),
                        "accuracy": a,
                        "balanced_accuracy": float(bal[j].mean()),
                        "accuracy_std": float(acc[j].std()) if len(fits) > 1 else float(boot_std[j]),
                        "ci_low": float(lo[j]),
                        "ci_high": float(hi[j]),
                        "control_accuracy": control,
                        "control_accuracy_std": float(np.std(ctrl[j].mean(0))) if T > 2 else float("nan"),
                        "selectivity": a - control,
                        "n_train": round(float(np.mean([len(f.train) for f in fits]))),
                        "n_test": len(tested),
                        "n_folds": len(fits),
                        "n_iter": int(iters[j].max()),
                        "converged": bool(conv[j].all()),
                    }
                )
            coefs.append(coef)
            intercepts.append(icpt)
            probed.extend(int(v) for v in layers)
            advance(Lc)
            del X
    if not rows:
        raise StoreError(f"variable {config.variable!r} holds no finite values at the requested layers")

    table = pl.DataFrame(rows)
    truth_tested = data.y[tested]
    chance = float(np.bincount(truth_tested, minlength=K).max() / len(truth_tested))
    metrics = best_layer_metrics(table, chance=chance, n_classes=K, n_samples=N, n_dropped=data.n_dropped)
    meta = {
        "config": config.model_dump(mode="json"),
        "label": config.label,
        "variable": config.variable,
        "classes": data.classes,
        "layers": probed,
        "feature_dims": list(data.feature_dims),
        "feature_shape": list(data.feature_shape),
        "n_fits": len(fits),
        "solver": config.resolved_solver,
        "decision": (
            "scores = x @ coef[layer, fit].T + intercept[layer, fit] on raw features flattened in "
            "feature_dims order; class = classes[argmax(scores)], or classes[int(scores[0] > 0)] with 2 classes"
        ),
        "store": {k: data.attrs.get(k) for k in _PROVENANCE if k in data.attrs},
        "vlmscope_version": __version__,
    }
    coef, intercept = np.concatenate(coefs), np.concatenate(intercepts)  # (L, fits, P, F), (L, fits, P)
    probes = xr.Dataset(
        {
            "coef": (("layer", "fit", "problem", "feature"), coef),
            "intercept": (("layer", "fit", "problem"), intercept),
        },
        coords={"layer": np.asarray(probed)},
        attrs=meta,
    )
    return ProbeRun(table=table, metrics=metrics, probes=probes, chance=chance)


def write_probe_run(run: ProbeRun, out: str | os.PathLike[str]) -> Path:
    """Write :func:`compute_probes`'s result to ``out`` (replaced atomically): table, metrics, plot, probes."""
    meta = dict(run.probes.attrs)
    cfg = meta["config"]
    fits = f"{meta['n_fits']}-fold" if cfg["folds"] else "held-out"
    title = f"{cfg['label']} from {cfg['variable']} ({cfg['method']}, {fits})"
    with atomic_dir(out, kind="probe") as tmp:
        write_table(run.table, tmp)
        write_metrics(run.metrics, tmp)
        plot_per_layer(run.table, tmp, title=title, chance=run.chance, ci=cfg["ci"])
        write_probes(tmp, coef=run.probes["coef"].values, intercept=run.probes["intercept"].values,
                     layers=run.probes["layer"].values, meta=meta)
    return Path(out)


def run_probes(
    source: xr.Dataset | str | os.PathLike[str],
    config: ProbeConfig,
    out: str | os.PathLike[str],
    *,
    progress: bool | None = None,
) -> ProbeResult:
    """Probe ``config.label`` from ``config.variable`` at every layer; write the artifacts to ``out``.

    :func:`compute_probes` then :func:`write_probe_run`. ``source`` is a
    store path or an (in-memory or lazily opened) Dataset in the store's
    layout. Outputs (replaced atomically): ``per_layer.csv``,
    ``metrics.json``, ``per_layer.png`` and ``probes/``
    (``probes.safetensors`` with the real-label probes of every layer and
    fit, ``config.json`` beside it).

    Raises:
        StoreError: store incomplete, variable or label column missing, NaN features.
        ConfigError: a single class, bad layers, a split that cannot be made.
        DatasetError / NotFound: bad split file.
    """
    check_out(out, "probe", [source])  # before the probes fit: refuse early
    run = compute_probes(source, config, progress=progress)
    return ProbeResult(out=write_probe_run(run, out), table=run.table, metrics=run.metrics)
