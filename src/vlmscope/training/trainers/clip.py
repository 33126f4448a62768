"""``vlmscope train clip``: CLIP/SigLIP fine-tuned as a classifier over fixed text prototypes.

The medical study (STUDIES.md E): one text prototype per class (``prompt``
filled with the class name, e.g. "a photo of moderate"), embedded once by
the frozen text tower; the image tower (and its projection) trains with
cross-entropy on ``logit_scale * cos(image, prototype)``. The best
checkpoint is picked on validation by accuracy, or by MAE for ordinal
classes (``--metric mae``).

Classes come from the manifest: the ``choices`` list of choice rows (the
option texts, in displayed order) or else the distinct answers (or
``class_column`` values), sorted by grade when every class is a grade and
by name otherwise. Each row's class is ``choices[answer_index]`` or its
answer (or its ``class_column``).

MAE: when every class has one grade (its rows' ``grade`` column, as a
class-folders import writes, else :func:`~vlmscope.grades.grade_of_name` of
the class name: ``2``, ``grade_2``, ``Grade 2``), the MAE is in grade
steps (a KL grade 4 predicted for a 0 is 4, whatever grades are absent);
otherwise it is the distance of the class indices in class order.

Output: the full fine-tuned checkpoint (loads with ``load_model`` like the
base), ``prototypes.json`` (classes + prompt), ``metrics.json`` (zero-shot
and fine-tuned accuracy / MAE on the test split), ``training_args.json``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator
from torch import nn

from vlmscope import __version__
from vlmscope.errors import TrainingError
from vlmscope.grades import grade_of_name
from vlmscope.io.atomic import atomic_dir
from vlmscope.io.jsonfile import write_json
from vlmscope.models.adapter import ContrastiveAdapter
from vlmscope.models.trained import save_model_files
from vlmscope.training.config import LoopConfig
from vlmscope.training.data import Example, ImageCache, load_rows
from vlmscope.training.engine.loop import LoopSpec, finish_run_dir, run_loop
from vlmscope.training.trainers.invocation import TrainerCall, trainer_entry

__all__ = [
    "ClipTrainConfig",
    "PrototypeClassifier",
    "class_grades",
    "class_names",
    "classify_metrics",
    "load_contrastive",
    "row_class",
    "train_clip",
]


class ClipTrainConfig(BaseModel):
    """CLIP fine-tuning as a prototype classifier (the medical study's recipe)."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    loop: LoopConfig = Field(default_factory=lambda: LoopConfig(lr=1e-5, epochs=10.0, batch_size=32, warmup_ratio=0.03))
    metric: Literal["accuracy", "mae"] = "accuracy"
    """Validation metric that picks the best checkpoint (``mae``: ordinal classes)."""
    prompt: str = "a photo of {}"
    """Prototype text; ``{}`` is replaced by the class name."""
    class_column: str | None = None
    """Manifest column holding the class (default: ``choices[answer_index]`` or the answer)."""
    classes: tuple[str, ...] | None = None
    """Class names in order (default: from the manifest, see the module docstring)."""
    train_split: tuple[str, ...] = ("train",)
    valid_split: tuple[str, ...] = ("valid",)
    valid_fraction: float = Field(default=0.1, gt=0, lt=1)
    """Held out from train (seeded) when the dataset has no ``valid_split`` rows."""
    test_split: tuple[str, ...] = ("test",)
    cache_encodings: bool = True

    @field_validator("prompt")
    @classmethod
    def _has_slot(cls, v: str) -> str:
        if "{}" not in v:
            raise ValueError(f"prompt must contain '{{}}' for the class name, got {v!r}")
        return v


def load_contrastive(model: str | os.PathLike[str], *, revision: str | None = None) -> ContrastiveAdapter:
    """Load a contrastive model in float32; ``revision`` as :func:`vlmscope.models.trained.load_generative`'s."""
    from vlmscope.models import LoadOptions, load_model

    adapter = load_model(str(model), options=LoadOptions(dtype="float32", revision=revision))
    if not isinstance(adapter, ContrastiveAdapter):
        raise TrainingError(f"{model}: a {type(adapter).__name__} is not a contrastive image-text model, which `train clip` needs")
    return adapter


def row_class(ex: Example, class_column: str | None) -> str:
    if class_column is not None:
        extra = dict(ex.extra)
        if class_column not in extra:
            raise TrainingError(f"{ex.dataset}: sample {ex.sample_id!r} has no column {class_column!r}")
        return str(extra[class_column])
    if ex.choices is not None and ex.answer_index is not None:
        return ex.choices[ex.answer_index]
    return ex.answer.strip()


def class_names(rows: Sequence[Example], class_column: str | None) -> list[str]:
    """The classes in order: a shared ``choices`` list, else the distinct row classes by grade or name.

    By grade when :func:`class_grades` finds one grade per class (so ``Grade 10``
    follows ``Grade 9``), else sorted by name.
    """
    labels = sorted({row_class(r, class_column) for r in rows})
    choice_lists = {r.choices for r in rows if r.choices is not None}
    if class_column is None and len(choice_lists) == 1:
        (choices,) = choice_lists
        if set(labels) <= set(choices):
            return list(choices)
    grades = class_grades(rows, labels, class_column)
    if grades is not None:
        return [c for _, c in sorted(zip(grades, labels, strict=True))]
    return labels


def class_grades(rows: Sequence[Example], classes: Sequence[str], class_column: str | None) -> list[int] | None:
    """The grade of each class, or ``None`` when the classes are no grade scale.

    A class's grade is its rows' ``grade`` column when they carry one (all
    rows of a class agreeing), else :func:`grade_of_name` of its name; ``None`` when
    some class has no grade, two grades, or shares its grade with another class.
    """
    from_column: dict[str, set[Any]] = {}
    for r in rows:
        extra = dict(r.extra)
        if extra.get("grade") is not None:
            from_column.setdefault(row_class(r, class_column), set()).add(extra["grade"])
    grades = []
    for c in classes:
        found = from_column.get(c)
        g = next(iter(found)) if found and len(found) == 1 else (grade_of_name(c) if not found else None)
        if not isinstance(g, int) or isinstance(g, bool):
            return None
        grades.append(g)
    return grades if len(set(grades)) == len(grades) else None


class PrototypeClassifier(nn.Module):
    """(B, 3, H, W) pixels -> (B, K) logits against K fixed, normalised text prototypes."""

    def __init__(self, adapter: ContrastiveAdapter, prototypes: torch.Tensor) -> None:
        super().__init__()
        self.model = adapter.model
        self.family = type(adapter)  # the class only: the module holds the model, the family knows its parts
        self.register_buffer("prototypes", nn.functional.normalize(prototypes.detach().float(), dim=-1))

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        emb = self.family.image_features(self.model, pixel_values)  # (B, E)
        cos = nn.functional.normalize(emb.float(), dim=-1) @ self.prototypes.T  # (B, K)
        return self.family.similarity_logits(self.model, cos)


def classify_metrics(
    logits: torch.Tensor, target: torch.Tensor, values: Sequence[int] | None = None
) -> dict[str, float]:
    """accuracy and MAE of argmax predictions: in ``values[class]`` units (grades) when given, else class indices."""
    pred = logits.argmax(-1)
    accuracy = float((pred == target).float().mean())
    if values is not None:  # integer steps, then the same float32 mean: grades 0..K-1 give the index MAE's bits
        v = torch.tensor(list(values), dtype=torch.int64)
        pred, target = v[pred], v[target]
    return {"accuracy": accuracy, "mae": float((pred - target).abs().float().mean())}


class _Pixels:
    """Processed pixels per row, computed once per image (or per batch when not cached)."""

    def __init__(self, processor: Any, rows: Sequence[Example], keep: bool) -> None:
        self.processor, self.rows, self.keep = processor, list(rows), keep
        self.images = ImageCache(keep=keep)
        self._pv: dict[str, torch.Tensor] = {}

    def get(self, idx: Sequence[int]) -> torch.Tensor:
        out = []
        for i in idx:
            key = str(self.rows[int(i)].image)
            pv = self._pv.get(key)
            if pv is None:
                img = self.images.get(self.rows[int(i)].image)
                pv = self.processor.image_processor(images=[img], return_tensors="pt")["pixel_values"][0]
                if self.keep:
                    self._pv[key] = pv
            out.append(pv)
        return torch.stack(out)


@torch.no_grad()
def _logits(clf: PrototypeClassifier, pixels: _Pixels, n: int, batch: int = 64) -> torch.Tensor:
    clf.eval()
    device = clf.prototypes.device
    out = [clf(pixels.get(range(i, min(n, i + batch))).to(device)).cpu() for i in range(0, n, batch)]
    return torch.cat(out) if out else torch.empty(0, clf.prototypes.shape[0])


@trainer_entry("clip", ClipTrainConfig())
def train_clip(call: TrainerCall, cfg: ClipTrainConfig) -> dict[str, Any]:
    """Fine-tune ``model``'s image tower as a prototype classifier; writes ``out``, returns metrics."""
    from accelerate import PartialState

    adapter = load_contrastive(call.model, revision=call.revision)
    train = load_rows(call.datasets, cfg.train_split)
    valid = load_rows(call.datasets, cfg.valid_split, allow_empty=True)
    valid_from = "split"
    if not valid:
        perm = np.random.default_rng(cfg.loop.seed).permutation(len(train))
        n_va = max(1, int(round(cfg.valid_fraction * len(train))))
        if len(train) - n_va < 1:
            raise TrainingError(f"only {len(train)} training row(s): too few to hold out validation rows")
        held = set(perm[:n_va].tolist())
        valid = [r for i, r in enumerate(train) if i in held]
        train = [r for i, r in enumerate(train) if i not in held]
        valid_from = f"{cfg.valid_fraction:g} of train"
    test = load_rows(call.datasets, cfg.test_split, allow_empty=True)
    classes = list(cfg.classes) if cfg.classes else class_names(train + valid + test, cfg.class_column)
    if len(classes) < 2:
        raise TrainingError(f"need at least 2 classes to classify, found {classes}")
    grades = class_grades(train + valid + test, classes, cfg.class_column)

    def targets(rows: Sequence[Example]) -> torch.Tensor:
        idx = []
        for r in rows:
            c = row_class(r, cfg.class_column)
            if c not in classes:
                raise TrainingError(f"{r.dataset}: sample {r.sample_id!r} has class {c!r}, not one of {classes}")
            idx.append(classes.index(c))
        return torch.tensor(idx, dtype=torch.long)

    y_train, y_valid, y_test = targets(train), targets(valid), targets(test)
    prompts = [cfg.prompt.format(c) for c in classes]
    protos = adapter.text_embeddings(prompts).clone()  # (K, E), fixed
    for p in adapter.model.parameters():
        p.requires_grad_(False)
    trainable = adapter.vision_parameters()
    for p in trainable:
        p.requires_grad_(True)
    if not trainable:
        raise TrainingError(f"no trainable parameters selected: {type(adapter.model).__name__} has no image tower")
    clf = PrototypeClassifier(adapter, protos)
    px_train = _Pixels(adapter.processor, train, cfg.cache_encodings)
    px_valid = _Pixels(adapter.processor, valid, cfg.cache_encodings)
    px_test = _Pixels(adapter.processor, test, cfg.cache_encodings)
    zero_shot_test = classify_metrics(_logits(clf, px_test, len(test)), y_test, grades) if test else {}

    def loss_fn(m: nn.Module, b: dict[str, torch.Tensor]) -> torch.Tensor:
        return nn.functional.cross_entropy(m(b["pixel_values"]), b["target"])

    def evaluate(m: nn.Module) -> dict[str, float]:
        return classify_metrics(_logits(m, px_valid, len(valid)), y_valid, grades)  # type: ignore[arg-type]

    spec = LoopSpec(
        model=clf, n_examples=len(train),
        make_batch=lambda idx: {"pixel_values": px_train.get(idx.tolist()), "target": y_train[idx]},
        loss_fn=loss_fn, evaluate=evaluate, select=cfg.metric, mode="max" if cfg.metric == "accuracy" else "min",
        fingerprint=call.fingerprint, params={"trainer": "clip"},
    )
    result = run_loop(spec, cfg.loop, call.run_dir, accelerator=call.accelerator, callbacks=call.callbacks)
    trained: PrototypeClassifier = result.model  # type: ignore[assignment]
    metrics: dict[str, Any] = {"steps": result.steps, "train_rows": len(train), "valid_rows": len(valid),
                               "classes": len(classes), "seconds": round(result.seconds, 3)}  # fmt: skip
    if result.best is not None:
        metrics["best_step"] = result.best["step"]
        metrics.update({f"valid_{k}": v for k, v in result.best["metrics"].items()})
    if test:
        tuned = classify_metrics(_logits(trained, px_test, len(test)), y_test, grades)
        metrics.update({f"test_{k}_zero_shot": v for k, v in zero_shot_test.items()})
        metrics.update({f"test_{k}": v for k, v in tuned.items()})
    is_main = call.accelerator.is_main_process if call.accelerator is not None else PartialState().is_main_process
    if is_main:
        args = call.training_args(classes=classes, valid_from=valid_from, vlmscope_version=__version__)
        with atomic_dir(call.out, kind="model", inputs=[call.model, *call.datasets]) as tmp:
            save_model_files(adapter, tmp, trained_from=str(call.model), trainer="clip")
            protos = {"classes": classes, "prompt": cfg.prompt, "texts": prompts}
            if grades is not None:  # the key only when the classes are grades (older files stay byte-identical)
                protos["grades"] = grades
            if cfg.class_column is not None:
                protos["class_column"] = cfg.class_column
            write_json(tmp / "prototypes.json", protos, sort_keys=False)
            write_json(tmp / "training_args.json", args)
            write_json(tmp / "train_state.json", result.summary())
            flat = {k: v for k, v in metrics.items() if isinstance(v, (int, float))}
            write_json(tmp / "metrics.json", flat)
    finish_run_dir(call.run_dir, cfg.loop, is_main)
    return metrics
