"""The one training loop every gradient trainer runs (projector, LoRA, CLIP, default).

A trainer supplies a :class:`LoopSpec` (the model with ``requires_grad`` set
on exactly what should train, a batch builder and a loss); the loop owns the
rest: ``accelerate`` (single process, DDP, DeepSpeed), AdamW, the cosine
schedule with warm-up, bf16 autocast on GPU, deterministic batch order,
checkpoints every N steps with resume after a kill, keep-best on validation,
dvclive curves and a rich progress bar.

:func:`run_loop` is its phases in order, each a small function over one
:class:`_Run` (the state they share): :func:`_setup` (accelerator, optimizer,
schedule), :func:`_resume` (the last checkpoint, if it belongs to this run),
:func:`_prepare` (hand the model to accelerate, restore RNG, open tracking),
:func:`_train` (steps: :func:`_step` for one optimizer step, :func:`_validate`
and :func:`_save` on their schedules) and :func:`_finish` (keep-best, rank
fingerprints, the result). Accelerator and DeepSpeed details live in
:mod:`~vlmscope.training.engine.distributed`, the trainable tensors in
:mod:`~vlmscope.training.engine.params`.

Determinism: the batch of step ``s`` is a pure function of ``(seed, s)``
(:func:`vlmscope.training.engine.schedule.batch_indices`) and every checkpoint
stores each rank's RNG state, so a run killed after checkpoint ``s`` and
resumed ends with the weights of the uninterrupted run.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from vlmscope.errors import TrainingError
from vlmscope.io.jsonfile import write_json
from vlmscope.training.config import LoopConfig
from vlmscope.training.engine import checkpoint as ckpt
from vlmscope.training.engine.distributed import (
    deepspeed_backward,
    fill_deepspeed_auto,
    full_trainable,
    make_accelerator,
    move_to,
    unpartition_zero3,
    zero_stage,
)
from vlmscope.training.engine.params import adamw, load_trainable, params_fingerprint, trainable_state
from vlmscope.training.engine.schedule import batch_indices, cosine_with_warmup, warmup_steps
from vlmscope.training.engine.tracking import Tracker

__all__ = [
    "LoopResult",
    "LoopSpec",
    "StepInfo",
    "finish_run_dir",
    "progress_bar",
    "run_loop",
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
        """``train_state.json``: every field but the model (seconds and losses rounded), and whether the ranks agree."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "model"}
        out.update(seconds=round(self.seconds, 3), losses=[[s, round(v, 6)] for s, v in self.losses],
                   ranks_identical=len(set(self.rank_fingerprints)) == 1)  # fmt: skip
        return out


def progress_bar(enabled: bool) -> Any:
    """The training stages' bar: vlmscope's one bar with a running-loss column (terminal only)."""
    from vlmscope.io.progress import progress_bar as bar

    return bar(enabled=None if enabled else False, info=True)


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
    run = _setup(spec, cfg, Path(run_dir), accelerator)
    last, rng_state = _resume(run)
    _prepare(run, last, rng_state)
    _train(run, callbacks, progress and run.is_main)
    return _finish(run)


@dataclass
class _Run:
    """The state :func:`run_loop`'s phases share (one call, one instance)."""

    spec: LoopSpec
    cfg: LoopConfig
    run_dir: Path
    acc: Any
    model: nn.Module
    """``spec.model`` until :func:`_prepare`, then what accelerate wrapped it in."""
    optimizer: Any
    scheduler: Any
    total: int
    t0: float
    deepspeed: bool
    partitioned: bool
    """ZeRO-3 shards the parameters until :func:`unpartition_zero3` undoes it."""
    start: int = 0
    resumed_from: int | None = None
    prior_seconds: float = 0.0
    """Wall time of the runs this one resumed."""
    best: dict[str, Any] | None = None
    tracker: Any = None
    step: int = 0
    losses: list[tuple[int, float]] = field(default_factory=list)
    window: list[float] = field(default_factory=list)
    stopped_early: bool = False

    @property
    def is_main(self) -> bool:
        return bool(self.acc.is_main_process)

    @property
    def rank(self) -> int:
        return int(self.acc.process_index)

    @property
    def world(self) -> int:
        return int(self.acc.num_processes)

    @property
    def ckpt_root(self) -> Path:
        return self.run_dir / "checkpoints"

    def seconds(self) -> float:
        """Wall time of the whole run, resumed parts included."""
        return self.prior_seconds + time.monotonic() - self.t0


