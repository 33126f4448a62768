"""What exists under an artifacts root, found by the layout every stage writes.

The report must never break on a missing part, so discovery is a pure scan:
it lists what is there (datasets, evaluations, probes, lens summaries,
activation stores, trained models) and reads nothing heavy. Model names may
contain ``/`` (hub ids written as nested directories): a run's dataset is the
longest suffix of its directory that names a known dataset, the rest is the
model. Hidden entries (``.name``, e.g. atomic writers' temporary directories)
are ignored.

Layout (relative to the root)::

    datasets/<dataset>/{manifest.parquet,dataset.json,images/}
    evals/<model>/<dataset>/{metrics.json,per_group.csv}
    probes/<model>/<dataset>/<label>/{per_layer.csv,metrics.json}
    lens/<model>/<dataset>/logit/summary.csv
    lens/<model>/<dataset>/ffn/{summary.csv,ffn.jsonl}
    activations/<model>/<dataset>.zarr
    models/<model>/metrics.json
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["DatasetEntry", "Run", "ProbeRun", "ModelEntry", "Inventory", "scan_artifacts"]


@dataclass(frozen=True)
class DatasetEntry:
    """A dataset the artifacts mention; ``path`` is None when only runs refer to it."""

    name: str
    path: Path | None
    generator: str | None
    """``dataset.json``'s ``generator`` (``spatial``, ``relations``, ``llava``, ...)."""
    n_samples: int | None = None
    fingerprint: str | None = None


@dataclass(frozen=True)
class Run:
    """One model x dataset result directory (or store) of one kind."""

    model: str
    dataset: str
    path: Path


@dataclass(frozen=True)
class ProbeRun:
    model: str
    dataset: str
    label: str
    path: Path
    """The ``probes/<model>/<dataset>/<label>`` directory."""


@dataclass(frozen=True)
class ModelEntry:
    """A checkpoint directory under ``models/`` that carries training metrics."""

    name: str
    path: Path
    family: str | None
    """``config.json``'s ``model_type`` when present."""


@dataclass
class Inventory:
    root: Path
    datasets: dict[str, DatasetEntry] = field(default_factory=dict)
    evals: list[Run] = field(default_factory=list)
    probes: list[ProbeRun] = field(default_factory=list)
    logit_lens: list[Run] = field(default_factory=list)
    ffn: list[Run] = field(default_factory=list)
    stores: list[Run] = field(default_factory=list)
    models: list[ModelEntry] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    """Files found but unusable (unreadable dataset.json ...), shown on the page."""


def _visible_files(base: Path, name: str) -> Iterator[Path]:
    """Every file called ``name`` under ``base``, skipping hidden parts and ``.zarr`` stores."""
    if not base.is_dir():
        return
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and not d.endswith(".zarr"))
        if name in filenames:
            yield Path(dirpath) / name


def _split(parts: tuple[str, ...], known: set[str]) -> tuple[str, str] | None:
    """(model, dataset) from ``<model...>/<dataset...>``: the longest known dataset suffix wins."""
    for k in range(len(parts) - 1, 0, -1):
        ds = "/".join(parts[len(parts) - k :])
        if ds in known:
            return "/".join(parts[: len(parts) - k]), ds
    if len(parts) < 2:
        return None
    return "/".join(parts[:-1]), parts[-1]


def _scan_datasets(root: Path, inv: Inventory) -> None:
    base = root / "datasets"
    found: set[Path] = set()
    for marker in ("dataset.json", "manifest.parquet"):
        for f in _visible_files(base, marker):
            found.add(f.parent)
    for d in sorted(found):
        name = d.relative_to(base).as_posix()
        generator = n = fp = None
        info = d / "dataset.json"
        if info.is_file():
            try:
                data = json.loads(info.read_text())
                generator = data.get("generator")
                n = data.get("n_samples")
                fp = data.get("fingerprint")
            except (OSError, ValueError, AttributeError) as e:
                inv.problems.append(f"{info}: unreadable dataset.json ({e})")
        else:
            inv.problems.append(f"{d}: no dataset.json, so its study is unknown")
        inv.datasets[name] = DatasetEntry(
            name, d, str(generator) if generator else None, n if isinstance(n, int) else None, fp
        )


