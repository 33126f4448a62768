"""Encode training rows once, batch them many times, and the answer-span LM loss.

Encoding (processor + tokenizer + answer labels) costs far more than a tiny
model's forward pass, and every epoch would redo it. :class:`EncodedCache`
encodes each row once through the adapter (batch of one, answers appended)
and :func:`collate` left-pads any subset into a batch that equals what
``adapter.encode`` returns for those rows together (tested), so the model
sees exactly the inference-time prompt tokens.

The loss sees only the answer span (answer tokens + eos); for
``"[bbox] classname"`` answers the bracket's tokens are masked too, so only
the class name (and eos) is learned, as in the unseen-class study.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from vlmscope.errors import TrainingError
from vlmscope.models.adapter import EncodedBatch, ModelAdapter
from vlmscope.training.data import Example, ImageCache, bbox_prefix

__all__ = ["EncodedCache", "answer_logits", "answer_loss", "collate", "mask_bbox", "per_example_loss"]


def mask_bbox(labels: torch.Tensor, answer: str, tokenizer: Any, where: str) -> torch.Tensor:
    """(1, T) labels with the ``[bbox]`` tokens of ``answer`` set to -100.

    The answer's tokens are decoded one prefix at a time; the shortest prefix
    whose text covers the bracket is masked. Raises when nothing but eos is
    left to learn.
    """
    prefix = bbox_prefix(answer)
    pos = (labels[0] != -100).nonzero().flatten()
    ids = labels[0, pos].tolist()
    eos = tokenizer.eos_token_id
    content = [i for i in ids if i != eos]
    if not content:
        raise TrainingError(f"{where}: answer {answer!r} tokenizes to nothing (only eos); fix the manifest row")
    if prefix is None:
        return labels
    out = labels.clone()
    for k in range(1, len(ids) + 1):
        text = tokenizer.decode(ids[:k], skip_special_tokens=True).lstrip()
        if len(text) >= len(prefix):
            out[0, pos[:k]] = -100
            left = [i for i in ids[k:] if i != eos]
            if not left:
                raise TrainingError(
                    f"{where}: answer {answer!r} has no class name after its bracket; "
                    "the loss span would be empty"
                )
            return out
    raise TrainingError(f"{where}: answer {answer!r}: bracket not found among its tokens")


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


def answer_loss(model: nn.Module, batch: EncodedBatch) -> torch.Tensor:
    """Mean cross-entropy over the batch's answer tokens (labels != -100), next-token shifted."""
    logits, target = answer_logits(model, batch)
    return _ce(logits, target, reduction="mean")


def per_example_loss(model: nn.Module, batch: EncodedBatch) -> torch.Tensor:
    """(B,) mean answer-token cross-entropy of each row (for evaluation and MCQA scoring)."""
    logits, target = answer_logits(model, batch)
    return _ce(logits, target, reduction="row")


def answer_logits(model: nn.Module, batch: EncodedBatch) -> tuple[torch.Tensor, torch.Tensor]:
    """``(logits (B, K, V), targets (B, K))`` at the K positions that predict an answer token.

    Only those positions go through the unembedding (``logits_to_keep`` with
    the positions, where the model's forward takes it): the answer span is a
    few tokens at the end of each left-padded row, so this skips nearly all of
    the ``(B, T, V)`` logits -- for a 32k vocabulary and 600-token prompts
    that tensor (and its gradient) is most of a training step's memory. The
    loss is the same number either way (tested).
    """
    labels = batch.labels
    if labels is None:
        raise TrainingError("batch has no answer labels")
    target_all = labels[:, 1:]  # position t predicts token t + 1
    keep = (target_all != -100).any(0).nonzero().flatten()
    if keep.numel() == 0:
        raise TrainingError("batch has no answer tokens to learn from")
    inputs = dict(batch.inputs)
    takes = _forward_params(model)
    if "logits_to_keep" in takes:
        inputs["logits_to_keep"] = keep.to(_device(model))
    if "use_cache" in takes:
        inputs["use_cache"] = False  # no KV cache for a single scoring/training pass
    logits = model(**inputs).logits
    if logits.shape[1] == labels.shape[1] != keep.numel():  # all positions: the forward kept everything
        logits = logits[:, keep.to(logits.device)]
    if logits.shape[1] != keep.numel():
        raise TrainingError(
            f"{type(_unwrap(model)).__name__} returned logits for {logits.shape[1]} positions, "
            f"expected the {keep.numel()} answer positions or all {labels.shape[1]}"
        )
    return logits, target_all[:, keep].to(logits.device)


def _unwrap(model: nn.Module) -> nn.Module:
    """The transformers model under DDP / DeepSpeed (``.module``) and peft (``get_base_model``)."""
    while True:
        if hasattr(model, "get_base_model"):
            model = model.get_base_model()
        elif isinstance(getattr(model, "module", None), nn.Module):
            model = model.module
        else:
            return model


def _forward_params(model: nn.Module) -> set[str]:
    import inspect

    return set(inspect.signature(_unwrap(model).forward).parameters)


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def _ce(logits: torch.Tensor, target: torch.Tensor, *, reduction: str) -> torch.Tensor:
    ce = nn.functional.cross_entropy(logits.float().transpose(1, 2), target, ignore_index=-100, reduction="none")
    valid = (target != -100).float()
    if reduction == "mean":
        n = valid.sum()
        if n == 0:
            raise TrainingError("batch has no answer tokens to learn from")
        return (ce * valid).sum() / n
    return (ce * valid).sum(1) / valid.sum(1).clamp(min=1)
