"""Probe run artifacts: ``per_layer.csv``, ``metrics.json``, ``per_layer.png``, probes + ``config.json``.

Written into a directory that :func:`vlmscope.io.atomic.atomic_dir` renames
into place, so a killed run never leaves half an output.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from vlmscope.io.jsonfile import write_json

__all__ = [
    "CONFIG",
    "METRICS",
    "PLOT",
    "PROBES",
    "PROBES_DIR",
    "TABLE",
    "best_layer_metrics",
    "plot_per_layer",
    "write_metrics",
    "write_probes",
    "write_table",
]

TABLE, METRICS, PLOT = "per_layer.csv", "metrics.json", "per_layer.png"
PROBES_DIR, PROBES, CONFIG = "probes", "probes.safetensors", "config.json"
"""Fitted probes live in ``out/probes/``: ``probes.safetensors`` with ``config.json`` beside it."""


def _num(v: Any) -> Any:
    """JSON-safe number: NaN becomes None."""
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return None if math.isnan(float(v)) else float(v)
    return v


def best_layer_metrics(table: pl.DataFrame, *, chance: float, n_classes: int, n_samples: int, n_dropped: int) -> dict[str, Any]:
    """Flat numbers for ``dvc metrics show``: the best layer (highest accuracy, earliest on ties) and its scores."""
    acc = table["accuracy"].to_numpy()
    best = int(np.argmax(acc))
    row = table.row(best, named=True)
    sel = table["selectivity"].to_numpy()
    out: dict[str, Any] = {
        "best_layer": int(row["layer"]),
        "accuracy": row["accuracy"],
        "balanced_accuracy": row["balanced_accuracy"],
        "accuracy_std": row["accuracy_std"],
        "ci_low": row["ci_low"],
        "ci_high": row["ci_high"],
        "control_accuracy": row["control_accuracy"],
        "selectivity": row["selectivity"],
        "chance_accuracy": chance,
        "n_layers": table.height,
        "n_classes": n_classes,
        "n_samples": n_samples,
        "n_unlabelled": n_dropped,
        "n_train": row["n_train"],
        "n_test": row["n_test"],
    }
    if np.isfinite(sel).any():
        k = int(np.nanargmax(sel))
        out["max_selectivity"] = float(sel[k])
        out["max_selectivity_layer"] = int(table["layer"][k])
    # undefined numbers (no control task, no bootstrap) are left out: dvc metrics stay numeric
    return {k: _num(v) for k, v in out.items() if _num(v) is not None}


def write_table(table: pl.DataFrame, out: Path) -> None:
    table.write_csv(out / TABLE, float_precision=6)


def write_metrics(metrics: dict[str, Any], out: Path) -> None:
    write_json(out / METRICS, metrics, sort_keys=False, allow_nan=False)  # best-layer numbers first, as built


def write_probes(
    out: Path, *, coef: np.ndarray, intercept: np.ndarray, layers: np.ndarray, meta: dict[str, Any]
) -> None:
    """``probes/probes.safetensors`` (coef (L, fits, P, F), intercept (L, fits, P), layers (L,)) + ``probes/config.json``."""
    from safetensors.numpy import save_file

    out = out / PROBES_DIR
    out.mkdir(parents=True, exist_ok=True)
    save_file(
        {
            "coef": np.ascontiguousarray(coef, dtype=np.float32),
            "intercept": np.ascontiguousarray(intercept, dtype=np.float32),
            "layers": np.ascontiguousarray(layers, dtype=np.int64),
        },
        str(out / PROBES),
        metadata={"format": "vlmscope-probes/1"},
    )
    write_json(out / CONFIG, meta, default=str)


def plot_per_layer(table: pl.DataFrame, out: Path, *, title: str, chance: float, ci: float = 0.95) -> None:
    """Accuracy and control accuracy over depth, with the bootstrap CI band and chance level."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    layer = table["layer"].to_numpy()
    fig, ax = plt.subplots(figsize=(7, 4), dpi=120)
    try:
        lo, hi = table["ci_low"].to_numpy(), table["ci_high"].to_numpy()
        if np.isfinite(lo).all():
            ax.fill_between(layer, lo, hi, alpha=0.25, color="C0", label=f"{ci:.0%} bootstrap CI")
        ax.plot(layer, table["accuracy"].to_numpy(), "-o", ms=3, color="C0", label="probe accuracy")
        ax.plot(layer, table["balanced_accuracy"].to_numpy(), "--", lw=1, color="C0", alpha=0.7, label="balanced accuracy")
        ctrl = table["control_accuracy"].to_numpy()
        if np.isfinite(ctrl).any():
            ax.plot(layer, ctrl, "-s", ms=3, color="C3", label="control task")
        ax.axhline(chance, color="grey", lw=1, ls=":", label="majority class")
        ax.set_xlabel("layer")
        ax.set_ylabel("accuracy")
        ax.set_ylim(0, 1.02)
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize=8, framealpha=0.8)
        fig.tight_layout()
        fig.savefig(out / PLOT)
    finally:
        plt.close(fig)
