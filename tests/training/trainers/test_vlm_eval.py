"""Validation accuracy during training is the evaluation's generate-and-score over the cached encodings."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from vlmscope.training.data import Example
from vlmscope.training.trainers.vlm_eval import generation_scores


def _example(i: int, answer: str, answer_type: str, choices: tuple[str, ...] | None = None,
             answer_index: int | None = None) -> Example:  # fmt: skip
    return Example(sample_id=f"s{i}", image=Path(f"/nowhere/{i}.png"), prompt="?", answer=answer,
                   answer_type=answer_type, label=answer, dataset="d", choices=choices,
                   answer_index=answer_index)  # fmt: skip


class _Cache:
    """Stands in for the training encodings: a batch is its row indices."""

    def batch(self, indices: list[int]) -> list[int]:
        return list(indices)


class _Adapter:
    def __init__(self, texts: list[str]) -> None:
        self.model = nn.Linear(1, 1)
        self.texts = texts
        self.modes: list[bool] = []

    def generate(self, batch: list[int], *, max_new_tokens: int) -> list[str]:
        self.modes.append(self.model.training)
        return [self.texts[i] for i in batch]


def test_generation_scores_use_the_evaluation_rules_in_eval_mode() -> None:
    examples = [
        _example(0, "B", "choice", ("red", "blue"), 1),
        _example(1, "3", "count"),
        _example(2, "red", "choice", ("red", "blue"), 0),
    ]
    adapter = _Adapter(["(B)", "3", "B"])
    adapter.model.train()
    got = generation_scores(adapter, examples, batch_size=2, cache=_Cache())  # type: ignore[arg-type]
    assert got == [("(B)", True), ("3", True), ("B", False)]  # a letter counts only on lettered rows
    assert adapter.modes == [False, False]  # two batches, both generated in eval mode
    assert adapter.model.training  # and the training mode is back
