"""How well a generative VLM answers during training: mean answer loss, generation accuracy.

The validation numbers the loop selects checkpoints by, and the before/after
probe loss of a run's metrics.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from vlmscope.evaluation.scoring import generate_and_score
from vlmscope.models.adapter import ModelAdapter
from vlmscope.scoring.answer_span import per_example_loss
from vlmscope.training.data import Example, ImageCache
from vlmscope.training.encoding import EncodedCache

__all__ = ["generation_scores", "mean_answer_loss"]


@torch.no_grad()
def mean_answer_loss(model: nn.Module, cache: EncodedCache, indices: Sequence[int], batch_size: int = 16) -> float:
    """Mean over rows of each row's mean answer-token cross-entropy (CPU or the model's device)."""
    device = next(model.parameters()).device
    losses = []
    for i in range(0, len(indices), batch_size):
        b = cache.batch(indices[i : i + batch_size]).to(device)
        losses.append(per_example_loss(model, b).float().cpu())
    return float(torch.cat(losses).mean()) if losses else float("nan")


def generation_scores(
    adapter: ModelAdapter,
    examples: Sequence[Example],
    *,
    batch_size: int = 32,
    max_new_tokens: int = 5,
    images: ImageCache | None = None,
    cache: EncodedCache | None = None,
) -> list[tuple[str, bool]]:
    """Greedy-decode every row and score it as the evaluation stage does; (text, correct) per row.

    The decoding and scoring are the evaluation's own
    (:func:`vlmscope.evaluation.scoring.generate_and_score`); only the
    encodings come from the training cache.
    """
    enc = cache or EncodedCache(adapter, examples, images=images, with_answers=False)
    rows = [
        {
            "answer_type": ex.answer_type, "answer": ex.answer,
            "choices": list(ex.choices) if ex.choices is not None else None, "answer_index": ex.answer_index,
        }
        for ex in examples
    ]  # fmt: skip
    was_training = adapter.model.training
    adapter.model.eval()
    try:
        scored = generate_and_score(
            adapter, rows, lambda idx: enc.batch(list(idx)), batch_size=batch_size, max_new_tokens=max_new_tokens
        )
    finally:
        adapter.model.train(was_training)
    return [(t, v.correct) for t, v in scored]
