"""Before a generative VLM trains: answers that can be learned, and only the chosen parameters trainable."""

from __future__ import annotations

from collections.abc import Sequence

from vlmscope.errors import TrainingError
from vlmscope.models.adapter import ModelAdapter
from vlmscope.training.data import Example, class_of

__all__ = ["check_answers", "freeze_except"]


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
