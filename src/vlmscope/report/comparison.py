"""Published figures next to this run's numbers: gather, match, flatten.

Three steps, each its own function:

1. :func:`collect_measurements` reads the runs of an inventory (evaluations,
   output-layer runs, CLIP training) into :class:`Measurement` records in the
   figures' terms (hub model, dataset kind, setting, metric, query type and
   variant). Only runs of a model some figure names are read further.
2. :func:`compare` (pure) pairs every figure with the measurements that match
   it exactly: one row per match, or one row with no run, so the table always
   shows what a real-model run would fill.
3. :func:`comparison_metrics` (pure) flattens the rows for ``dvc metrics
   show``: ``<figure key>.published``, ``.run`` and ``.diff`` (run minus
   published), numeric leaves only; a figure without a run has only
   ``.published``. When several runs match, the first (sorted by run path)
   gives ``.run``; the page lists them all.

Where a run's number is read:

- evaluation ``metrics.json``: ``accuracy``; per query type
  ``paired/query_type/<qt>/accuracy_original`` / ``_masked`` (the paired
  original-vs-masked stats, i.e. the same questions on both images).
- output-layer ``metrics.json``: ``eval_accuracy_after`` when the run was
  evaluated on one other store (trained on unseen combinations, tested on the
  balanced set, as the study did), else ``test_accuracy_after`` when it
  trained on the balanced set itself (its test split).
- ``train clip`` ``metrics.json``: ``test_accuracy`` (fine-tuned) and
  ``test_accuracy_zero_shot`` (released).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from vlmscope.report.inventory import Inventory, Run
from vlmscope.report.provenance import (
    ModelIdentity,
    Used,
    dataset_at,
    dataset_kind,
    identify_model,
    read_record,
    run_model,
)
from vlmscope.report.published import FIGURES, MODEL_LABELS, SETTING_STEPS, Figure

__all__ = [
    "COMPARISON",
    "Measurement",
    "ComparisonRow",
    "collect_measurements",
    "compare",
    "compare_published",
    "comparison_metrics",
    "write_comparison",
]

COMPARISON = "published_comparison.json"
"""The file name the pipeline's report stage gives the flat comparison (``dvc metrics show``)."""

_PAIRED = re.compile(r"^paired/query_type/(?P<qt>.+)/accuracy_(?P<variant>original|masked)$")
_SYNTHETIC_COUNTING = frozenset({"balanced", "unseen-combinations"})


@dataclass(frozen=True)
class Measurement:
    """One number of this run, in the published figures' terms."""

    model: str
    dataset: str
    setting: str
    metric: str
    value: float
    run: str
    """Where it was read, relative to the artifacts root (``evals/qwen2vl-7b/counting``)."""
    query_type: str | None = None
    variant: str | None = None

    def matches(self, f: Figure) -> bool:
        return (self.model, self.dataset, self.setting, self.metric, self.query_type, self.variant) == (
            f.model, f.dataset, f.setting, f.metric, f.query_type, f.variant,
        )  # fmt: skip


@dataclass(frozen=True)
class ComparisonRow:
    figure: Figure
    run: Measurement | None

    @property
    def diff(self) -> float | None:
        """This run minus the published value; None without a run."""
        return None if self.run is None else self.run.value - self.figure.value


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return None if value != value else float(value)  # NaN is no number


def _rel(inv: Inventory, path: Path) -> str:
    try:
        return path.relative_to(inv.root).as_posix()
    except ValueError:
        return path.as_posix()


def _setting(steps: frozenset[str]) -> str | None:
    """The setting an evaluated model's training steps amount to (output-layer runs are their own)."""
    for name, need in SETTING_STEPS.items():
        if name != "output-layer" and need == steps:
            return name
    return None


def _known(identity: ModelIdentity) -> str | None:
    """The identity's hub id when some figure names that model, else None (nothing further is read)."""
    return identity.model if identity.model in MODEL_LABELS else None


def _evals(inv: Inventory, used: Used | None) -> Iterable[Measurement]:
    for r in inv.evals:
        kind = dataset_kind(inv.datasets.get(r.dataset))
        if kind is None:
            continue
        recorded = (read_record(r.path / "config.json", used) or {}).get("model")
        who = run_model(inv, r.model, recorded if isinstance(recorded, str) else None, used=used)
        model, setting = _known(who), _setting(who.steps)
        if model is None or setting is None:
            continue
        where = _rel(inv, r.path)
        for key, value in (read_record(r.path / "metrics.json", used) or {}).items():
            v, m = _number(value), _PAIRED.match(key)
            if v is None:
                continue
            if key == "accuracy":
                yield Measurement(model, kind, setting, "accuracy", v, where)
            elif m is not None:
                yield Measurement(model, kind, setting, "accuracy", v, where, query_type=m["qt"], variant=m["variant"])


