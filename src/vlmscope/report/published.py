"""The five studies' published figures, as data the report compares runs against.

Every number here is a "Reported" figure of the studies' design notes
(STUDIES.md, read from the original papers and repositories); nothing is
estimated or filled in. Spatial probing and unseen-class alignment state no
figure, so they have none. Counting's "per-layer probes reach about .99"
names no model and no exact value, so it is quoted as a note, not tabled.

A figure says *what* was measured, in vlmscope's terms, so that a run of
this pipeline can be matched to it (``vlmscope.report.comparison``):

- ``model``: the canonical hub id; :func:`canonical_model` maps known
  aliases (the pipeline's profile ids, other uploads of the same weights,
  the seeds' short names) onto it.
- ``dataset``: a dataset kind (:data:`DATASET_KINDS`), decided from a
  dataset's ``dataset.json`` generator and params, never its directory name.
- ``setting``: how the model was used (:data:`SETTINGS`): as released, after
  output-layer fine-tuning, CLIP fine-tuning, or tower swap + projector.
- ``query_type`` / ``variant``: the relational study's per-query-type
  accuracy on original and masked images.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "Figure",
    "FIGURES",
    "MODEL_LABELS",
    "DATASET_KINDS",
    "SETTINGS",
    "SETTING_STEPS",
    "STUDY_NOTES",
    "canonical_model",
    "figures_of",
]

_STUDIES_MD = "STUDIES.md"


@dataclass(frozen=True)
class Figure:
    """One published number and what it measures."""

    study: str
    """Study key as in ``vlmscope.report.studies.STUDIES`` (``counting``, ``relational``, ``medical``...)."""
    model: str
    """Canonical hub id of the model (``Qwen/Qwen2-VL-7B-Instruct``)."""
    dataset: str
    """Dataset kind, a key of :data:`DATASET_KINDS`."""
    setting: str
    """How the model was used, a key of :data:`SETTINGS`."""
    metric: str
    """The metric's name (all published figures are ``accuracy``)."""
    value: float
    source: str
    """Where the number is stated."""
    query_type: str | None = None
    """Relational study: the query type the accuracy is over."""
    variant: str | None = None
    """Relational study: ``original`` or ``masked`` images."""

    @property
    def label(self) -> str:
        """The model's short name (``Qwen2-VL-7B``)."""
        return MODEL_LABELS[self.model]

    @property
    def key(self) -> str:
        """Flat, unique, dot-separated name: ``counting.qwen2-vl-7b.balanced`` (setting left out when released)."""
        parts = [self.study, _slug(self.label), self.dataset]
        parts += [p for p in (self.query_type, self.variant) if p]
        if self.setting != "released":
            parts.append(self.setting)
        return ".".join(parts)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9.+-]+", "-", text.lower()).strip("-")


_DATA = json.loads((Path(__file__).with_name("published.json")).read_text(encoding="utf-8"))
"""The hub ids and numbers (``published.json`` beside this module: data, kept out of the code)."""

MODEL_LABELS: dict[str, str] = dict(_DATA["models"])
"""Canonical hub id -> short name, for every model a figure names."""

_ALIASES: dict[str, tuple[str, frozenset[str]]] = {
    alias: (canonical, frozenset(steps)) for alias, (canonical, steps) in _DATA["aliases"].items()
}
"""Lower-case alias -> (canonical hub id, training steps the alias already carries): the seeds' short names,
other uploads of the same weights, and seed 001's released fine-tuned CLIP (the base CLIP after `train clip`)."""

_HUB_CACHE_DIR = re.compile(r"models--(?P<org>[^/]+?)--(?P<name>[^/]+)(?:/snapshots/[^/]+)?/?$")


def canonical_model(source: str) -> tuple[str, frozenset[str]]:
    """``(canonical id, implied training steps)`` of a hub id, alias or hub-cache snapshot path.

    Matching is case-insensitive (the hub's ids are); an id no figure names
    comes back as given with no steps, and so matches nothing.
    """
    s = source.strip().rstrip("/")
    m = _HUB_CACHE_DIR.search(s)
    if m:
        s = f"{m['org']}/{m['name']}"
    low = s.lower()
    if low in _ALIASES:
        return _ALIASES[low]
    for canonical in MODEL_LABELS:
        if canonical.lower() == low:
            return canonical, frozenset()
    return s, frozenset()


DATASET_KINDS: dict[str, str] = {
    "balanced": "synthetic counting, balanced (generator counting, variant balanced)",
    "unseen-combinations": "synthetic counting, unseen colour-shape combinations (output-layer training data)",
    "countbench": "CountBenchQA (importer countbench)",
    "relations": "shapes joined by arrows, original and masked (generator relations, importer relations-queries)",
    "kl-grading": "knee X-ray KL grades (importer class-folders)",
}
"""Dataset kinds the figures name -> what a dataset must be to count as one."""

SETTINGS: dict[str, str] = {k: v["description"] for k, v in _DATA["settings"].items()}
"""How the model was used -> what a run must have done to count."""

SETTING_STEPS: dict[str, frozenset[str]] = {k: frozenset(v["steps"]) for k, v in _DATA["settings"].items()}
"""The training steps a run's model must carry (exactly) for each setting (``output-layer``: none, the head is
trained by the output-layer run itself, on the released model)."""

STUDY_NOTES: dict[str, str] = {
    "spatial": f"{_STUDIES_MD} states no published figure for spatial probing.",
    "unseen": f"{_STUDIES_MD} states no published figure for unseen-class alignment.",
    "counting": f"{_STUDIES_MD} also says per-layer linear probes reach about .99 (no model or exact value given, "
    "so not tabled).",
}
"""A line under a study's table (or in place of it, when the study has no figure)."""

FIGURES: tuple[Figure, ...] = tuple(Figure(**f) for f in _DATA["figures"])
"""Every figure, in the order the report lists them: counting (per model: balanced synthetic, CountBenchQA,
after output-layer fine-tuning), relational (per query type: original, masked), medical."""


def figures_of(study: str) -> tuple[Figure, ...]:
    """The figures of one study, in :data:`FIGURES` order."""
    return tuple(f for f in FIGURES if f.study == study)