def _setup(spec: LoopSpec, cfg: LoopConfig, run_dir: Path, accelerator: Any) -> _Run:
    """Accelerator, checks, AdamW and the cosine schedule; nothing on disk yet."""
    from accelerate.utils import DistributedType

    t0 = time.monotonic()
    acc = accelerator or make_accelerator(cfg)
    deepspeed = acc.distributed_type == DistributedType.DEEPSPEED
    named = trainable_state(spec.model)
    if not named:
        raise TrainingError("no trainable parameters selected: every parameter has requires_grad=False")
    if spec.n_examples < 1:
        raise TrainingError("no training examples: the training split is empty")
    total = cfg.total_steps(spec.n_examples, acc.num_processes)
    warm = warmup_steps(total, cfg.warmup_ratio)
    optimizer = adamw(list(named.values()), lr=cfg.lr, weight_decay=cfg.weight_decay, beta2=cfg.adam_beta2)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: cosine_with_warmup(s, total, warm, cfg.min_lr_ratio)
    )
    return _Run(
        spec=spec, cfg=cfg, run_dir=run_dir, acc=acc, model=spec.model, optimizer=optimizer, scheduler=scheduler,
        total=total, t0=t0, deepspeed=deepspeed, partitioned=deepspeed and zero_stage(acc) == 3,
    )  # fmt: skip


def _resume(run: _Run) -> tuple[ckpt.CheckpointInfo | None, Any]:
    """Load the last usable checkpoint when it belongs to this run; ``(checkpoint or None, this rank's RNG state)``.

    A checkpoint made under another fingerprint or world size is refused, not
    silently mixed in. A corrupt one (a file truncated, altered or missing)
    is skipped with a warning naming it, and the previous complete one is
    used; if none is left the run stops with the first problem rather than
    silently starting afresh. Under DeepSpeed only the bookkeeping and the
    file checksums are read here; the engine's state is loaded after
    :func:`_prepare` wraps the model.
    """
    if run.is_main:
        run.ckpt_root.mkdir(parents=True, exist_ok=True)
        ckpt.clean_partial(run.ckpt_root)
    run.acc.wait_for_everyone()
    found = ckpt.list_checkpoints(run.ckpt_root) if run.cfg.resume else []
    corrupt: list[ckpt.CorruptCheckpoint] = []
    for last in reversed(found):
        try:
            meta, loaded = _load_usable(run, last)
        except ckpt.CorruptCheckpoint as e:
            corrupt.append(e)
            if run.is_main:
                warnings.warn(f"{e}; skipping checkpoint {last.path.name}, trying the one before it", stacklevel=2)
            continue
        if corrupt and run.is_main:
            warnings.warn(f"resuming from {last.path} (the newer checkpoints are corrupt, see above)", stacklevel=2)
        break
    else:
        if corrupt:
            raise TrainingError(
                f"{corrupt[0]}; no complete checkpoint left in {run.ckpt_root} to fall back to: "
                "pass --no-resume to start afresh"
            )
        return None, None
    rng_state = None
    if loaded is not None:
        load_trainable(run.model, loaded.trainable, str(last.path))
        run.optimizer.load_state_dict(loaded.optimizer)
        run.scheduler.load_state_dict(loaded.scheduler)
        rng_state = loaded.rng[run.rank] if run.rank < len(loaded.rng) else None
    run.start = run.resumed_from = run.step = last.step
    run.prior_seconds = float(meta.get("seconds", 0.0))
    run.best = meta.get("best")
    return last, rng_state


def _load_usable(run: _Run, last: ckpt.CheckpointInfo) -> tuple[dict[str, Any], ckpt.LoadedCheckpoint | None]:
    """``(state.json, the loaded checkpoint or None under DeepSpeed)``; :class:`ckpt.CorruptCheckpoint` if damaged."""
    meta = ckpt.read_state(last)
    fingerprint = run.spec.fingerprint
    if meta.get("fingerprint") != fingerprint:
        raise TrainingError(
            f"{last.path}: checkpoint was made with another config or input "
            f"({str(meta.get('fingerprint', '?'))[:12]} vs {fingerprint[:12]}); "
            f"delete {run.run_dir} or pass --no-resume"
        )
    if meta.get("world_size", run.world) != run.world:
        raise TrainingError(
            f"{last.path}: checkpoint was made with {meta.get('world_size')} processes, "
            f"this run has {run.world}; relaunch with the same number or pass --no-resume"
        )
    if run.deepspeed:
        ckpt.verify_files(last, meta)
        return meta, None
    return meta, ckpt.load_checkpoint(last)


