"""`vlmscope probe`: per-layer linear probes of a label off an activation store."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from vlmscope.cli.options import ParamsFile, Sets, bind, run_config

__all__ = ["probe"]


def _layers(text: str | None) -> tuple[int, ...] | None:
    if text is None:
        return None
    from vlmscope.errors import ConfigError

    try:
        return tuple(int(p) for p in text.split(",") if p.strip())
    except ValueError:
        raise ConfigError(f"--layers must be comma-separated integers, got {text!r}") from None


@bind(
    "vlmscope.probing.config:ProbeConfig",
    "label", "variable", "method", "C", "standardize", "folds", "split_file", "split_column", "test_size",
    "stratify", "controls", "bootstrap", "seed", "original", "solver", "max_iter", "layers", "memory_mb",
)  # fmt: skip
def probe(
    store: Annotated[Path, typer.Argument(help="Activation store (from `vlmscope extract`).")],
    out: Annotated[Path, typer.Option("--out", help="Output directory (replaced atomically).")],
    label: Annotated[str | None, typer.Option("--label", help="Label column (a coordinate on 'sample') to decode.")] = None,
    variable: Annotated[
        str | None, typer.Option("--variable", help="hidden | hidden_<position> | attention | mlp (any (sample, layer, ...)).")
    ] = None,
    method: Annotated[str | None, typer.Option("--method", help="logreg (one-vs-rest logistic) | svm (linear SVM).")] = None,
    C: Annotated[float | None, typer.Option("--C", help="Inverse L2 strength, as in sklearn.")] = None,
    standardize: Annotated[
        bool | None, typer.Option("--standardize/--no-standardize", help="Scale features per training set.")
    ] = None,
    folds: Annotated[int | None, typer.Option("--folds", help="K-fold cross-validation instead of one split.")] = None,
    split_file: Annotated[
        Path | None, typer.Option("--split-file", help="CSV/TSV/TXT/JSON of sample ids with their split.")
    ] = None,
    split_column: Annotated[
        str | None,
        typer.Option("--split-column", help="Store coordinate with train/test per sample (or the split file's column)."),
    ] = None,
    test_size: Annotated[float | None, typer.Option("--test-size", help="Held-out fraction.")] = None,
    stratify: Annotated[
        bool | None, typer.Option("--stratify/--no-stratify", help="Stratify split/folds by label.")
    ] = None,
    controls: Annotated[int | None, typer.Option("--controls", help="Control-task shuffles averaged (0: none).")] = None,
    bootstrap: Annotated[int | None, typer.Option("--bootstrap", help="Bootstrap resamples for the CI (0: none).")] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Seed of split, folds, controls, bootstrap.")] = None,
    original: Annotated[
        bool | None,
        typer.Option("--original", help="Reproduce the spatial study: logreg C=1 lbfgs, no scaling, 80/20 seed 42."),
    ] = None,
    solver: Annotated[str | None, typer.Option("--solver", help="auto | torch (batched) | sklearn.")] = None,
    max_iter: Annotated[int | None, typer.Option("--max-iter", help="Solver iteration cap.")] = None,
    layers: Annotated[str | None, typer.Option("--layers", help="Comma-separated layers; unset: every stored layer.")] = None,
    memory_mb: Annotated[int | None, typer.Option("--memory-mb", help="Working-memory budget for a layer chunk.")] = None,
    params: ParamsFile = None,
    set_: Sets = None,
) -> None:
    """Probe a label at every layer: per_layer.csv, metrics.json, per_layer.png, probes in --out."""
    from vlmscope.probing import run_probes

    cfg = run_config(
        probe, params, set_,
        label=label, variable=variable, method=method, C=C, standardize=standardize, folds=folds,
        split_file=split_file, split_column=split_column, test_size=test_size, stratify=stratify,
        controls=controls, bootstrap=bootstrap, seed=seed, original=original or None, solver=solver,
        max_iter=max_iter, layers=_layers(layers), memory_mb=memory_mb,
    )  # fmt: skip
    result = run_probes(store, cfg, out)
    m = result.metrics
    nan = float("nan")
    typer.echo(
        f"best layer {m['best_layer']}: accuracy {m['accuracy']:.4f} "
        f"[{m.get('ci_low', nan):.4f}, {m.get('ci_high', nan):.4f}], "
        f"control {m.get('control_accuracy', nan):.4f}, chance {m['chance_accuracy']:.4f}"
    )
    typer.echo(f"wrote {out}")
