"""The five studies and which artifacts belong to each.

A dataset joins a study through ``dataset.json``'s ``generator`` (never its
directory name), so a renamed dataset still lands in the right section. The
FFN analysis is the unseen-class study's method, so every FFN output is shown
there whatever its dataset. Trained checkpoints with metrics go to the medical
study when LoRA- or CLIP-trained (or CLIP-like), to the unseen-class study when
projector-trained; others (the embedded default model) are listed on their own
under "Trained models".
Datasets of an unknown generator land in "Other datasets", shown only when
non-empty.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from vlmscope.report.inventory import ArtifactRuns, Inventory, ModelEntry

__all__ = ["Study", "STUDIES", "OTHER", "StudyContent", "assign_studies", "model_study"]

Kind = str
"""One of ``eval``, ``masked``, ``probe``, ``logit``, ``ffn``, ``attention``, ``output_layer``, ``training``."""


@dataclass(frozen=True)
class Study:
    key: str
    title: str
    blurb: str
    generators: frozenset[str]
    expected: tuple[Kind, ...]
    """Parts the page lists, as "not run" when absent; other parts show only when present."""


STUDIES: tuple[Study, ...] = (
    Study(
        "spatial",
        "Spatial probing",
        "Do per-layer residual streams at the last prompt token linearly encode the spatial relation "
        "(and colour) of two shapes? One-vs-rest logistic probes per layer against a shuffled-label control.",
        frozenset({"spatial", "color", "vrd"}),
        ("eval", "probe", "logit", "attention"),
    ),
    Study(
        "relational",
        "Relational reasoning",
        "Generation accuracy per query kind on shapes joined by arrows, the same questions on masked copies, "
        "and where the last prompt token attends in the image.",
        frozenset({"relations", "relations-queries"}),
        ("eval", "masked", "attention", "probe"),
    ),
    Study(
        "counting",
        "Counting",
        "Count accuracy overall and per entity type, per-layer probes of the count, and the logit lens "
        "of the last token.",
        frozenset({"counting", "pixmo-count", "countbench", "counting-qa"}),
        ("eval", "probe", "logit", "output_layer"),
    ),
    Study(
        "unseen",
        "Unseen-class alignment",
        "Projector-only alignment of a vision tower to an LM: multiple-choice accuracy on seen vs unseen "
        "classes, and whether FFN value vectors of the top neurons project onto the ground-truth class "
        "token more often than random neurons do.",
        frozenset({"llava"}),
        ("eval", "ffn"),
    ),
    Study(
        "medical",
        "Medical adaptation",
        "CLIP fine-tuned as a grade classifier over fixed text prototypes, and adapted LLaVA-style models.",
        frozenset({"class-folders"}),
        ("training",),
    ),
)

OTHER = Study(
    "other",
    "Other datasets",
    "Datasets whose generator no study claims (or whose dataset.json is missing).",
    frozenset(),
    (),
)

_MEDICAL_TRAINERS = frozenset({"lora", "clip", "merge"})
_UNSEEN_TRAINERS = frozenset({"projector"})


@dataclass
class StudyContent(ArtifactRuns):
    """The artifacts of one study, each list in the inventory's sorted order."""

    study: Study
    datasets: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (
            self.evals or self.probes or self.logit_lens or self.ffn or self.stores or self.output_layer or self.models
        )


def _study_key(generator: str | None) -> str:
    for s in STUDIES:
        if generator in s.generators:
            return s.key
    return OTHER.key


def model_study(m: ModelEntry) -> str | None:
    """``medical`` for LoRA / CLIP training, ``unseen`` for projector-only training, else None."""
    from vlmscope.models import classifier_names

    if (m.trainer or "") in _MEDICAL_TRAINERS or (m.family or "").lower() in classifier_names():
        return "medical"
    if (m.trainer or "") in _UNSEEN_TRAINERS:
        return "unseen"
    return None


def assign_studies(inv: Inventory) -> list[StudyContent]:
    """The five studies (always, in order) plus "Other datasets" when something lands there."""
    contents = {s.key: StudyContent(s) for s in (*STUDIES, OTHER)}
    key_of = {name: _study_key(d.generator) for name, d in inv.datasets.items()}
    for name in inv.datasets:
        contents[key_of[name]].datasets.append(name)
    for r in inv.evals:
        contents[key_of[r.dataset]].evals.append(r)
    for p in inv.probes:
        contents[key_of[p.dataset]].probes.append(p)
    for r in inv.logit_lens:
        contents[key_of[r.dataset]].logit_lens.append(r)
    for r in inv.stores:
        contents[key_of[r.dataset]].stores.append(r)
    unseen = contents["unseen"]
    for r in inv.ffn:
        unseen.ffn.append(r)
        if r.dataset not in unseen.datasets:
            unseen.datasets.append(r.dataset)
    for r in inv.output_layer:
        contents[key_of[r.dataset]].output_layer.append(r)
    for m in inv.models:
        key = model_study(m)
        if key is not None:
            contents[key].models.append(m)
    out = [contents[s.key] for s in STUDIES]
    other = contents[OTHER.key]
    if not other.empty:
        out.append(other)
    return out
