"""The run the projector, LoRA and default-model trainers share, and the artifact it writes.

Each of those trainers is "load a generative VLM, pick what trains, run the
shared loop on the answer-span loss, write a checkpoint that loads like any
other". The differences (which parameters, peft wrapping, extra files) are
passed in; the run and its artifact live here once (the call's inputs:
:mod:`.invocation`; loading: :mod:`vlmscope.models.trained`; rows and
freezing: :mod:`.vlm_setup`; validation: :mod:`.vlm_eval`).

Artifact layout (``out/``): the full checkpoint as ``save_pretrained`` writes
it (safetensors + config + processor) plus the base's ``vlmscope.json``
sidecar (so the family is detected as before), ``training_args.json`` (the
validated config and inputs), ``metrics.json`` (flat numbers for ``dvc
metrics show``), ``train_state.json`` (steps, resume, rank fingerprints,
loss curve) and ``dvclive/``.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from vlmscope import __version__
from vlmscope.io.atomic import atomic_dir
from vlmscope.io.jsonfile import write_json
from vlmscope.models.adapter import ModelAdapter
from vlmscope.models.trained import save_model_files
from vlmscope.scoring.answer_span import answer_loss
from vlmscope.training.config import LoopConfig
from vlmscope.training.data import Example, ImageCache
from vlmscope.training.encoding import EncodedCache, collate
from vlmscope.training.engine.loop import LoopResult, LoopSpec, StepInfo, finish_run_dir, run_loop
from vlmscope.training.trainers.invocation import TrainerCall
from vlmscope.training.trainers.vlm_eval import generation_scores, mean_answer_loss

__all__ = ["VlmRun", "run_vlm_training", "write_checkpoint"]


@dataclass
class VlmRun:
    """One trainer invocation, fully described (see :func:`run_vlm_training`)."""

    adapter: ModelAdapter
    train: list[Example]
    loop: LoopConfig
    out: Path
    run_dir: Path
    fingerprint: str
    training_args: dict[str, Any]
    module: nn.Module | None = None
    """What the loop trains (default: ``adapter.model``; LoRA passes the peft wrapper)."""
    valid: list[Example] | None = None
    valid_metric: str = "loss"
    """``loss`` (mean answer loss, lower is better) or ``accuracy`` (greedy generation, higher)."""
    cache_encodings: bool = True
    probe_rows: int = 64
    """The first N training rows' mean answer loss is measured before and after training."""
    sampler: Callable[[int, int], Any] | None = None
    """Batch sampler for the loop (see :class:`LoopSpec`); None: epoch permutations."""

    @classmethod
    def from_call(
        cls, call: TrainerCall, adapter: ModelAdapter, train: list[Example], args: dict[str, Any], **options: Any
    ) -> VlmRun:
        """The run of ``call`` on ``train``; ``args`` adds the trainer's own ``training_args.json`` entries."""
        return cls(adapter=adapter, train=train, loop=call.loop, out=call.out, run_dir=call.run_dir,
                   fingerprint=call.fingerprint, training_args=call.training_args(**args), **options)  # fmt: skip


