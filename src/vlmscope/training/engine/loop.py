"""The one training loop every gradient trainer runs (projector, LoRA, CLIP, default).

A trainer supplies a :class:`LoopSpec` (the model with ``requires_grad`` set
on exactly what should train, a batch builder and a loss); the loop owns the
rest: ``accelerate`` (single process, DDP, DeepSpeed), AdamW, the cosine
schedule with warm-up, bf16 autocast on GPU, deterministic batch order,
checkpoints every N steps with resume after a kill, keep-best on validation,
dvclive curves and a rich progress bar.

Determinism: the batch of step ``s`` is a pure function of ``(seed, s)``
(:func:`vlmscope.training.engine.schedule.batch_indices`) and every checkpoint
stores each rank's RNG state, so a run killed after checkpoint ``s`` and
resumed ends with the weights of the uninterrupted run.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from vlmscope.errors import TrainingError
from vlmscope.training.config import LoopConfig
from vlmscope.training.engine import checkpoint as ckpt
from vlmscope.training.engine.schedule import batch_indices, cosine_with_warmup, warmup_steps
from vlmscope.training.engine.tracking import Tracker

__all__ = [
    "adamw",
    "LoopResult",
    "LoopSpec",
    "StepInfo",
    "finish_run_dir",
    "make_accelerator",
    "move_to",
    "params_fingerprint",
    "progress_bar",
    "run_loop",
    "trainable_state",
]


@dataclass(frozen=True)
class StepInfo:
    """What callbacks see after every optimizer step."""

    step: int
    """Optimizer steps completed (1-based)."""
    total_steps: int
    loss: float
    """This step's loss, averaged over ranks."""
    lr: float
    run_dir: Path
    is_main: bool


@dataclass
class LoopSpec:
    """What a trainer hands to :func:`run_loop`."""

    model: nn.Module
    """Parameters with ``requires_grad=True`` are trained; all others stay frozen."""
    n_examples: int
    make_batch: Callable[[np.ndarray], Any]
    """(b,) example indices -> a batch on CPU (anything with ``.to(device)`` or a dict of tensors)."""
    loss_fn: Callable[[nn.Module, Any], torch.Tensor]
    """(model, batch) -> scalar loss."""
    evaluate: Callable[[nn.Module], dict[str, float]] | None = None
    """Validation metrics of the (unwrapped) model; run on the main process."""
    select: str | None = None
    """Metric name that picks the best checkpoint (``None``: keep the last weights)."""
    mode: Literal["max", "min"] = "max"
    sampler: Callable[[int, int], np.ndarray] | None = None
    """(step, global_batch) -> example indices of that step; default: seeded epoch permutations.
    Must be a pure function of its arguments so that resumed runs see the same batches."""
    fingerprint: str = ""
    """Identity of the config and inputs; a checkpoint made under another one is refused."""
    params: dict[str, Any] = field(default_factory=dict)
    """Logged to dvclive's params.yaml."""