def _prepare(run: _Run, last: ckpt.CheckpointInfo | None, rng_state: Any) -> None:
    """Hand model and optimizer to accelerate, restore the engine / RNG state, open dvclive."""
    acc = run.acc
    if run.deepspeed:
        fill_deepspeed_auto(acc.state.deepspeed_plugin.deepspeed_config, run.cfg, run.world, run.model)
    run.model, run.optimizer = acc.prepare(run.model, run.optimizer)
    if run.deepspeed and last is not None:
        acc.load_state(str(last.path / "accelerate"))
    if rng_state is not None:
        ckpt.restore_rng(rng_state)
    run.tracker = Tracker(run.run_dir / "dvclive", enabled=run.is_main, resume_step=run.resumed_from)
    run.tracker.log_params({"total_steps": run.total, "world_size": run.world, **run.spec.params})


def _train(run: _Run, callbacks: Sequence[Callable[[StepInfo], None]], progress: bool) -> None:
    """Optimizer steps from ``run.start`` to the total (or until ``max_minutes``), with validation and checkpoints."""
    cfg, total = run.cfg, run.total
    run.model.train()
    with progress_bar(progress) as bar:
        task = bar.add_task("[bold]train", total=total, completed=run.start, info="")
        while run.step < total:
            mean_loss = _step(run)
            step = run.step
            lr = run.scheduler.get_last_lr()[0]
            _log_loss(run, mean_loss, lr)
            bar.update(task, completed=step, info=f"loss {mean_loss:.4f}")
            if cfg.eval_every and step % cfg.eval_every == 0 and step < total:
                _validate(run, step)
            if cfg.checkpoint_every and step % cfg.checkpoint_every == 0 and step < total:
                _save(run, step)
            info = StepInfo(step, total, mean_loss, lr, run.run_dir, run.is_main)
            for cb in callbacks:
                cb(info)
            if cfg.max_minutes is not None and step < total and _out_of_time(run):
                run.stopped_early = True
                _save(run, step)
                break


def _step(run: _Run) -> float:
    """One optimizer step over ``grad_accum`` micro-batches per rank; returns its loss averaged over ranks.

    The step's examples are a pure function of ``(seed, step)`` (or of the
    spec's sampler); rank ``r`` takes its slices of them.
    """
    spec, cfg, acc, model = run.spec, run.cfg, run.acc, run.model
    bs, accum, world, deepspeed = cfg.batch_size, cfg.grad_accum, run.world, run.deepspeed
    global_batch = bs * accum * world
    if spec.sampler is not None:
        idx = np.asarray(spec.sampler(run.step, global_batch), dtype=np.int64)
    else:
        idx = batch_indices(run.step, global_batch, spec.n_examples, cfg.seed)
    step_loss = torch.zeros((), device=acc.device)
    for k in range(accum):
        lo = (k * world + run.rank) * bs
        batch = move_to(spec.make_batch(idx[lo : lo + bs]), acc.device)
        # the DeepSpeed engine accumulates itself (ZeRO-2/3 refuse no_sync)
        ctx = acc.no_sync(model) if k < accum - 1 and not deepspeed else contextlib.nullcontext()
        with ctx, acc.autocast():
            loss = spec.loss_fn(model, batch)
            if not deepspeed:  # the DeepSpeed engine scales by its own accumulation count
                loss = loss / accum
        if not torch.isfinite(loss):
            raise TrainingError(f"loss is {loss.item()} at step {run.step + 1}; lower --lr")
        if deepspeed:
            deepspeed_backward(model, loss)
        else:
            acc.backward(loss)
        step_loss += loss.detach() / (accum if deepspeed else 1)
    if cfg.max_grad_norm is not None and acc.sync_gradients and not deepspeed:
        acc.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
    run.optimizer.step()
    run.scheduler.step()
    run.optimizer.zero_grad(set_to_none=True)
    run.step += 1
    return float(acc.reduce(step_loss, reduction="mean")) if world > 1 else float(step_loss)


def _log_loss(run: _Run, mean_loss: float, lr: float) -> None:
    """Average the losses since the last log into one point every ``log_every`` steps (and the first and last)."""
    step = run.step
    run.window.append(mean_loss)
    if step % run.cfg.log_every == 0 or step == run.total or step == run.start + 1:
        avg = float(np.mean(run.window))
        run.losses.append((step, avg))
        run.tracker.log(step, {"train/loss": avg, "train/lr": lr})
        run.window = []


def _out_of_time(run: _Run) -> bool:
    """True on every rank once any rank is past ``max_minutes`` (so all stop at the same step)."""
    over = torch.tensor(float(run.seconds() > run.cfg.max_minutes * 60), device=run.acc.device)  # type: ignore[operator]
    return float(run.acc.reduce(over, reduction="sum")) > 0


