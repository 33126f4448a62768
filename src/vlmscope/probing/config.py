"""``ProbeConfig``: every knob of a per-layer probing run, validated at the boundary.

The CLI builds it from its options and DVC stages from ``params.yaml``
(section ``probe``); ``run_probes`` only ever sees a valid config.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from vlmscope.errors import ConfigError
from vlmscope.probing.backends import default_tol

__all__ = ["ORIGINAL_SPATIAL", "ProbeConfig"]

ORIGINAL_SPATIAL: dict[str, Any] = {
    "method": "logreg",
    "C": 1.0,
    "standardize": False,
    "max_iter": 1000,
    "test_size": 0.2,
    "seed": 42,
    "stratify": False,
}
"""What ``original=True`` fixes: the spatial study's probe (sklearn LogisticRegression, lbfgs,
C=1, max_iter 1000, no scaling, ``train_test_split(test_size=0.2, random_state=42)``)."""


def _field_error(field: str, value: Any, message: str) -> ValidationError:
    """A validation error located at ``field`` (the CLI prints it as ``--field: message (got value)``)."""
    return ValidationError.from_exception_data(
        "ProbeConfig",
        [{"type": "value_error", "loc": (field,), "input": value, "ctx": {"error": ConfigError(message)}}],
    )


class ProbeConfig(BaseModel):
    """Per-layer linear probes of one label column on one store variable."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    label: str = Field(min_length=1)
    """Store coordinate on ``sample`` holding the class of each sample (``relation``, ``count`` ...)."""
    variable: str = "hidden"
    """Data variable with dims ``(sample, layer, ...)``: ``hidden``, ``hidden_<position>``,
    ``attention`` (stat x patch flattened), ``mlp``."""
    method: Literal["logreg", "svm"] = "logreg"
    """``logreg``: one-vs-rest L2 logistic regression (spatial study); ``svm``: linear SVM,
    squared hinge, penalised intercept (sklearn ``LinearSVC``; counting study)."""
    C: float = Field(1.0, gt=0, le=1e6)
    """Inverse regularisation strength, as in sklearn."""
    standardize: bool = True
    """Scale features to zero mean / unit variance on each fit's training rows."""
    test_size: float = Field(0.2, gt=0, lt=1)
    """Held-out fraction of the single random split (used unless folds/split_file/split_column)."""
    folds: int | None = Field(None, ge=2, le=100)
    """K-fold cross-validation (stratified, shuffled with ``seed``) instead of one split."""
    split_file: Path | None = None
    """CSV/TSV (columns ``sample_id`` and ``split``, or ``split_column``), whitespace ``.txt``
    (``sample_id split`` per line) or JSON (``{"train": [...], "test": [...]}``)."""
    split_column: str | None = None
    """Without ``split_file``: the store coordinate giving each sample's split (e.g. the
    manifest's ``split``). With ``split_file``: the file's column to read. Rows whose split
    is neither ``train`` nor ``test`` (``valid`` ...) are left out."""
    stratify: bool = True
    """Stratify the random split / folds by label."""
    controls: int = Field(1, ge=0, le=100)
    """Control tasks (Hewitt & Liang): seeded label shuffles averaged; 0 turns them off."""
    bootstrap: int = Field(1000, ge=0, le=100_000)
    """Bootstrap resamples of the test predictions for the accuracy CI; 0 turns it off."""
    ci: float = Field(0.95, gt=0, lt=1)
    """Confidence level of the bootstrap interval."""
    seed: int = Field(0, ge=0)
    """Seeds the split, folds, control shuffles and bootstrap."""
    original: bool = False
    """Reproduce the spatial study's probe exactly (see ``ORIGINAL_SPATIAL``); solver ``auto``
    then means sklearn."""
    solver: Literal["auto", "torch", "sklearn"] = "auto"
    """``torch``: the batched preconditioned L-BFGS (all layers and classes at once);
    ``sklearn``: one sklearn estimator per layer and label set; ``auto``: torch, or sklearn
    with ``original``."""
    max_iter: int = Field(1000, ge=1, le=100_000)
    tol: float | None = Field(None, gt=0, lt=1)
    """Stopping tolerance; default 1e-4 for sklearn (its default, and the original studies'),
    1e-5 for torch (relative gradient norm; tight enough that held-out predictions no longer
    move, for ~8 more iterations than 1e-4)."""
    layers: tuple[int, ...] | None = None
    """Layer coordinate values to probe (default: every stored layer)."""
    memory_mb: int = Field(512, ge=16)
    """Working-memory budget that sizes the layer chunk read and solved at once."""

    @model_validator(mode="before")
    @classmethod
    def _original(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not data.get("original"):
            return data
        clash = {k: data[k] for k, v in ORIGINAL_SPATIAL.items() if k in data and data[k] is not None and data[k] != v}
        if clash:
            fixed = ", ".join(f"{k}={v!r}" for k, v in ORIGINAL_SPATIAL.items())
            raise _field_error(
                "original", True, f"original=True fixes {fixed}; it conflicts with {clash}. Drop those options or original"
            )
        if data.get("folds"):
            raise _field_error(
                "original", True, "original=True uses one 80/20 split (or a split file); it cannot be combined with folds"
            )
        return {**data, **ORIGINAL_SPATIAL}

    @model_validator(mode="after")
    def _one_split_kind(self) -> ProbeConfig:
        if self.folds is not None and (self.split_file is not None or self.split_column is not None):
            raise _field_error("folds", self.folds, "choose one of folds, split_file or split_column, not several")
        if self.layers is not None and len(set(self.layers)) != len(self.layers):
            raise _field_error("layers", list(self.layers), "a layer is listed twice")
        return self

    @property
    def resolved_solver(self) -> Literal["torch", "sklearn"]:
        if self.solver == "auto":
            return "sklearn" if self.original else "torch"
        return self.solver

    @property
    def resolved_tol(self) -> float:
        return self.tol if self.tol is not None else default_tol(self.resolved_solver)

    @property
    def split_kind(self) -> Literal["folds", "file", "column", "random"]:
        if self.folds is not None:
            return "folds"
        if self.split_file is not None:
            return "file"
        if self.split_column is not None:
            return "column"
        return "random"