@dataclass
class LoopResult:
    steps: int
    """Optimizer steps completed in total (including those before a resume)."""
    total_steps: int
    resumed_from: int | None
    stopped_early: bool
    """True when ``max_minutes`` ended the run before ``total_steps``."""
    seconds: float
    """Wall time of this process's run (not counting earlier runs that were resumed)."""
    losses: list[tuple[int, float]]
    """(step, mean loss over the logging window) as logged."""
    best: dict[str, Any] | None
    world_size: int
    rank_fingerprints: list[str]
    """SHA-256 of every rank's trainable weights at the end (all equal unless DDP broke)."""
    model: nn.Module
    """The unwrapped model, best weights loaded when keep-best was on."""

    def summary(self) -> dict[str, Any]:
        return {
            "steps": self.steps,
            "total_steps": self.total_steps,
            "resumed_from": self.resumed_from,
            "stopped_early": self.stopped_early,
            "seconds": round(self.seconds, 3),
            "world_size": self.world_size,
            "rank_fingerprints": self.rank_fingerprints,
            "ranks_identical": len(set(self.rank_fingerprints)) == 1,
            "best": self.best,
            "losses": [[s, round(v, 6)] for s, v in self.losses],
        }


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
    if hasattr(batch, "to") and not isinstance(batch, dict):
        return batch.to(device)
    if isinstance(batch, dict):
        return {k: move_to(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(move_to(v, device) for v in batch)
    return batch


def trainable_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """Trainable parameters by name (the model's own names, no DDP prefix)."""
    return {n: p for n, p in model.named_parameters() if p.requires_grad}


def params_fingerprint(tensors: dict[str, torch.Tensor]) -> str:
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


def progress_bar(enabled: bool, label: str = "train") -> Any:
    """The rich bar of the training stages (shown on a terminal only; gone when done)."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn(f"[bold]{label}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
        TimeRemainingColumn(), disable=not (enabled and sys.stderr.isatty()), transient=True,
    )


def _load_trainable(model: nn.Module, tensors: dict[str, torch.Tensor], where: str) -> None:
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


def _fill_deepspeed_auto(ds_cfg: dict[str, Any], cfg: LoopConfig, world: int, model: nn.Module) -> None:
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


def _zero_stage(acc: Any) -> int:
    plugin = acc.state.deepspeed_plugin
    return int(plugin.deepspeed_config.get("zero_optimization", {}).get("stage", 0)) if plugin is not None else 0


def _full_trainable(model: nn.Module, partitioned: bool) -> dict[str, torch.Tensor]:
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


def _unpartition_zero3(engine: Any) -> None:
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


def run_loop(
    spec: LoopSpec,
    cfg: LoopConfig,
    run_dir: str | os.PathLike[str],
    *,
    accelerator: Any = None,
    callbacks: Sequence[Callable[[StepInfo], None]] = (),
    progress: bool = True,
) -> LoopResult:
    """Train ``spec.model`` under ``cfg``; checkpoints and curves go to ``run_dir``."""
    from accelerate.utils import DistributedType, gather_object

    t0 = time.monotonic()
    acc = accelerator or make_accelerator(cfg)
    is_main, rank, world = acc.is_main_process, acc.process_index, acc.num_processes
    deepspeed = acc.distributed_type == DistributedType.DEEPSPEED
    partitioned = deepspeed and _zero_stage(acc) == 3  # ZeRO-3 shards parameters until _unpartition_zero3
    run_dir = Path(run_dir)
    ckpt_root = run_dir / "checkpoints"
    model = spec.model

    named = trainable_state(model)
    if not named:
        raise TrainingError("no trainable parameters selected: every parameter has requires_grad=False")
    if spec.n_examples < 1:
        raise TrainingError("no training examples: the training split is empty")
    total = cfg.total_steps(spec.n_examples, world)
    warm = warmup_steps(total, cfg.warmup_ratio)
    optimizer = adamw(list(named.values()), lr=cfg.lr, weight_decay=cfg.weight_decay, beta2=cfg.adam_beta2)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: cosine_with_warmup(s, total, warm, cfg.min_lr_ratio)
    )

    # -- resume ---------------------------------------------------------------
    if is_main:
        ckpt_root.mkdir(parents=True, exist_ok=True)
        ckpt.clean_partial(ckpt_root)
    acc.wait_for_everyone()
    start, resumed_from, prior_seconds, rng_state = 0, None, 0.0, None
    best: dict[str, Any] | None = None
    last = ckpt.last_checkpoint(ckpt_root) if cfg.resume else None
    if last is not None:
        meta = json.loads((last.path / ckpt.STATE).read_text())
        if meta.get("fingerprint") != spec.fingerprint:
            raise TrainingError(
                f"{last.path}: checkpoint was made with another config or input "
                f"({meta.get('fingerprint', '?')[:12]} vs {spec.fingerprint[:12]}); "
                f"delete {run_dir} or pass --no-resume"
            )
        if meta.get("world_size", world) != world:
            raise TrainingError(
                f"{last.path}: checkpoint was made with {meta.get('world_size')} processes, "
                f"this run has {world}; relaunch with the same number or pass --no-resume"
            )
        if not deepspeed:
            loaded = ckpt.load_checkpoint(last)
            _load_trainable(model, loaded.trainable, str(last.path))
            optimizer.load_state_dict(loaded.optimizer)
            scheduler.load_state_dict(loaded.scheduler)
            rng_state = loaded.rng[rank] if rank < len(loaded.rng) else None
        start, resumed_from = last.step, last.step
        prior_seconds = float(meta.get("seconds", 0.0))
        best = meta.get("best")

    if deepspeed:
        _fill_deepspeed_auto(acc.state.deepspeed_plugin.deepspeed_config, cfg, world, model)
    model, optimizer = acc.prepare(model, optimizer)
    if deepspeed and last is not None:
        acc.load_state(str(last.path / "accelerate"))
    if rng_state is not None:
        ckpt.restore_rng(rng_state)

    tracker = Tracker(run_dir / "dvclive", enabled=is_main, resume_step=resumed_from)
    tracker.log_params({"total_steps": total, "world_size": world, **spec.params})
    device = acc.device
    bs, accum = cfg.batch_size, cfg.grad_accum
    global_batch = bs * accum * world

    def save(step: int) -> None:
        meta = {
            "fingerprint": spec.fingerprint, "world_size": world, "total_steps": total,
            "seconds": prior_seconds + time.monotonic() - t0, "best": best,
        }
        if deepspeed:
            tmp = ckpt_root / f".{ckpt.checkpoint_name(step)}.tmp-ds"
            acc.save_state(str(tmp / "accelerate"))
            acc.wait_for_everyone()
            if is_main:
                (tmp / ckpt.STATE).write_text(json.dumps({"step": step, **meta}, indent=2, default=str))
                os.replace(tmp, ckpt_root / ckpt.checkpoint_name(step))
        else:
            rngs = gather_object([ckpt.capture_rng()]) if world > 1 else [ckpt.capture_rng()]
            if is_main:
                ckpt.save_checkpoint(
                    ckpt_root, step, trainable=trainable_state(acc.unwrap_model(model)),
                    optimizer=optimizer.state_dict(), scheduler=scheduler.state_dict(), rng=rngs, meta=meta,
                )
        if is_main:
            ckpt.prune_checkpoints(ckpt_root, cfg.keep_checkpoints)
        acc.wait_for_everyone()

    def validate(step: int) -> None:
        nonlocal best
        if spec.evaluate is None:
            return
        # a ZeRO-3 forward all-gathers the weights, so every rank evaluates (same rows, same metrics)
        if is_main or partitioned:
            inner = acc.unwrap_model(model)
            was_training = inner.training
            inner.eval()
            with torch.no_grad():
                metrics = spec.evaluate(inner)
            inner.train(was_training)
            if is_main:
                tracker.log(step, {f"valid/{k}": v for k, v in metrics.items()})
            if spec.select is not None:
                if spec.select not in metrics:
                    raise TrainingError(f"validation returned no {spec.select!r} (got {sorted(metrics)})")
                value = float(metrics[spec.select])
                better = best is None or (value > best["value"] if spec.mode == "max" else value < best["value"])
                if better:
                    best = {"step": step, "metric": spec.select, "value": value, "metrics": metrics}
                    tensors = _full_trainable(inner, partitioned)
                    if is_main:
                        ckpt.save_best(run_dir, tensors, best)
        acc.wait_for_everyone()
        best = gather_object([best])[0] if world > 1 else best

    model.train()
    losses: list[tuple[int, float]] = []
    window: list[float] = []
    stopped_early = False
    step = start
    with progress_bar(progress and is_main) as bar:
        task = bar.add_task("train", total=total, completed=start, info="")
        while step < total:
            if spec.sampler is not None:
                idx = np.asarray(spec.sampler(step, global_batch), dtype=np.int64)
            else:
                idx = batch_indices(step, global_batch, spec.n_examples, cfg.seed)
            step_loss = torch.zeros((), device=device)
            for k in range(accum):
                lo = (k * world + rank) * bs
                batch = move_to(spec.make_batch(idx[lo : lo + bs]), device)
                # the DeepSpeed engine accumulates itself (ZeRO-2/3 refuse no_sync)
                ctx = acc.no_sync(model) if k < accum - 1 and not deepspeed else contextlib.nullcontext()
                with ctx, acc.autocast():
                    loss = spec.loss_fn(model, batch)
                    if not deepspeed:  # the DeepSpeed engine scales by its own accumulation count
                        loss = loss / accum
                if not torch.isfinite(loss):
                    raise TrainingError(f"loss is {loss.item()} at step {step + 1}; lower --lr")
                if deepspeed:
                    _deepspeed_backward(model, loss)
                else:
                    acc.backward(loss)
                step_loss += loss.detach() / (accum if deepspeed else 1)
            if cfg.max_grad_norm is not None and acc.sync_gradients and not deepspeed:
                acc.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            mean_loss = float(acc.reduce(step_loss, reduction="mean")) if world > 1 else float(step_loss)
            window.append(mean_loss)
            lr = scheduler.get_last_lr()[0]
            if step % cfg.log_every == 0 or step == total or step == start + 1:
                avg = float(np.mean(window))
                losses.append((step, avg))
                tracker.log(step, {"train/loss": avg, "train/lr": lr})
                window = []
            bar.update(task, completed=step, info=f"loss {mean_loss:.4f}")
            if cfg.eval_every and step % cfg.eval_every == 0 and step < total:
                validate(step)
            if cfg.checkpoint_every and step % cfg.checkpoint_every == 0 and step < total:
                save(step)
            info = StepInfo(step, total, mean_loss, lr, run_dir, is_main)
            for cb in callbacks:
                cb(info)
            if cfg.max_minutes is not None and step < total:
                over = torch.tensor(
                    float(prior_seconds + time.monotonic() - t0 > cfg.max_minutes * 60), device=device
                )
                if float(acc.reduce(over, reduction="sum")) > 0:
                    stopped_early = True
                    save(step)
                    break
    if partitioned:
        _unpartition_zero3(model)
        partitioned = False
    validate(step)
    acc.wait_for_everyone()
    inner = acc.unwrap_model(model)
    if spec.select is not None and best is not None:
        loaded_best = ckpt.load_best(run_dir)
        if loaded_best is not None:
            _load_trainable(inner, loaded_best[0], str(run_dir / "best"))
    fp = params_fingerprint(trainable_state(inner))
    fps = gather_object([fp]) if world > 1 else [fp]
    tracker.close()
    return LoopResult(
        steps=step, total_steps=total, resumed_from=resumed_from, stopped_early=stopped_early,
        seconds=time.monotonic() - t0, losses=losses, best=best, world_size=world,
        rank_fingerprints=list(fps), model=inner,
    )


def _deepspeed_backward(engine: Any, loss: torch.Tensor) -> None:
    """Backward and step through the engine, which steps the optimizer every ``grad_accum`` micro-batches.

    ``accelerator.backward`` would mark every micro-batch as an accumulation
    boundary (this loop does not use ``accelerator.accumulate``), stepping
    the optimizer ``grad_accum`` times per step.
    """
    engine.backward(loss)
    engine.step()


def finish_run_dir(run_dir: Path, cfg: LoopConfig, is_main: bool) -> None:
    """Delete the checkpoints of a finished run unless ``keep_run_dir``."""
    if is_main and not cfg.keep_run_dir:
        shutil.rmtree(run_dir, ignore_errors=True)

