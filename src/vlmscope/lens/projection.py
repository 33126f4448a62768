"""The numerics of the lens: final norm, unembedding, top-k and target ranks (pure torch, no I/O).

Shapes: N samples in a chunk, D hidden size, V vocabulary, K top-k, U neurons.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vlmscope.errors import ModelError

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from vlmscope.lens.weights import FinalNorm

__all__ = ["apply_final_norm", "unembed", "top_tokens", "target_rank_prob"]

NORM_KINDS = ("rms", "rms_plus_one", "layer")


def apply_final_norm(h: torch.Tensor, norm: FinalNorm) -> torch.Tensor:
    """(N, D) -> (N, D): the LM's final norm, computed in float32 like transformers does.

    ``rms``: ``w * x / sqrt(mean(x^2) + eps)`` (Llama, Qwen, Mistral);
    ``rms_plus_one``: the same with ``(1 + w)`` (Gemma, Gemma 2);
    ``layer``: LayerNorm ``(x - mean) / sqrt(var + eps) * w + b``.
    """
    import torch

    x = h.to(torch.float32)
    if norm.kind in ("rms", "rms_plus_one"):
        y = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + norm.eps)
        w = norm.weight + 1.0 if norm.kind == "rms_plus_one" else norm.weight
        y = y * w
    elif norm.kind == "layer":
        y = torch.nn.functional.layer_norm(x, (x.shape[-1],), norm.weight, norm.bias, norm.eps)
        return y
    else:
        raise ModelError(f"unknown final-norm kind {norm.kind!r}; known: {', '.join(NORM_KINDS)}")
    if norm.bias is not None:
        y = y + norm.bias
    return y


def unembed(h: torch.Tensor, weight: torch.Tensor, softcap: float | None = None) -> torch.Tensor:
    """(N, D) @ (V, D)^T -> (N, V) logits; Gemma 2's soft cap ``c * tanh(z / c)`` when ``softcap`` is set."""
    import torch

    logits = h @ weight.T
    if softcap:
        logits = torch.tanh(logits / softcap) * softcap
    return logits


def top_tokens(logits: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, V) logits -> ((N, K) token ids, (N, K) probabilities), most likely first."""
    import torch

    logp = torch.log_softmax(logits.to(torch.float32), dim=-1)
    vals, ids = logp.topk(min(k, logits.shape[-1]), dim=-1)
    return ids, vals.exp()


def target_rank_prob(logits: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, V) logits, (N,) target ids -> ((N,) 1-based rank, (N,) probability) of each target.

    Rank = 1 + the number of tokens with a strictly larger logit, so ties
    share the better rank and rank 1 means "the target is a top-1 token".
    """
    import torch

    logits = logits.to(torch.float32)
    t = logits.gather(1, target.view(-1, 1))  # (N, 1)
    rank = (logits > t).sum(1) + 1
    prob = (t.squeeze(1) - torch.logsumexp(logits, dim=-1)).exp()
    return rank, prob
