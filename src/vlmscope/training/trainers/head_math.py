"""The output-layer fine-tuning of the counting study, on plain tensors.

Given final-normed last-layer states ``z`` (N, D) and the answer's first
token ids ``y`` (N,), fit a copy of the unembedding ``W`` (V, D), initialised
from the model's ``W0``, by cross-entropy (+ ``kl_lambda`` * KL(frozen ||
new) to stay close to the original head's distribution), AdamW, seeded
mini-batches, keeping the epoch with the best validation accuracy. No model
forward pass is needed: thousands of rows train in seconds on a CPU.

With ``rows`` (the answer vocabulary's token ids, K of them) only those rows
of ``W`` train; the others stay exactly ``W0``'s, and each step costs O(K D)
instead of O(V D) (see :class:`RestStats`): seconds on a CPU even with a
150k-token vocabulary.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["HeadFit", "RestStats", "fit_head", "head_accuracy", "head_logits", "rest_stats"]


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
    final_W: torch.Tensor | None = None
    """(V, D) the head after the last epoch (whatever validation said)."""


@dataclass
class RestStats:
    """Per-sample statistics of the frozen logits over the rows that do NOT train.

    With only K of V rows trainable, softmax, cross-entropy, the KL to the
    frozen head and the full-vocabulary argmax all depend on the other V - K
    logits only through these numbers, computed once (one pass over the
    vocabulary) instead of every step: training then costs O(K D) per row.
    """

    lse: torch.Tensor
    """(N,) logsumexp of the frozen logits over the non-trainable rows."""
    top: torch.Tensor
    """(N,) their maximum."""
    arg: torch.Tensor
    """(N,) the vocabulary id of that maximum."""
    lse_all: torch.Tensor
    """(N,) logsumexp of the frozen logits over the whole vocabulary."""


@torch.no_grad()
def rest_stats(z: torch.Tensor, W0: torch.Tensor, rows: torch.Tensor, bias: torch.Tensor | None = None,
               *, chunk: int = 2048) -> RestStats:  # fmt: skip
    """:class:`RestStats` of (N, D) states against the frozen (V, D) head without ``rows``."""
    parts: list[tuple[torch.Tensor, ...]] = []
    for i in range(0, len(z), chunk):
        logits = head_logits(z[i : i + chunk].float(), W0, bias)  # (c, V)
        lse_all = torch.logsumexp(logits, -1)
        logits[:, rows] = float("-inf")
        top, arg = logits.max(-1)
        parts.append((torch.logsumexp(logits, -1), top, arg, lse_all))
    if not parts:
        empty = torch.empty(0)
        return RestStats(empty, empty, empty.long(), empty)
    lse, top, arg, lse_all = (torch.cat(t) for t in zip(*parts))
    return RestStats(lse, top, arg, lse_all)


def _rows_accuracy(z: torch.Tensor, y: torch.Tensor, P: torch.Tensor, rows: torch.Tensor,
                   b_rows: torch.Tensor | float, rest: RestStats) -> float:  # fmt: skip
    if len(y) == 0:
        return float("nan")
    with torch.no_grad():
        best, k = (z @ P.T + b_rows).max(-1)
        pred = torch.where(best > rest.top, rows[k], rest.arg)
    return float((pred == y).float().mean())


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
    max_steps: int | None = None,
) -> HeadFit:
    """Fine-tune a copy of ``W0`` (V, D) on (z_train (N, D), y_train (N,)); see the module docstring.

    With ``rows`` every training label must be one of them; the loss equals
    the full-vocabulary loss exactly (through :class:`RestStats`).
    """
    W0 = W0.detach().float()
    z_train, z_valid = z_train.float(), z_valid.float()
    gen = torch.Generator().manual_seed(seed)
    if rows is None:
        param = nn.Parameter(W0.clone())
    else:
        rows = rows.long()
        position = {int(t): k for k, t in enumerate(rows.tolist())}
        missing = sorted({int(t) for t in y_train.tolist()} - set(position))
        if missing:
            raise ValueError(f"training labels {missing[:5]} are not among the trainable rows")
        y_pos = torch.tensor([position[int(t)] for t in y_train.tolist()], dtype=torch.long)
        param = nn.Parameter(W0[rows].clone())  # (K, D)
        b_rows: torch.Tensor | float = bias[rows].float() if bias is not None else 0.0
        rest_train = rest_stats(z_train, W0, rows, bias)
        rest_valid = rest_stats(z_valid, W0, rows, bias)
        W0_rows = W0[rows]

    def full() -> torch.Tensor:
        if rows is None:
            return param
        W = W0.clone()
        W[rows] = param
        return W

    def batch_loss(idx: torch.Tensor) -> torch.Tensor:
        z = z_train[idx]
        if rows is None:
            out = head_logits(z, param, bias)  # (B, V)
            loss = nn.functional.cross_entropy(out, y_train[idx])
            if kl_lambda > 0:
                with torch.no_grad():
                    ref = torch.log_softmax(head_logits(z, W0, bias), -1)
                kl = nn.functional.kl_div(torch.log_softmax(out, -1), ref, log_target=True, reduction="batchmean")
                loss = loss + kl_lambda * kl
            return loss
        s = z @ param.T + b_rows  # (B, K) trainable logits
        lse_rest = rest_train.lse[idx]
        lse_new = torch.logaddexp(lse_rest, torch.logsumexp(s, -1))  # (B,)
        loss = (lse_new - s.gather(1, y_pos[idx, None])[:, 0]).mean()
        if kl_lambda > 0:
            lse0 = rest_train.lse_all[idx]
            with torch.no_grad():
                logp0 = z @ W0_rows.T + b_rows - lse0[:, None]  # (B, K) frozen log-probs of the K rows
            kl_rows = (logp0.exp() * (logp0 - s + lse_new[:, None])).sum(-1)
            kl_rest = (lse_rest - lse0).exp() * (lse_new - lse0)
            loss = loss + kl_lambda * (kl_rows + kl_rest).mean()
        return loss

    def valid_accuracy() -> float:
        if rows is None:
            return head_accuracy(z_valid, y_valid, param.detach(), bias)
        return _rows_accuracy(z_valid, y_valid, param.detach(), rows, b_rows, rest_valid)

    opt = torch.optim.AdamW([param], lr=lr, weight_decay=weight_decay)
    best_W = W0.clone()
    best_acc = head_accuracy(z_valid, y_valid, W0, bias)
    best_epoch = 0
    history: list[dict[str, float]] = []
    n, step = len(y_train), 0
    for epoch in range(1, epochs + 1):
        perm = torch.randperm(n, generator=gen)
        total, seen = 0.0, 0
        for i in range(0, n, batch_size):
            if max_steps is not None and step >= max_steps:
                break
            idx = perm[i : i + batch_size]
            loss = batch_loss(idx)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            total += float(loss.detach()) * len(idx)
            seen += len(idx)
        if seen == 0:
            break
        acc = valid_accuracy()
        history.append({"epoch": epoch, "train_loss": total / seen, "valid_accuracy": acc})
        if acc > best_acc:
            best_acc, best_epoch, best_W = acc, epoch, full().detach().clone()
    return HeadFit(W=best_W, best_epoch=best_epoch, best_valid_accuracy=best_acc, history=history,
                   final_W=full().detach().clone())  # fmt: skip
