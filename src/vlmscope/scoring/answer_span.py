"""The answer-span loss: which tokens of an encoded answer count, and their cross-entropy.

Training minimises it and evaluation scores options by it (``--mode
option-loss``); it lives here, below both, so that neither package imports
the other.

The loss sees only the answer span (answer tokens + eos, the positions whose
label is not -100); for ``"[bbox] classname"`` answers :func:`mask_bbox`
masks the bracket's tokens too, so only the class name (and eos) counts, as
in the unseen-class study.
"""

from __future__ import annotations

import re
from typing import Any

import torch
from torch import nn

from vlmscope.errors import TrainingError
from vlmscope.models.adapter import EncodedBatch

__all__ = ["answer_logits", "answer_loss", "bbox_prefix", "class_of", "mask_bbox", "per_example_loss"]

_BBOX = re.compile(r"^\s*(\[[^\]]*\])\s*(.*)$", re.DOTALL)


def bbox_prefix(answer: str) -> str | None:
    """The leading ``[...]`` of a ``"[bbox] classname"`` answer, or None."""
    m = _BBOX.match(answer)
    return m.group(1) if m else None


def class_of(answer: str) -> str:
    """``"[0.1, 0.2, 0.3, 0.4] dog"`` -> ``"dog"``; answers without a bracket are their own class."""
    m = _BBOX.match(answer)
    return (m.group(2) if m else answer).strip()


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