def _output_layer_value(inv: Inventory, r: Run, args: dict, metrics: dict) -> float | None:
    """The balanced-set accuracy after fine-tuning on synthetic counting, or None (see the module docstring)."""
    if dataset_kind(inv.datasets.get(r.dataset)) not in _SYNTHETIC_COUNTING:
        return None
    stores = args.get("eval_stores") or []
    if len(stores) == 1 and isinstance(stores[0], str):
        if dataset_kind(dataset_at(inv, stores[0])) == "balanced":
            return _number(metrics.get("eval_accuracy_after"))
        return None
    if dataset_kind(inv.datasets.get(r.dataset)) == "balanced":
        return _number(metrics.get("test_accuracy_after"))
    return None


def _output_layer(inv: Inventory, used: Used | None) -> Iterable[Measurement]:
    for r in inv.output_layer:
        args = read_record(r.path / "training_args.json", used) or {}
        recorded = args.get("model")
        who = run_model(inv, r.model, recorded if isinstance(recorded, str) else None, used=used)
        model = _known(who)
        if model is None or who.steps:
            continue
        value = _output_layer_value(inv, r, args, read_record(r.path / "metrics.json", used) or {})
        if value is not None:
            yield Measurement(model, "balanced", "output-layer", "accuracy", value, _rel(inv, r.path))


def _clip_training(inv: Inventory, used: Used | None) -> Iterable[Measurement]:
    for m in inv.models:
        if m.trainer != "clip":
            continue
        args = read_record(m.path / "training_args.json", used) or read_record(
            inv.root / "models" / m.name / "training_args.json", used
        )
        base = (args or {}).get("model")
        if not isinstance(base, str):
            continue
        who = identify_model(base, inv.root, used=used)
        datasets = [d for d in (args or {}).get("datasets", []) if isinstance(d, str)]
        kinds = {dataset_kind(dataset_at(inv, d)) for d in datasets}
        model = _known(who)
        if model is None or who.steps or kinds != {"kl-grading"}:
            continue
        metrics = read_record(m.path / "metrics.json", used) or {}
        for setting, key in (("fine-tuned", "test_accuracy"), ("released", "test_accuracy_zero_shot")):
            v = _number(metrics.get(key))
            if v is not None:
                yield Measurement(model, "kl-grading", setting, "accuracy", v, _rel(inv, m.path))


def collect_measurements(inv: Inventory, *, used: Used | None = None) -> list[Measurement]:
    """Every number of ``inv`` some published figure could be matched with; ``used(path)`` sees each file read."""
    found = [*_evals(inv, used), *_output_layer(inv, used), *_clip_training(inv, used)]
    return sorted(found, key=lambda m: (m.run, m.setting, m.query_type or "", m.variant or ""))


def compare(figures: Sequence[Figure], measurements: Sequence[Measurement]) -> list[ComparisonRow]:
    """One row per (figure, matching measurement), or (figure, None); in figure order, runs sorted by path."""
    rows: list[ComparisonRow] = []
    for f in figures:
        hits = sorted((m for m in measurements if m.matches(f)), key=lambda m: m.run)
        rows += [ComparisonRow(f, m) for m in hits] or [ComparisonRow(f, None)]
    return rows


def comparison_metrics(rows: Sequence[ComparisonRow]) -> dict[str, float]:
    """Flat ``{"<figure key>.published": v, "<key>.run": v, "<key>.diff": v}``; the first run per figure."""
    out: dict[str, float] = {}
    for row in rows:
        key = row.figure.key
        out.setdefault(f"{key}.published", row.figure.value)
        if row.run is not None and f"{key}.run" not in out:
            out[f"{key}.run"] = row.run.value
            out[f"{key}.diff"] = row.run.value - row.figure.value
    return out


def compare_published(
    inv: Inventory, *, figures: Sequence[Figure] = FIGURES, used: Used | None = None
) -> list[ComparisonRow]:
    """The comparison rows of an inventory: :func:`collect_measurements` then :func:`compare`."""
    return compare(figures, collect_measurements(inv, used=used))


def write_comparison(rows: Sequence[ComparisonRow], path: str | os.PathLike[str]) -> Path:
    """Write :func:`comparison_metrics` of ``rows`` to ``path`` (atomically, sorted keys)."""
    from vlmscope.io.jsonfile import write_json

    return write_json(Path(path), comparison_metrics(rows), allow_nan=False)
