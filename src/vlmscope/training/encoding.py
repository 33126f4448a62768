"""Encode training rows once, batch them many times.

Encoding (processor + tokenizer + answer labels) costs far more than a tiny
model's forward pass, and every epoch would redo it. :class:`EncodedCache`
encodes each row once through the adapter (batch of one, answers appended)
and :func:`collate` left-pads any subset into a batch that equals what
``adapter.encode`` returns for those rows together (tested), so the model
sees exactly the inference-time prompt tokens.

Each row's labels are cut to its answer span by
:func:`vlmscope.scoring.answer_span.mask_bbox`; the loss over that span is
:mod:`vlmscope.scoring.answer_span`'s.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from vlmscope.errors import TrainingError
from vlmscope.models.adapter import EncodedBatch, ModelAdapter
from vlmscope.scoring.answer_span import mask_bbox
from vlmscope.training.data import Example, ImageCache

__all__ = ["EncodedCache", "collate"]


def collate(items: Sequence[EncodedBatch], pad_id: int) -> EncodedBatch:
    """Left-pad single-row encodings into one batch (what ``adapter.encode`` gives for all rows).

    Per-token inputs are the 2-D ``(1, T)`` tensors (``input_ids``,
    ``attention_mask``, ``position_ids``, ``token_type_ids`` ...): padded on
    the left with ``pad_id`` (``input_ids``) or 0; every other tensor
    (``pixel_values``, ``image_sizes``, ``image_grid_thw`` ...) is
    concatenated along dim 0.
    """
    if not items:
        raise TrainingError("cannot collate an empty batch")
    T = max(int(it.inputs["input_ids"].shape[1]) for it in items)

    def lpad(x: torch.Tensor, fill: int | bool) -> torch.Tensor:
        n = T - x.shape[1]
        if n == 0:
            return x
        return torch.cat([torch.full((x.shape[0], n), fill, dtype=x.dtype), x], dim=1)

    first = items[0]
    inputs: dict[str, Any] = {}
    for key, val in first.inputs.items():
        if not isinstance(val, torch.Tensor):
            inputs[key] = val
            continue
        t_i = int(first.inputs["input_ids"].shape[1])
        if val.ndim == 2 and val.shape == (1, t_i):
            fill = pad_id if key == "input_ids" else 0
            inputs[key] = torch.cat([lpad(it.inputs[key], fill) for it in items])
        else:
            inputs[key] = torch.cat([it.inputs[key] for it in items])
    labels = (
        torch.cat([lpad(it.labels, -100) for it in items]) if first.labels is not None else None  # type: ignore[arg-type]
    )
    answer_mask = (
        torch.cat([lpad(it.answer_mask, False) for it in items])  # type: ignore[arg-type]
        if first.answer_mask is not None
        else None
    )
    return EncodedBatch(
        inputs=inputs,
        attention_mask=inputs["attention_mask"],
        image_mask=torch.cat([lpad(it.image_mask, False) for it in items]),
        last_index=torch.cat([it.last_index + (T - it.inputs["input_ids"].shape[1]) for it in items]),
        patch_grids=[g for it in items for g in it.patch_grids],
        labels=labels,
        answer_mask=answer_mask,
    )


class EncodedCache:
    """Per-row encodings (with answer labels), computed on first use and kept."""

    def __init__(self, adapter: ModelAdapter, examples: Sequence[Example], *, images: ImageCache | None = None,
                 with_answers: bool = True) -> None:  # fmt: skip
        self.adapter = adapter
        self.examples = list(examples)
        self.images = images or ImageCache()
        self.with_answers = with_answers
        self._enc: dict[int, EncodedBatch] = {}
        self._shared: dict[tuple[str, str], torch.Tensor] = {}
        tok = adapter.tokenizer
        self.pad_id = int(tok.pad_token_id if tok.pad_token_id is not None else 0)

    def __len__(self) -> int:
        return len(self.examples)

    def one(self, i: int) -> EncodedBatch:
        enc = self._enc.get(i)
        if enc is None:
            ex = self.examples[i]
            where = f"{ex.dataset}: sample {ex.sample_id!r}"
            enc = self.adapter.encode(
                [self.images.get(ex.image)], [ex.prompt], answers=[ex.answer] if self.with_answers else None
            )
            if self.with_answers:
                if enc.labels is None:
                    raise TrainingError(f"{where}: the {self.adapter.family} adapter returned no answer labels")
                enc.labels = mask_bbox(enc.labels, ex.answer, self.adapter.tokenizer, where)
            self._share_image_tensors(str(ex.image), enc)
            self._enc[i] = enc
        return enc

    def _share_image_tensors(self, image: str, enc: EncodedBatch) -> None:
        """Rows of one image hold one copy of its processed pixels (relations: ~19 rows per image)."""
        T = int(enc.inputs["input_ids"].shape[1])
        for key, val in enc.inputs.items():
            if not isinstance(val, torch.Tensor) or (val.ndim == 2 and val.shape == (1, T)):
                continue
            prev = self._shared.get((image, key))
            if prev is not None and prev.shape == val.shape and torch.equal(prev, val):
                enc.inputs[key] = prev
            else:
                self._shared[(image, key)] = val

    def warm(self) -> None:
        """Encode every row now (surfaces bad rows before training starts)."""
        for i in range(len(self.examples)):
            self.one(i)

    def batch(self, indices: Sequence[int]) -> EncodedBatch:
        return collate([self.one(int(i)) for i in indices], self.pad_id)
