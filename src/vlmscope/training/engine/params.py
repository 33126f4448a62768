"""What trains: the trainable tensors by name, their fingerprint, loading them back, their optimizer.

The loop, its checkpoints and the trainers' exports all name the trainable
weights the same way (the model's own names, no DDP prefix), through here.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import torch
from torch import nn

from vlmscope.errors import TrainingError

__all__ = ["adamw", "load_trainable", "params_fingerprint", "trainable_state"]


def trainable_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """Trainable parameters by name (the model's own names, no DDP prefix)."""
    return {n: p for n, p in model.named_parameters() if p.requires_grad}


def params_fingerprint(tensors: dict[str, torch.Tensor]) -> str:
    """SHA-256 of the tensors in name order (float32 bytes): equal weights, equal fingerprint."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        h.update(name.encode())
        h.update(tensors[name].detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return h.hexdigest()


def adamw(params: Sequence[nn.Parameter], *, lr: float, weight_decay: float, beta2: float) -> torch.optim.Optimizer:
    """AdamW with decoupled weight decay on matrices only (never on biases and norm weights)."""
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    groups = [g for g in ({"params": decay, "weight_decay": weight_decay},
                          {"params": no_decay, "weight_decay": 0.0}) if g["params"]]
    return torch.optim.AdamW(groups, lr=lr, betas=(0.9, beta2))


def load_trainable(model: nn.Module, tensors: dict[str, torch.Tensor], where: str) -> None:
    """Copy ``tensors`` into the trainable parameters; refuses a set that does not match them by name."""
    named = trainable_state(model)
    missing = sorted(set(named) - set(tensors))
    extra = sorted(set(tensors) - set(named))
    if missing or extra:
        raise TrainingError(
            f"{where}: trainable tensors do not match the model (missing {missing[:3]}, unexpected {extra[:3]}); "
            "the checkpoint belongs to another setup: delete it or pass --no-resume"
        )
    with torch.no_grad():
        for n, p in named.items():
            p.copy_(tensors[n].to(p.dtype))
