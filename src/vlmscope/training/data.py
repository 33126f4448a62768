"""Training rows from vlmscope dataset directories and ablation subsampling.

Rows, splits and images are read by :mod:`vlmscope.data.reader` (``ImageCache``
and ``split_rows`` are re-exported here for the trainers).

Training reads the same dataset contract as every other stage
(:mod:`vlmscope.data.manifest`): one row per (image, prompt, answer). The
unseen-class study's answers look like ``"[0.1, 0.2, 0.5, 0.6] dog"``; the
*class* of such a row is the text after the bracket (:func:`class_of`), which
is also the only part the loss sees.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from vlmscope.data.manifest import INFO, load_dataset_info, resolve_image
from vlmscope.data.reader import ImageCache, read_rows, split_rows
from vlmscope.errors import DatasetError, TrainingError
from vlmscope.scoring.answer_span import bbox_prefix, class_of
from vlmscope.training.config import SubsampleConfig

__all__ = [
    "Example",
    "ImageCache",
    "bbox_prefix",
    "class_of",
    "load_examples",
    "load_rows",
    "row_matches",
    "split_rows",
    "subsample",
]

@dataclass(frozen=True)
class Example:
    """One training row."""

    sample_id: str
    image: Path
    """Absolute image path."""
    prompt: str
    answer: str
    answer_type: str
    label: str
    """Class used by subsampling (and by the CLIP trainer): a label column or :func:`class_of` the answer."""
    dataset: str
    """Name of the dataset directory the row came from."""
    generator: str = ""
    """What made the dataset (``dataset.json``'s ``generator``: ``color``, ``counting`` ...), if known."""
    choices: tuple[str, ...] | None = None
    answer_index: int | None = None
    extra: tuple[tuple[str, Any], ...] = ()
    """Other scalar label columns (``query_type``, ``count`` ...), for per-group metrics."""


def row_matches(r: Example, datasets: Sequence[str] | None, where: dict[str, Sequence[Any]]) -> bool:
    """Whether ``r`` is in one of ``datasets`` (directory name or generator kind; None: any) and passes ``where``.

    ``where`` maps a label column to its allowed values; a row without that
    column is not constrained by it (the curriculum's rule, shared by the
    vision pre-training heads).
    """
    if datasets is not None and r.dataset not in datasets and r.generator not in datasets:
        return False
    extra = dict(r.extra)
    return all(extra[col] in allowed for col, allowed in where.items() if col in extra)


def load_examples(
    dataset: str | os.PathLike[str],
    splits: Sequence[str],
    *,
    class_column: str | None = None,
    allow_empty: bool = False,
) -> list[Example]:
    """Rows of ``splits`` from a dataset directory, in manifest order."""
    root = Path(dataset)
    df = read_rows(root, splits, allow_empty=allow_empty)
    where = str(root / "manifest.parquet")
    if class_column is not None and class_column not in df.columns:
        raise DatasetError(f"{where}: class column {class_column!r} not found (columns: {', '.join(df.columns)})")
    generator = load_dataset_info(root).generator if (root / INFO).is_file() else ""
    scalar = [c for c, t in df.schema.items() if not isinstance(t, (pl.List, pl.Array, pl.Struct))]
    skip = {"sample_id", "image", "prompt", "answer", "split", "answer_type", "answer_index"}
    out = []
    for row in df.iter_rows(named=True):
        answer = row["answer"]
        if answer is None or row["prompt"] is None:
            raise DatasetError(f"{where}: sample {row['sample_id']!r} has an empty prompt or answer")
        label = class_of(answer) if class_column is None else str(row[class_column])
        choices = row.get("choices")
        out.append(
            Example(
                sample_id=row["sample_id"],
                image=resolve_image(root, row["image"]),
                prompt=row["prompt"],
                answer=answer,
                answer_type=row.get("answer_type") or "open",
                label=label,
                dataset=root.name,
                generator=generator,
                choices=tuple(choices) if choices is not None else None,
                answer_index=row.get("answer_index"),
                extra=tuple((c, row[c]) for c in scalar if c not in skip),
            )
        )
    return out


def load_rows(
    datasets: Sequence[str | os.PathLike[str]],
    splits: Sequence[str],
    *,
    class_column: str | None = None,
    allow_empty: bool = False,
) -> list[Example]:
    """The rows of ``splits`` from every dataset, in order."""
    rows: list[Example] = []
    for d in datasets:
        rows.extend(load_examples(d, splits, class_column=class_column, allow_empty=allow_empty))
    return rows


def subsample(examples: Sequence[Example], cfg: SubsampleConfig) -> tuple[list[Example], dict[str, Any]]:
    """Keep a seeded proportion of the rows (see :class:`SubsampleConfig`); returns (rows, record).

    The record lists the kept classes and counts so the checkpoint documents
    exactly which ablation it was trained on.
    """
    labels = sorted({e.label for e in examples})
    record: dict[str, Any] = {"mode": cfg.mode, "proportion": cfg.proportion, "seed": cfg.seed,
                              "rows_before": len(examples), "classes_before": len(labels)}  # fmt: skip
    if cfg.proportion >= 1.0:
        record.update(rows_after=len(examples), classes_after=len(labels), kept_classes=labels)
        return list(examples), record
    rng = np.random.default_rng(cfg.seed)
    if cfg.mode == "class-exclusive":
        n_keep = max(1, round(cfg.proportion * len(labels)))
        keep = set(np.asarray(labels, dtype=object)[np.sort(rng.permutation(len(labels))[:n_keep])].tolist())
        kept = [e for e in examples if e.label in keep]
    else:
        by_class: dict[str, list[int]] = {}
        for i, e in enumerate(examples):
            by_class.setdefault(e.label, []).append(i)
        chosen: list[int] = []
        for lab in labels:
            idx = by_class[lab]
            n_keep = max(1, round(cfg.proportion * len(idx)))
            chosen.extend(np.asarray(idx)[rng.permutation(len(idx))[:n_keep]].tolist())
        kept = [examples[i] for i in sorted(chosen)]
    kept_labels = sorted({e.label for e in kept})
    record.update(rows_after=len(kept), classes_after=len(kept_labels), kept_classes=kept_labels)
    if not kept:
        raise TrainingError(f"subsample kept no rows (proportion {cfg.proportion}, mode {cfg.mode})")
    return kept, record
