"""Learning-rate schedule and the deterministic example order.

Both are pure functions of the step number, so a run resumed from a
checkpoint at step ``s`` sees exactly the learning rates and batches the
uninterrupted run would have seen from step ``s`` on.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["batch_indices", "cosine_with_warmup", "warmup_steps"]


def warmup_steps(total_steps: int, warmup_ratio: float) -> int:
    """Number of warm-up steps: ``ceil(total * ratio)``, as HF's Trainer counts them."""
    return math.ceil(total_steps * warmup_ratio)


def cosine_with_warmup(step: int, total_steps: int, warmup: int, min_ratio: float = 0.0) -> float:
    """LR multiplier at optimizer step ``step`` (0-based) in [min_ratio, 1].

    Linear ramp ``(step + 1) / (warmup + 1)`` for the first ``warmup`` steps
    (never exactly zero, so step 0 already moves the weights), then a half
    cosine from 1 down to ``min_ratio`` at ``total_steps``.
    """
    if warmup > 0 and step < warmup:
        return (step + 1) / (warmup + 1)
    span = max(1, total_steps - warmup)
    progress = min(1.0, (step - warmup) / span)
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def batch_indices(step: int, global_batch: int, n_examples: int, seed: int) -> np.ndarray:
    """Example indices of optimizer step ``step``: (global_batch,) int64.

    The stream is the concatenation of per-epoch permutations
    ``default_rng([seed, epoch]).permutation(n)``; step ``s`` takes positions
    ``[s * G, (s + 1) * G)`` of it, wrapping into the next epoch when needed.
    """
    if n_examples < 1:
        raise ValueError("batch_indices: n_examples must be >= 1")
    start = step * global_batch
    out = np.empty(global_batch, dtype=np.int64)
    filled = 0
    while filled < global_batch:
        pos = start + filled
        epoch, offset = divmod(pos, n_examples)
        perm = np.random.default_rng([seed, epoch]).permutation(n_examples)
        take = min(global_batch - filled, n_examples - offset)
        out[filled : filled + take] = perm[offset : offset + take]
        filled += take
    return out
