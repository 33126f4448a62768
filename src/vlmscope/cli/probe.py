"""`vlmscope probe`: per-layer linear probes of a label off an activation store."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from vlmscope.cli.options import bind, bound_config
from vlmscope.cli.outdir import refuse_cwd_out
from vlmscope.cli.signature import config_options, field_options, option_names, with_options

__all__ = ["probe"]


def _layers(text: str | None) -> tuple[int, ...] | None:
    if text is None:
        return None
    from vlmscope.errors import ConfigError

    try:
        return tuple(int(p) for p in text.split(",") if p.strip())
    except ValueError:
        raise ConfigError(f"--layers must be comma-separated integers, got {text!r}") from None


_FIELDS = field_options(
    label=(str, "Label column (a coordinate on 'sample') to decode."),
    variable=(str, "hidden | hidden_<position> | attention | mlp (any (sample, layer, ...))."),
    method=(str, "logreg (one-vs-rest logistic) | svm (linear SVM)."),
    C=(float, "Inverse L2 strength, as in sklearn."),
    standardize=(bool, "Scale features per training set."),
    folds=(int, "K-fold cross-validation instead of one split."),
    split_file=(Path, "CSV/TSV/TXT/JSON of sample ids with their split."),
    split_column=(str, "Store coordinate with train/test per sample (or the split file's column)."),
    test_size=(float, "Held-out fraction."),
    stratify=(bool, "Stratify split/folds by label."),
    controls=(int, "Control-task shuffles averaged (0: none)."),
    bootstrap=(int, "Bootstrap resamples for the CI (0: none)."),
    seed=(int, "Seed of split, folds, controls, bootstrap."),
    solver=(str, "auto | torch (batched) | sklearn."),
    max_iter=(int, "Solver iteration cap."),
    layers=(str, "Comma-separated layers; unset: every stored layer."),
    memory_mb=(int, "Working-memory budget for a layer chunk."),
)
"""What to probe and how: options that are a ``ProbeConfig`` field, with shorter help than the field's."""


@bind("vlmscope.probing.config:ProbeConfig", "original", *option_names(_FIELDS))
@with_options(None, _FIELDS, config_options)
def probe(
    store: Annotated[Path, typer.Argument(help="Activation store (from `vlmscope extract`).")],
    out: Annotated[Path, typer.Option("--out", callback=refuse_cwd_out, help="Output directory (written atomically; an existing one is replaced only if it is an earlier output of this kind).")],
    original: Annotated[
        bool | None,
        typer.Option("--original", help="Reproduce the spatial study: logreg C=1 lbfgs, no scaling, 80/20 seed 42."),
    ] = None,
    **options: Any,
) -> None:
    """Probe a label at every layer: per_layer.csv, metrics.json, per_layer.png, probes in --out."""
    from vlmscope.probing import run_probes

    cfg = bound_config(probe, options, original=original or None, layers=_layers(options["layers"]))
    result = run_probes(store, cfg, out)
    m = result.metrics
    nan = float("nan")
    typer.echo(
        f"best layer {m['best_layer']}: accuracy {m['accuracy']:.4f} "
        f"[{m.get('ci_low', nan):.4f}, {m.get('ci_high', nan):.4f}], "
        f"control {m.get('control_accuracy', nan):.4f}, chance {m['chance_accuracy']:.4f}"
    )
    typer.echo(f"wrote {out}")
