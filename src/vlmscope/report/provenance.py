"""Which hub model a run used, and which kind of dataset it ran on: what published figures are matched by.

A run's directory names a pipeline model (``qwen2vl-7b``) and a dataset
(``counting``), neither of which says what they are. This module reads what
the writers recorded instead:

- model: ``models/<name>/vlmscope-ref.json`` (a ``pin_model`` pin: the hub
  id), else the run's own record of its model (an evaluation's
  ``config.json`` ``model``). A checkpoint directory is followed back to its
  base through ``merge_info.json`` (``base``), ``training_args.json``
  (``model``, ``trainer``) or the ``vlmscope.json`` sidecar
  (``trained_from``, ``trainer``), collecting the training steps on the way;
  ``config.json``'s ``_name_or_path`` (older transformers wrote it) is the
  last resort. A tiny model leads to no hub id and so matches nothing.
- dataset: the kind (:data:`vlmscope.report.published.DATASET_KINDS`) from
  ``dataset.json``'s generator and params, never the directory name.

Unreadable files count as absent: the report's other parts show them as
problems; here they only mean "no match".
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vlmscope.report.inventory import DatasetEntry, Inventory
from vlmscope.report.published import canonical_model

__all__ = [
    "ModelIdentity",
    "UNKNOWN",
    "Used",
    "read_record",
    "identify_model",
    "run_model",
    "dataset_kind",
    "dataset_at",
]

REF_FILE = "vlmscope-ref.json"
"""Same as ``vlmscope.models.ref.REF_FILE``; repeated so the report does not import the model stack."""

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_MAX_DEPTH = 8
"""Checkpoint -> base links followed at most (a cycle of records ends here)."""

Used = Callable[[Path], object]


@dataclass(frozen=True)
class ModelIdentity:
    model: str | None
    """Canonical hub id (or the recorded id when no figure knows it); None when nothing names one."""
    steps: frozenset[str] = frozenset()
    """Training applied on the way from the hub model: ``clip``, ``projector``, ``lora``, ``vision-tower``..."""


UNKNOWN = ModelIdentity(None)


def read_record(path: Path, used: Used | None = None) -> dict[str, Any] | None:
    """A small JSON object file, or None when absent or unusable; ``used(path)`` is told when it was read."""
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    if used is not None:
        used(path)
    return data


def _text(data: Mapping[str, Any] | None, key: str) -> str | None:
    value = (data or {}).get(key)
    return value if isinstance(value, str) and value.strip() else None


def _local(source: str, root: Path) -> Path | None:
    """The directory ``source`` names: as given (relative to the working directory), else relative to ``root``'s parent."""
    for p in (Path(source), root.parent / source):
        if p.is_dir():
            return p
    return None


def identify_model(source: str, root: Path, *, used: Used | None = None, _depth: int = 0) -> ModelIdentity:
    """The identity of a recorded model source: a local directory (followed back) or a hub id."""
    local = _local(source, root)
    if local is not None:
        return _identify_dir(local, root, used, _depth)
    if _HUB_ID.match(source) or "models--" in source:
        model, steps = canonical_model(source)
        return ModelIdentity(model, steps)
    return UNKNOWN


def _add(identity: ModelIdentity, *steps: str) -> ModelIdentity:
    return ModelIdentity(identity.model, identity.steps | {s for s in steps if s})


def _merge_steps(info: Mapping[str, Any], root: Path, used: Used | None) -> list[str]:
    """What a ``merge_info.json`` merged in, as training steps."""
    steps = []
    if info.get("vision_tower"):
        steps.append("vision-tower")
    if info.get("adapter"):
        steps.append("lora")
    if info.get("projector"):
        steps.append("projector")
    tensors = _text(info, "tensors")
    if tensors:  # train projector / output-layer outputs sit beside their training_args.json
        args = read_record(Path(tensors).parent / "training_args.json", used) or read_record(
            (root.parent / tensors).parent / "training_args.json", used
        )
        steps.append(_text(args, "trainer") or "tensors")
    return steps


def _identify_dir(d: Path, root: Path, used: Used | None, depth: int) -> ModelIdentity:
    if depth >= _MAX_DEPTH:
        return UNKNOWN

    def follow(source: str | None) -> ModelIdentity:
        return identify_model(source, root, used=used, _depth=depth + 1) if source else UNKNOWN

    pin = _text(read_record(d / REF_FILE, used), "source")
    if pin:
        model, steps = canonical_model(pin)
        return ModelIdentity(model, steps)
    merge = read_record(d / "merge_info.json", used)
    if merge is not None and _text(merge, "base"):
        return _add(follow(_text(merge, "base")), *_merge_steps(merge, root, used))
    args = read_record(d / "training_args.json", used)
    if _text(args, "model"):
        return _add(follow(_text(args, "model")), _text(args, "trainer") or "trained")
    sidecar = read_record(d / "vlmscope.json", used)
    if _text(sidecar, "trained_from"):
        return _add(follow(_text(sidecar, "trained_from")), _text(sidecar, "trainer") or "trained")
    name = _text(read_record(d / "config.json", used), "_name_or_path")
    if name and _HUB_ID.match(name) and _local(name, root) is None:
        model, steps = canonical_model(name)
        return ModelIdentity(model, steps)
    if "models--" in d.as_posix():
        model, steps = canonical_model(d.as_posix())
        return ModelIdentity(model, steps)
    return UNKNOWN


def run_model(inv: Inventory, name: str, recorded: str | None, *, used: Used | None = None) -> ModelIdentity:
    """The model of a run under ``<kind>/<name>/...``: the pipeline's ``models/<name>``, else what the run recorded."""
    d = inv.root / "models" / name
    if d.is_dir():
        found = _identify_dir(d, inv.root, used, 0)
        if found.model is not None:
            return found
    return identify_model(recorded, inv.root, used=used) if recorded else UNKNOWN


def dataset_kind(entry: DatasetEntry | None) -> str | None:
    """The published figures' name for a dataset (``balanced``, ``countbench``...), or None."""
    if entry is None or entry.generator is None:
        return None
    params = entry.params or {}
    if entry.generator == "counting":
        variant = params.get("variant", "balanced")
        return variant if variant in ("balanced", "unseen-combinations") else None
    return {
        "countbench": "countbench",
        "relations": "relations",
        "relations-queries": "relations",
        "class-folders": "kl-grading",
    }.get(entry.generator)


def dataset_at(inv: Inventory, path: str) -> DatasetEntry | None:
    """The inventory's dataset a recorded path names: a dataset directory or an activation store of one."""
    candidates = [Path(path), inv.root.parent / path]
    resolved = {c.resolve() for c in candidates if c.exists()}
    for entry in inv.datasets.values():
        if entry.path is not None and entry.path.resolve() in resolved:
            return entry
    for store in inv.stores:
        if store.path.resolve() in resolved:
            return inv.datasets.get(store.dataset)
    name = Path(path).name
    return inv.datasets.get(name[: -len(".zarr")] if name.endswith(".zarr") else name)