def _runs(base: Path, anchor: str, tail: int, known: set[str]) -> Iterator[tuple[str, str, Path, tuple[str, ...]]]:
    """(model, dataset, dir, tail parts) for every ``<model>/<dataset>/<tail...>/<anchor>``."""
    for f in _visible_files(base, anchor):
        parts = f.parent.relative_to(base).parts
        if len(parts) < 2 + tail:
            continue
        head, rest = parts[: len(parts) - tail], parts[len(parts) - tail :]
        split = _split(head, known)
        if split is not None:
            yield split[0], split[1], f.parent, rest


def _scan_stores(root: Path, known: set[str]) -> list[Run]:
    base = root / "activations"
    out: list[Run] = []
    if not base.is_dir():
        return out
    for dirpath, dirnames, _ in os.walk(base):
        keep = []
        for d in sorted(dirnames):
            if d.startswith("."):
                continue
            if d.endswith(".zarr"):
                rel = (Path(dirpath) / d).relative_to(base).parts
                parts = (*rel[:-1], d[: -len(".zarr")])
                split = _split(parts, known)
                if split is not None:
                    out.append(Run(split[0], split[1], Path(dirpath) / d))
            else:
                keep.append(d)
        dirnames[:] = keep
    return out


def _scan_models(root: Path) -> list[ModelEntry]:
    base = root / "models"
    out = []
    for f in _visible_files(base, "metrics.json"):
        family = None
        cfg = f.parent / "config.json"
        if cfg.is_file():
            try:
                family = json.loads(cfg.read_text()).get("model_type")
            except (OSError, ValueError, AttributeError):
                family = None
        out.append(ModelEntry(f.parent.relative_to(base).as_posix(), f.parent, family))
    return out


def scan_artifacts(root: str | os.PathLike[str]) -> Inventory:
    """List every reportable artifact under ``root``, in a deterministic (sorted) order."""
    root = Path(root)
    inv = Inventory(root=root)
    _scan_datasets(root, inv)
    known = set(inv.datasets)

    evals = {}
    for anchor in ("metrics.json", "per_group.csv"):
        for model, ds, d, _ in _runs(root / "evals", anchor, 0, known):
            evals[(model, ds)] = Run(model, ds, d)
    inv.evals = [evals[k] for k in sorted(evals)]

    probes = {}
    for model, ds, d, rest in _runs(root / "probes", "per_layer.csv", 1, known):
        probes[(model, ds, rest[0])] = ProbeRun(model, ds, rest[0], d)
    inv.probes = [probes[k] for k in sorted(probes)]

    for model, ds, d, rest in _runs(root / "lens", "summary.csv", 1, known):
        if rest[0] == "logit":
            inv.logit_lens.append(Run(model, ds, d))
        elif rest[0] == "ffn":
            inv.ffn.append(Run(model, ds, d))
    ffn_dirs = {r.path for r in inv.ffn}
    for model, ds, d, rest in _runs(root / "lens", "ffn.jsonl", 1, known):
        if rest[0] == "ffn" and d not in ffn_dirs:
            inv.ffn.append(Run(model, ds, d))
    inv.logit_lens.sort(key=lambda r: (r.model, r.dataset))
    inv.ffn.sort(key=lambda r: (r.model, r.dataset))

    inv.stores = sorted(_scan_stores(root, known), key=lambda r: (r.model, r.dataset))
    inv.models = sorted(_scan_models(root), key=lambda m: m.name)

    for ds in sorted(
        {r.dataset for r in (*inv.evals, *inv.logit_lens, *inv.ffn, *inv.stores)} | {p.dataset for p in inv.probes}
    ):
        if ds not in inv.datasets:
            inv.datasets[ds] = DatasetEntry(ds, None, None)
    inv.datasets = dict(sorted(inv.datasets.items()))
    return inv
