"""Before a generative VLM trains: the rows, answers that can be learned, only the chosen parameters trainable."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from vlmscope.errors import TrainingError
from vlmscope.models.adapter import ModelAdapter
from vlmscope.training.config import SubsampleConfig
from vlmscope.training.data import Example, class_of, load_rows, subsample

__all__ = ["answer_rows", "check_answers", "freeze_except"]


def answer_rows(
    adapter: ModelAdapter,
    datasets: Sequence[str | os.PathLike[str]],
    train_split: Sequence[str],
    valid_split: Sequence[str],
    sub: SubsampleConfig,
) -> tuple[list[Example], dict[str, Any], list[Example]]:
    """(training rows, subsample record, validation rows) of the projector and LoRA trainers.

    The training rows are subsampled by ``sub`` (the dataset ablations) and
    their answers checked; validation rows are loaded only when
    ``valid_split`` names any (empty: keep the last weights).
    """
    train = load_rows(datasets, train_split, class_column=sub.class_column)
    train, record = subsample(train, sub)
    check_answers(adapter, train)
    valid = load_rows(datasets, valid_split, allow_empty=True) if valid_split else []
    return train, record, valid


def check_answers(adapter: ModelAdapter, examples: Sequence[Example]) -> None:
    """Fail before training when an answer span would be empty (text only, no images)."""
    tok = adapter.tokenizer
    seen: set[str] = set()
    for ex in examples:
        if ex.answer in seen:
            continue
        seen.add(ex.answer)
        text = class_of(ex.answer)
        ids = [i for i in adapter.answer_ids(text) if i != tok.eos_token_id] if text.strip() else []
        if not ids:
            raise TrainingError(
                f"{ex.dataset}: sample {ex.sample_id!r}: answer {ex.answer!r} tokenizes to nothing "
                "(the loss span would be empty); fix or drop the row"
            )


def freeze_except(adapter: ModelAdapter, groups: Sequence[str]) -> dict[str, int]:
    """``requires_grad`` True exactly on ``groups`` of ``adapter.parameter_groups()``; returns sizes."""
    all_groups = adapter.parameter_groups()
    unknown = [g for g in groups if g not in all_groups]
    if unknown:
        raise TrainingError(f"unknown parameter group(s) {unknown}; valid: {sorted(all_groups)}")
    for p in adapter.model.parameters():
        p.requires_grad_(False)
    sizes = {}
    for g in groups:
        for p in all_groups[g]:
            p.requires_grad_(True)
        sizes[g] = sum(p.numel() for p in all_groups[g])
    if sum(sizes.values()) == 0:
        raise TrainingError(f"no trainable parameters selected: group(s) {list(groups)} are empty in this model")
    return sizes