def run_vlm_training(
    run: VlmRun,
    *,
    write_extra: Callable[[Path, LoopResult], dict[str, Any]] | None = None,
    callbacks: Sequence[Callable[[StepInfo], None]] = (),
    accelerator: Any = None,
) -> tuple[LoopResult, dict[str, Any]]:
    """Run the loop on the answer-span loss and write the checkpoint; returns (result, metrics)."""
    images = ImageCache(keep=run.cache_encodings)
    cache: Any = EncodedCache(run.adapter, run.train, images=images)
    if not run.cache_encodings:
        cache = _Uncached(cache)
    module = run.module if run.module is not None else run.adapter.model
    evaluate = None
    if run.valid:
        vcache = EncodedCache(run.adapter, run.valid, images=images, with_answers=run.valid_metric == "loss")
        vidx = list(range(len(run.valid)))
        if run.valid_metric == "loss":
            def evaluate(m: nn.Module) -> dict[str, float]:
                return {"loss": mean_answer_loss(m, vcache, vidx)}
        else:
            def evaluate(m: nn.Module) -> dict[str, float]:
                scores = generation_scores(run.adapter, run.valid, cache=vcache)  # type: ignore[arg-type]
                return {"accuracy": float(np.mean([c for _, c in scores]))}
    spec = LoopSpec(
        model=module,
        n_examples=len(run.train),
        make_batch=lambda idx: cache.batch(idx.tolist()),
        loss_fn=answer_loss,
        evaluate=evaluate,
        select=run.valid_metric if evaluate is not None else None,
        mode="min" if run.valid_metric == "loss" else "max",
        fingerprint=run.fingerprint,
        sampler=run.sampler,
        params={"trainer": run.training_args.get("trainer", "?")},
    )
    probe = list(range(min(run.probe_rows, len(run.train))))
    module.eval()
    loss_before = mean_answer_loss(module, cache, probe) if probe else None
    module.train()
    result = run_loop(spec, run.loop, run.run_dir, accelerator=accelerator, callbacks=callbacks)
    result.model.eval()
    loss_after = mean_answer_loss(result.model, cache, probe) if probe else None
    metrics: dict[str, Any] = {
        "train_loss_before": loss_before, "train_loss_after": loss_after,
        "steps": result.steps, "train_rows": len(run.train), "seconds": round(result.seconds, 3),
        "loss_first": result.losses[0][1] if result.losses else None,
        "loss_last": result.losses[-1][1] if result.losses else None,
        "stopped_early": result.stopped_early,
    }
    if result.best is not None:
        metrics["best_step"] = result.best["step"]
        metrics[f"valid_{run.valid_metric}"] = result.best["value"]
    is_main = _is_main(accelerator)
    if is_main:
        write_checkpoint(run, result, metrics, write_extra)
    finish_run_dir(run.run_dir, run.loop, is_main)
    return result, metrics


def _is_main(accelerator: Any) -> bool:
    from accelerate import PartialState

    return bool(accelerator.is_main_process if accelerator is not None else PartialState().is_main_process)


def write_checkpoint(
    run: VlmRun,
    result: LoopResult,
    metrics: dict[str, Any],
    write_extra: Callable[[Path, LoopResult], dict[str, Any]] | None = None,
) -> None:
    """The ``out/`` layout of the module docstring, written atomically.

    ``write_extra(tmp, result)`` runs first (LoRA saves its adapter and then
    merges it into ``run.adapter.model`` there) and returns extra metrics.
    """
    with atomic_dir(run.out, kind="model") as tmp:
        if write_extra is not None:
            metrics.update(write_extra(tmp, result))
        save_model_files(run.adapter, tmp, trained_from=str(run.adapter.source),
                         trainer=run.training_args.get("trainer"))  # fmt: skip
        args = {**run.training_args, "vlmscope_version": __version__}
        write_json(tmp / "training_args.json", args, default=str)
        write_json(tmp / "train_state.json", result.summary())
        flat = {k: v for k, v in metrics.items() if isinstance(v, (int, float, bool)) and v is not None}
        write_json(tmp / "metrics.json", flat)
        live = run.run_dir / "dvclive"
        if live.is_dir():
            shutil.copytree(live, tmp / "dvclive")


class _Uncached:
    """Encode every batch afresh (datasets too large to keep encoded in memory)."""

    def __init__(self, cache: EncodedCache) -> None:
        self._cache = cache

    def batch(self, indices: Sequence[int]) -> Any:
        items = []
        for i in indices:
            items.append(self._cache.one(int(i)))
            self._cache._enc.pop(int(i), None)
        self._cache._shared.clear()
        return collate(items, self._cache.pad_id)