def _save(run: _Run, step: int) -> None:
    """Checkpoint ``step`` (every rank's RNG state with it), then prune to ``keep_checkpoints``."""
    from accelerate.utils import gather_object

    acc, is_main, root = run.acc, run.is_main, run.ckpt_root
    meta = {
        "fingerprint": run.spec.fingerprint, "world_size": run.world, "total_steps": run.total,
        "seconds": run.seconds(), "best": run.best,
    }  # fmt: skip
    if run.deepspeed:
        tmp = root / f".{ckpt.checkpoint_name(step)}.tmp-ds"
        acc.save_state(str(tmp / "accelerate"))
        acc.wait_for_everyone()
        if is_main:
            files = ckpt.record_files(tmp)
            write_json(tmp / ckpt.STATE, {"step": step, **meta, ckpt.FILES: files}, sort_keys=False, default=str)
            os.replace(tmp, root / ckpt.checkpoint_name(step))
    else:
        rngs = gather_object([ckpt.capture_rng()]) if run.world > 1 else [ckpt.capture_rng()]
        if is_main:
            ckpt.save_checkpoint(
                root, step, trainable=trainable_state(acc.unwrap_model(run.model)),
                optimizer=run.optimizer.state_dict(), scheduler=run.scheduler.state_dict(), rng=rngs, meta=meta,
            )  # fmt: skip
    if is_main:
        ckpt.prune_checkpoints(root, run.cfg.keep_checkpoints)
    acc.wait_for_everyone()


def _validate(run: _Run, step: int) -> None:
    """Evaluate, log ``valid/*`` and keep the best weights by ``spec.select``; every rank ends with the same best."""
    from accelerate.utils import gather_object

    spec, acc, is_main = run.spec, run.acc, run.is_main
    if spec.evaluate is None:
        return
    # a ZeRO-3 forward all-gathers the weights, so every rank evaluates (same rows, same metrics)
    if is_main or run.partitioned:
        inner = acc.unwrap_model(run.model)
        was_training = inner.training
        inner.eval()
        with torch.no_grad():
            metrics = spec.evaluate(inner)
        inner.train(was_training)
        if is_main:
            run.tracker.log(step, {f"valid/{k}": v for k, v in metrics.items()})
        if spec.select is not None:
            _keep_if_best(run, step, inner, metrics)
    acc.wait_for_everyone()
    run.best = gather_object([run.best])[0] if run.world > 1 else run.best


def _keep_if_best(run: _Run, step: int, inner: nn.Module, metrics: dict[str, float]) -> None:
    """Record ``step`` as the best and write its trainable weights when ``spec.select`` improved."""
    spec, best = run.spec, run.best
    if spec.select not in metrics:
        raise TrainingError(f"validation returned no {spec.select!r} (got {sorted(metrics)})")
    value = float(metrics[spec.select])  # type: ignore[index]
    better = best is None or (value > best["value"] if spec.mode == "max" else value < best["value"])
    if better:
        run.best = {"step": step, "metric": spec.select, "value": value, "metrics": metrics}
        tensors = full_trainable(inner, run.partitioned)
        if run.is_main:
            ckpt.save_best(run.run_dir, tensors, run.best)


def _finish(run: _Run) -> LoopResult:
    """Final validation, the best weights loaded back (keep-best), every rank's weight fingerprint."""
    from accelerate.utils import gather_object

    acc = run.acc
    if run.partitioned:
        unpartition_zero3(run.model)
        run.partitioned = False
    _validate(run, run.step)
    acc.wait_for_everyone()
    inner = acc.unwrap_model(run.model)
    if run.spec.select is not None and run.best is not None:
        loaded_best = ckpt.load_best(run.run_dir)
        if loaded_best is not None:
            load_trainable(inner, loaded_best[0], str(run.run_dir / "best"))
    fp = params_fingerprint(trainable_state(inner))
    fps = gather_object([fp]) if run.world > 1 else [fp]
    run.tracker.close()
    return LoopResult(
        steps=run.step, total_steps=run.total, resumed_from=run.resumed_from, stopped_early=run.stopped_early,
        seconds=time.monotonic() - run.t0, losses=run.losses, best=run.best, world_size=run.world,
        rank_fingerprints=list(fps), model=inner,
    )


def finish_run_dir(run_dir: Path, cfg: LoopConfig, is_main: bool) -> None:
    """Delete the checkpoints of a finished run unless ``keep_run_dir``."""
    if is_main and not cfg.keep_run_dir:
        shutil.rmtree(run_dir, ignore_errors=True)

