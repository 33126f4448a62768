"""Where the loop runs: the accelerator (one process, DDP, DeepSpeed) and what DeepSpeed needs done by hand.

``accelerate`` covers most of it; the rest is DeepSpeed's: ``"auto"`` config
values this DataLoader-less loop must fill, ZeRO-3's partitioned weights
(gathered for checkpoints and undone after training) and the engine's own
backward-and-step.
"""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import nn

from vlmscope.training.config import LoopConfig
from vlmscope.training.engine.params import trainable_state

__all__ = [
    "deepspeed_backward",
    "fill_deepspeed_auto",
    "full_trainable",
    "make_accelerator",
    "move_to",
    "unpartition_zero3",
    "zero_stage",
]


def make_accelerator(cfg: LoopConfig) -> Any:
    """An ``accelerate.Accelerator`` honouring ``mixed_precision`` (bf16 autocast on GPU only)."""
    from accelerate import Accelerator

    mp = cfg.mixed_precision
    if mp == "auto":
        mp = "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"
    if mp != "no" and not torch.cuda.is_available():
        mp = "no"  # fp32 on CPU: bf16 CPU autocast is slow and changes the numerics
    if _deepspeed_launch() and not torch.cuda.is_available():
        return _cpu_deepspeed_accelerator(mp)
    # cpu=True on a GPU-less machine lets torchrun-launched processes form a gloo DDP group
    return Accelerator(mixed_precision=mp, step_scheduler_with_optimizer=False, cpu=not torch.cuda.is_available())


def _deepspeed_launch() -> bool:
    """True under ``accelerate launch`` with a DeepSpeed config (it exports these variables)."""
    env = os.environ
    return env.get("ACCELERATE_USE_DEEPSPEED", "false").lower() == "true" and (
        env.get("ACCELERATE_USE_CPU", "false").lower() not in ("true", "1", "yes")
    )


def _cpu_deepspeed_accelerator(mixed_precision: str) -> Any:
    """A DeepSpeed accelerator on a GPU-less machine (DeepSpeed's CPU accelerator, gloo).

    ``cpu=True`` would switch DeepSpeed off in accelerate, and without it
    accelerate finds no backend on CPU and falls back to one process; naming
    gloo explicitly gives DeepSpeed its process group. Used by the CPU tests
    of the ZeRO paths (``DS_ACCELERATOR=cpu``).
    """
    from accelerate import Accelerator
    from accelerate.utils import InitProcessGroupKwargs

    return Accelerator(
        mixed_precision=mixed_precision, step_scheduler_with_optimizer=False,
        kwargs_handlers=[InitProcessGroupKwargs(backend="gloo")],
    )  # fmt: skip


def move_to(batch: Any, device: torch.device) -> Any:
    """``batch`` on ``device``: anything with ``.to``, or dicts / lists / tuples of such."""
    if hasattr(batch, "to") and not isinstance(batch, dict):
        return batch.to(device)
    if isinstance(batch, dict):
        return {k: move_to(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(move_to(v, device) for v in batch)
    return batch


def fill_deepspeed_auto(ds_cfg: dict[str, Any], cfg: LoopConfig, world: int, model: nn.Module) -> None:
    """Resolve the DeepSpeed JSON's ``"auto"`` values that accelerate cannot infer here.

    Batch sizes come from a DataLoader in accelerate, and this loop has none;
    the bucket sizes come from ``config.hidden_size``, which composite VLM
    configs keep on their text sub-config only.
    """
    ds_cfg["train_micro_batch_size_per_gpu"] = cfg.batch_size
    ds_cfg["gradient_accumulation_steps"] = cfg.grad_accum
    ds_cfg["train_batch_size"] = cfg.batch_size * cfg.grad_accum * world
    ds_cfg["gradient_clipping"] = cfg.max_grad_norm or 0.0
    zero = ds_cfg.get("zero_optimization", {})
    hidden = _hidden_size(model)
    if hidden is None:
        return  # accelerate fills them itself or names the missing value
    sizes = {
        "reduce_bucket_size": hidden * hidden,
        "stage3_prefetch_bucket_size": int(0.9 * hidden * hidden),
        "stage3_param_persistence_threshold": 10 * hidden,
    }  # accelerate's own formulas
    for key, value in sizes.items():
        if zero.get(key) == "auto":
            zero[key] = value


def _hidden_size(model: nn.Module) -> int | None:
    """The LM's hidden size from a transformers config (top level or its text sub-config)."""
    config = getattr(model, "config", None)
    if config is None:
        return None
    size = getattr(config, "hidden_size", None)
    if size is None and hasattr(config, "get_text_config"):
        size = getattr(config.get_text_config(), "hidden_size", None)
    return int(size) if size is not None else None


def zero_stage(acc: Any) -> int:
    """The DeepSpeed ZeRO stage of ``acc`` (0 without DeepSpeed)."""
    plugin = acc.state.deepspeed_plugin
    return int(plugin.deepspeed_config.get("zero_optimization", {}).get("stage", 0)) if plugin is not None else 0


def full_trainable(model: nn.Module, partitioned: bool) -> dict[str, torch.Tensor]:
    """Trainable tensors with their full values; a collective on every rank when ``partitioned`` (ZeRO-3).

    Under ZeRO-3 each parameter holds an empty placeholder outside a
    forward; it is gathered one tensor at a time so no rank holds more than
    the trainable weights plus one tensor.
    """
    named = trainable_state(model)
    if not partitioned:
        return named
    import deepspeed

    out = {}
    for name, p in named.items():
        with deepspeed.zero.GatheredParameters([p], modifier_rank=None):
            out[name] = p.detach().clone()
    return out


def unpartition_zero3(engine: Any) -> None:
    """Turn a ZeRO-3 model back into a plain module with full weights on every rank (a collective).

    After the loop the trainers use the model on the main process only
    (``save_pretrained``, the projector export, the LoRA merge, evaluation):
    with ZeRO-3's partitions those would read empty tensors, and a forward
    would hang in an all-gather the other ranks never join. So every rank
    gathers each parameter (one at a time), the engine's hooks are removed
    and the full tensors become the parameters' data. Costs one full copy
    of the model per rank, as DDP would; the optimizer state is released
    with the engine.
    """
    import deepspeed
    from deepspeed.runtime.zero.partition_parameters import ZeroParamStatus

    module = engine.module
    params = list(module.parameters())
    full = []
    for p in params:
        with deepspeed.zero.GatheredParameters([p], modifier_rank=None):
            full.append(p.data.detach().clone())
    engine.destroy()  # removes the hooks that would re-partition / all-gather on every forward
    for p, t in zip(params, full):
        p.data = t
        p.ds_status = ZeroParamStatus.AVAILABLE  # true now; NOT_AVAILABLE makes attribute access all-gather
    for m in module.modules():  # DeepSpeed swapped in a dict that all-gathers on access; put the original back
        original = m.__dict__.pop("_original_parameters", None)
        if original is not None:
            m._parameters = original


def deepspeed_backward(engine: Any, loss: torch.Tensor) -> None:
    """Backward and step through the engine, which steps the optimizer every ``grad_accum`` micro-batches.

    ``accelerator.backward`` would mark every micro-batch as an accumulation
    boundary (this loop does not use ``accelerator.accumulate``), stepping
    the optimizer ``grad_accum`` times per step.
    """
    engine.backward(loss)
    engine.step()
