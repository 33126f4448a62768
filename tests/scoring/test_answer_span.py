"""The answer-span loss: logits only at answer positions give the same loss as the full logits."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from torch import nn

from vlmscope.models.trained import load_generative
from vlmscope.scoring.answer_span import _forward_params, answer_logits, answer_loss, per_example_loss
from vlmscope.training.data import ImageCache
from vlmscope.training.encoding import EncodedCache
from vlmscope.training.trainers.projector import load_rows


def _reference(model: nn.Module, batch: object) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean loss, per-row loss) from the full (B, T, V) logits, shifted by hand."""
    logits = model(**batch.inputs).logits[:, :-1].float()  # type: ignore[attr-defined]
    target = batch.labels[:, 1:]  # type: ignore[attr-defined]
    ce = nn.functional.cross_entropy(logits.transpose(1, 2), target, ignore_index=-100, reduction="none")
    valid = (target != -100).float()
    return (ce * valid).sum() / valid.sum(), (ce * valid).sum(1) / valid.sum(1)


@pytest.mark.parametrize("family", ["composite", "qwen2-vl", "paligemma", "internvl"])
def test_answer_positions_only_equal_full_logits(
    family: str, tiny_checkpoint: Callable[[str], Path], tiny_dataset: Callable[..., Path]
) -> None:
    adapter = load_generative(tiny_checkpoint(family))
    rows = load_rows([tiny_dataset("color", 16), tiny_dataset("counting", 16)], ["train", "test"])
    picked = [rows[0], rows[1], rows[-1], rows[-2]]  # colour and counting answers: different lengths
    cache = EncodedCache(adapter, picked, images=ImageCache(keep=True))
    batch = cache.batch(range(len(picked)))
    model = adapter.model.eval()
    assert "logits_to_keep" in _forward_params(model)  # the cheap path is the one taken
    with torch.no_grad():
        ref_mean, ref_rows = _reference(model, batch)
        logits, target = answer_logits(model, batch)
        mean, per_row = answer_loss(model, batch), per_example_loss(model, batch)
    n_answer = int((batch.labels[:, 1:] != -100).sum())  # type: ignore[index]
    assert logits.shape[1] < batch.labels.shape[1] - 1  # type: ignore[union-attr]
    assert int((target != -100).sum()) == n_answer
    torch.testing.assert_close(mean, ref_mean, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(per_row, ref_rows, rtol=1e-5, atol=1e-5)


def test_gradients_equal_full_logits(tiny_checkpoint: Callable[[str], Path], tiny_dataset: Callable[..., Path]) -> None:
    adapter = load_generative(tiny_checkpoint("composite"))
    rows = load_rows([tiny_dataset("color", 16)], ["train"])[:3]
    batch = EncodedCache(adapter, rows, images=ImageCache(keep=True)).batch(range(3))
    model = adapter.model.train()
    grads = []
    for fn in (lambda: _reference(model, batch)[0], lambda: answer_loss(model, batch)):
        model.zero_grad()
        fn().backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys()
    for name in grads[0]:
        torch.testing.assert_close(grads[1][name], grads[0][name], rtol=1e-4, atol=1e-6, msg=name)
