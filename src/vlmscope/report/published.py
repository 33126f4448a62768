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

import re
from dataclasses import dataclass

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


MODEL_LABELS: dict[str, str] = {
    "Qwen/Qwen2-VL-7B-Instruct": "Qwen2-VL-7B",
    "google/paligemma2-10b-mix-448": "PaliGemma2-10B",
    "llava-hf/llava-onevision-qwen2-7b-ov-hf": "LLaVA-OneVision-7B",
    "OpenGVLab/InternVL3-8B-hf": "InternVL3-8B",
    "Qwen/Qwen3-VL-4B-Instruct": "Qwen3-VL-4B",
    "openai/clip-vit-large-patch14-336": "CLIP ViT-L/14-336",
    "microsoft/llava-med-v1.5-mistral-7b": "LLaVA-Med v1.5 (Mistral-7B)",
}
"""Canonical hub id -> short name, for every model a figure names."""

_ALIASES: dict[str, tuple[str, frozenset[str]]] = {
    # the seeds' own short names (counting study's MODEL_NAME, profile names)
    "qwen2-vl-7b": ("Qwen/Qwen2-VL-7B-Instruct", frozenset()),
    "paligemma2-10b": ("google/paligemma2-10b-mix-448", frozenset()),
    "llava-onevision-7b": ("llava-hf/llava-onevision-qwen2-7b-ov-hf", frozenset()),
    "internvl3-8b": ("OpenGVLab/InternVL3-8B-hf", frozenset()),
    # the same weights uploaded in the original (remote-code / LLaVA-codebase) format
    "opengvlab/internvl3-8b": ("OpenGVLab/InternVL3-8B-hf", frozenset()),
    "lmms-lab/llava-onevision-qwen2-7b-ov": ("llava-hf/llava-onevision-qwen2-7b-ov-hf", frozenset()),
    # seed 001's released fine-tuned CLIP (CLIP-OA): the base CLIP after `train clip`
    "wanglihx/clip-oa": ("openai/clip-vit-large-patch14-336", frozenset({"clip"})),
}
"""Lower-case alias -> (canonical hub id, training steps the alias already carries)."""

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

SETTINGS: dict[str, str] = {
    "released": "the released model, evaluated as is (zero-shot)",
    "output-layer": "after output-layer fine-tuning on synthetic counting, tested on the balanced set",
    "fine-tuned": "after `train clip` (a classifier over fixed text prototypes)",
    "tower-projector": "with the fine-tuned CLIP tower swapped in (`merge --vision-tower`), then projector training",
}
"""How the model was used -> what a run must have done to count."""

SETTING_STEPS: dict[str, frozenset[str]] = {
    "released": frozenset(),
    "output-layer": frozenset(),  # the head is trained by the output-layer run itself, on the released model
    "fine-tuned": frozenset({"clip"}),
    "tower-projector": frozenset({"vision-tower", "projector"}),
}
"""The training steps a run's model must carry (exactly) for each setting."""

STUDY_NOTES: dict[str, str] = {
    "spatial": f"{_STUDIES_MD} states no published figure for spatial probing.",
    "unseen": f"{_STUDIES_MD} states no published figure for unseen-class alignment.",
    "counting": f"{_STUDIES_MD} also says per-layer linear probes reach about .99 (no model or exact value given, "
    "so not tabled).",
}
"""A line under a study's table (or in place of it, when the study has no figure)."""

_C = f"{_STUDIES_MD} C (seed 004), reported accuracy"
_B = f"{_STUDIES_MD} B (seed 003), reported Qwen3-VL-4B accuracy, unmasked -> masked"
_E = f"{_STUDIES_MD} E (seed 001), reported accuracy"

_COUNTING = (
    ("Qwen/Qwen2-VL-7B-Instruct", 0.647, 0.862, 0.801),
    ("google/paligemma2-10b-mix-448", 0.749, 0.868, 0.893),
    ("llava-hf/llava-onevision-qwen2-7b-ov-hf", 0.675, 0.771, 0.811),
    ("OpenGVLab/InternVL3-8B-hf", 0.523, 0.800, 0.735),
)
"""(model, balanced synthetic, CountBenchQA, after output-layer fine-tuning on synthetic)."""

_RELATIONAL = (
    ("count", 0.967, 0.741),
    ("explicit_arrow_direction", 0.921, 0.764),
    ("explicit_connection", 0.512, 0.503),
    ("recognition_shape_and_color", 0.995, 0.993),
    ("recognition_color", 0.968, 0.974),
    ("recognition_shape", 0.806, 0.825),
    ("implicit_spatial", 0.618, 0.645),
)
"""(query type, original, masked)."""

_CLIP, _LLAVA_MED = "openai/clip-vit-large-patch14-336", "microsoft/llava-med-v1.5-mistral-7b"

FIGURES: tuple[Figure, ...] = (
    *(
        fig
        for model, balanced, countbench, output_layer in _COUNTING
        for fig in (
            Figure("counting", model, "balanced", "released", "accuracy", balanced, f"{_C}, balanced synthetic"),
            Figure("counting", model, "countbench", "released", "accuracy", countbench, f"{_C}, CountBenchQA"),
            Figure(
                "counting", model, "balanced", "output-layer", "accuracy", output_layer,
                f"{_C}, after output-layer fine-tuning on synthetic",
            ),
        )
    ),
    *(
        Figure("relational", "Qwen/Qwen3-VL-4B-Instruct", "relations", "released", "accuracy", value, _B,
               query_type=qt, variant=variant)
        for qt, original, masked in _RELATIONAL
        for variant, value in (("original", original), ("masked", masked))
    ),
    Figure("medical", _CLIP, "kl-grading", "released", "accuracy", 0.221, f"{_E}, CLIP zero-shot"),
    Figure("medical", _CLIP, "kl-grading", "fine-tuned", "accuracy", 0.703, f"{_E}, fine-tuned CLIP"),
    Figure("medical", _LLAVA_MED, "kl-grading", "released", "accuracy", 0.270, f"{_E}, LLaVA-Med"),
    Figure(
        "medical", _LLAVA_MED, "kl-grading", "tower-projector", "accuracy", 0.688,
        f"{_E}, LLaVA-Med with the fine-tuned CLIP tower and projector training",
    ),
)  # fmt: skip


def figures_of(study: str) -> tuple[Figure, ...]:
    """The figures of one study, in :data:`FIGURES` order."""
    return tuple(f for f in FIGURES if f.study == study)
