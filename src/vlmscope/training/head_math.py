"""The output-layer fine-tuning of the counting study, on plain tensors.

Given final-normed last-layer states ``z`` (N, D) and the answer's first
token ids ``y`` (N,), fit a copy of the unembedding ``W`` (V, D), initialised
from the model's ``W0``, by cross-entropy (+ ``kl_lambda`` * KL(frozen ||
new) to stay close to the original head's distribution), AdamW, seeded
mini-batches, keeping the epoch with the best validation accuracy. No model
forward pass is needed: thousands of rows train in seconds on a CPU.

With ``rows`` (the answer vocabulary's token ids, K of them) only those rows
of ``W`` train; the others stay exactly ``W0``'s.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["HeadFit", "rms_norm", "layer_norm", "head_logits", "head_accuracy", "fit_head"]


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float, *, plus_one: bool = False) -> torch.Tensor:
    """(N, D) -> (N, D): ``x * rsqrt(mean(x^2) + eps) * w`` in float32, as Llama's RMSNorm."""
    x = x.float()
    y = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)
    w = weight.float()
    return y * (1.0 + w if plus_one else w)


def layer_norm(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, eps: float) -> torch.Tensor:
    return nn.functional.layer_norm(x.float(), (x.shape[-1],), weight.float(),
                                    None if bias is None else bias.float(), eps)  # fmt: skip


def head_logits(z: torch.Tensor, W: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """(N, D) @ (V, D)^T -> (N, V)."""
    out = z @ W.T
    return out + bias if bias is not None else out


@torch.no_grad()
def head_accuracy(z: torch.Tensor, y: torch.Tensor, W: torch.Tensor, bias: torch.Tensor | None = None,
                  *, chunk: int = 4096) -> float:  # fmt: skip
    """Fraction of rows whose argmax over the whole vocabulary is ``y`` (what greedy decoding emits)."""
    if len(y) == 0:
        return float("nan")
    hits = 0
    for i in range(0, len(y), chunk):
        hits += int((head_logits(z[i : i + chunk], W, bias).argmax(-1) == y[i : i + chunk]).sum())
    return hits / len(y)


@dataclass
class HeadFit:
    W: torch.Tensor
    """(V, D) the fine-tuned head (best validation epoch)."""
    best_epoch: int
    """0 means the original head was never beaten on validation."""
    best_valid_accuracy: float
    history: list[dict[str, float]]
    """Per epoch: train_loss, valid_accuracy."""


def fit_head(
    z_train: torch.Tensor,
    y_train: torch.Tensor,
    z_valid: torch.Tensor,
    y_valid: torch.Tensor,
    W0: torch.Tensor,
    *,
    epochs: int,
    lr: float,
    weight_decay: float,
    batch_size: int,
    kl_lambda: float,
    seed: int,
    rows: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
) -> HeadFit:
    """Fine-tune a copy of ``W0`` (V, D) on (z_train (N, D), y_train (N,)); see the module docstring."""
    W0 = W0.detach().float()
    z_train, z_valid = z_train.float(), z_valid.float()
    gen = torch.Generator().manual_seed(seed)
    if rows is None:
        param = nn.Parameter(W0.clone())
    else:
        rows = rows.long()
        param = nn.Parameter(W0[rows].clone())  # (K, D)

    def full() -> torch.Tensor:
        if rows is None:
            return param
        W = W0.clone()
        W[rows] = param
        return W

    def logits(z: torch.Tensor) -> torch.Tensor:
        if rows is None:
            return head_logits(z, param, bias)
        base = head_logits(z, W0, bias)  # (B, V), frozen
        sub = z @ param.T + (bias[rows] if bias is not None else 0)  # (B, K)
        return base.index_copy(1, rows, sub)

    opt = torch.optim.AdamW([param], lr=lr, weight_decay=weight_decay)
    best_W = W0.clone()
    best_acc = head_accuracy(z_valid, y_valid, W0, bias)
    best_epoch = 0
    history: list[dict[str, float]] = []
    n = len(y_train)
    for epoch in range(1, epochs + 1):
        perm = torch.randperm(n, generator=gen)
        total, seen = 0.0, 0
        for i in range(0, n, batch_size):
            idx = perm[i : i + batch_size]
            z, y = z_train[idx], y_train[idx]
            out = logits(z)  # (B, V)
            loss = nn.functional.cross_entropy(out, y)
            if kl_lambda > 0:
                with torch.no_grad():
                    ref = torch.log_softmax(head_logits(z, W0, bias), -1)
                kl = nn.functional.kl_div(torch.log_softmax(out, -1), ref, log_target=True, reduction="batchmean")
                loss = loss + kl_lambda * kl
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
            seen += len(idx)
        with torch.no_grad():
            W = full().detach()
            acc = head_accuracy(z_valid, y_valid, W, bias)
        history.append({"epoch": epoch, "train_loss": total / max(seen, 1), "valid_accuracy": acc})
        if acc > best_acc:
            best_acc, best_epoch, best_W = acc, epoch, W.clone()
    return HeadFit(W=best_W, best_epoch=best_epoch, best_valid_accuracy=best_acc, history=history)
