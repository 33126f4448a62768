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
    evals/<model>/<dataset>/{metrics.json,per_group.csv,predictions.jsonl,config.json}
    probes/<model>/<dataset>/{per_layer.csv,metrics.json}          (one probe per dataset)
    probes/<model>/<dataset>/<label>/{per_layer.csv,metrics.json}  (one probe per label)
    lens/<model>/<dataset>/logit/summary.csv
    lens/<model>/<dataset>/ffn/{summary.csv,ffn.jsonl}
    activations/<model>/<dataset>.zarr
    output_layer/<model>/<dataset>/{metrics.json,history.csv}
    models/<model>/{metrics.json,training_args.json,dvclive/}      (trained checkpoints)
    training/<model>/metrics.json                                   (when models/<model> has none)
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["DatasetEntry", "Run", "ProbeRun", "ModelEntry", "ArtifactRuns", "Inventory", "scan_artifacts"]


@dataclass(frozen=True)
class DatasetEntry:
    """A dataset the artifacts mention; ``path`` is None when only runs refer to it."""

    name: str
    path: Path | None
    generator: str | None
    """``dataset.json``'s ``generator`` (``spatial``, ``relations``, ``llava``, ...)."""
    n_samples: int | None = None
    fingerprint: str | None = None
    params: Mapping[str, Any] | None = field(default=None, compare=False)
    """``dataset.json``'s ``params`` (the generator's or importer's settings, e.g. counting's ``variant``)."""


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
    label: str | None
    """The label directory's name; None for a per-dataset probe (its label is read from its files)."""
    path: Path
    """The directory holding ``per_layer.csv``."""


@dataclass(frozen=True)
class ModelEntry:
    """A checkpoint directory under ``models/`` that carries training metrics."""

    name: str
    path: Path
    """The directory holding ``metrics.json`` (and, for checkpoints, ``dvclive/``)."""
    family: str | None
    """``config.json``'s ``model_type`` when present."""
    trainer: str | None = None
    """``training_args.json``'s ``trainer`` (``projector``, ``lora``, ``clip``, ...) when present."""


@dataclass(kw_only=True)
class ArtifactRuns:
    """The runs of each artifact kind; the whole inventory and each study's share of it hold the same lists."""

    evals: list[Run] = field(default_factory=list)
    probes: list[ProbeRun] = field(default_factory=list)
    logit_lens: list[Run] = field(default_factory=list)
    ffn: list[Run] = field(default_factory=list)
    stores: list[Run] = field(default_factory=list)
    output_layer: list[Run] = field(default_factory=list)
    models: list[ModelEntry] = field(default_factory=list)


@dataclass
class Inventory(ArtifactRuns):
    root: Path
    datasets: dict[str, DatasetEntry] = field(default_factory=dict)
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
        generator = n = fp = params = None
        info = d / "dataset.json"
        if info.is_file():
            try:
                data = json.loads(info.read_text())
                generator = data.get("generator")
                n = data.get("n_samples")
                fp = data.get("fingerprint")
                params = data.get("params")
            except (OSError, ValueError, AttributeError) as e:
                inv.problems.append(f"{info}: unreadable dataset.json ({e})")
        else:
            inv.problems.append(f"{d}: no dataset.json, so its study is unknown")
        inv.datasets[name] = DatasetEntry(
            name,
            d,
            str(generator) if generator else None,
            n if isinstance(n, int) else None,
            fp,
            params if isinstance(params, dict) else None,
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


def _json_field(path: Path, key: str) -> str | None:
    if not path.is_file():
        return None
    try:
        value = json.loads(path.read_text()).get(key)
    except (OSError, ValueError, AttributeError):
        return None
    return str(value) if value else None


def _scan_models(root: Path) -> list[ModelEntry]:
    """Checkpoints with ``metrics.json`` under ``models/``, then ``training/`` logs of the others."""
    out: dict[str, ModelEntry] = {}
    for sub in ("models", "training"):
        base = root / sub
        for f in _visible_files(base, "metrics.json"):
            name = f.parent.relative_to(base).as_posix()
            if name in out:
                continue
            ckpt = root / "models" / name
            family = _json_field(ckpt / "config.json", "model_type") or _json_field(
                f.parent / "config.json", "model_type"
            )
            trainer = _json_field(f.parent / "training_args.json", "trainer") or _json_field(
                ckpt / "training_args.json", "trainer"
            )
            out[name] = ModelEntry(name, f.parent, family, trainer)
    return [out[k] for k in sorted(out)]


def _scan_probes(root: Path, known: set[str]) -> list[ProbeRun]:
    """Per-dataset (``<model>/<dataset>/``) and per-label (``<model>/<dataset>/<label>/``) probes."""
    base = root / "probes"
    probes: dict[tuple[str, str, str | None], ProbeRun] = {}
    for f in _visible_files(base, "per_layer.csv"):
        parts = f.parent.relative_to(base).parts
        if len(parts) < 2:
            continue
        if parts[-1] in known:
            per_dataset = True
        elif len(parts) >= 3 and parts[-2] in known:
            per_dataset = False
        else:  # no dataset directory for it: two levels = model/dataset, more = model/dataset/label
            per_dataset = len(parts) == 2
        head = parts if per_dataset else parts[:-1]
        split = _split(head, known)
        if split is None:
            continue
        label = None if per_dataset else parts[-1]
        probes[(split[0], split[1], label)] = ProbeRun(split[0], split[1], label, f.parent)
    return [probes[k] for k in sorted(probes, key=lambda k: (k[0], k[1], k[2] or ""))]


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

    inv.probes = _scan_probes(root, known)
    inv.output_layer = sorted(
        (Run(m, ds, d) for m, ds, d, _ in _runs(root / "output_layer", "metrics.json", 0, known)),
        key=lambda r: (r.model, r.dataset),
    )

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
        {r.dataset for r in (*inv.evals, *inv.logit_lens, *inv.ffn, *inv.stores, *inv.output_layer)}
        | {p.dataset for p in inv.probes}
    ):
        if ds not in inv.datasets:
            inv.datasets[ds] = DatasetEntry(ds, None, None)
    inv.datasets = dict(sorted(inv.datasets.items()))
    return inv
