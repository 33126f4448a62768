"""What the projector, LoRA and default-model trainers share: rows, freezing, run, artifact.

Each of those trainers is "load a generative VLM, pick what trains, run the
shared loop on the answer-span loss, write a checkpoint that loads like any
other". The differences (which parameters, peft wrapping, extra files) are
passed in; everything else lives here once.

Artifact layout (``out/``): the full checkpoint as ``save_pretrained`` writes
it (safetensors + config + processor) plus the base's ``vlmscope.json``
sidecar (so the family is detected as before), ``training_args.json`` (the
validated config and inputs), ``metrics.json`` (flat numbers for ``dvc
metrics show``), ``train_state.json`` (steps, resume, rank fingerprints,
loss curve) and ``dvclive/``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import BaseModel
from torch import nn

from vlmscope import __version__
from vlmscope.errors import TrainingError
from vlmscope.io.atomic import atomic_dir
from vlmscope.models.adapter import ModelAdapter
from vlmscope.training.config import (
    RESUME_NEUTRAL_FIELDS,
    LoopConfig,
    config_fingerprint,
)
from vlmscope.training.data import Example, ImageCache, class_of
from vlmscope.training.encoding import EncodedCache, answer_loss, per_example_loss
from vlmscope.training.loop import (
    LoopResult,
    LoopSpec,
    StepInfo,
    finish_run_dir,
    run_loop,
)

__all__ = [
    "VlmRun",
    "check_answers",
    "default_run_dir",
    "freeze_except",
    "generation_scores",
    "inputs_fingerprint",
    "load_generative",
    "mean_answer_loss",
    "run_vlm_training",
    "save_model_files",
    "write_checkpoint",
]


def load_generative(model: str | os.PathLike[str]) -> ModelAdapter:
    """Load a generative VLM in float32 (trainable weights must not be bf16 for AdamW)."""
    from vlmscope.models import LoadOptions, load_model

    adapter = load_model(str(model), options=LoadOptions(dtype="float32"))
    if not isinstance(adapter, ModelAdapter):
        raise TrainingError(
            f"{model}: a {type(adapter).__name__} has no LM to train; use `vlmscope train clip` for contrastive models"
        )
    return adapter


def check_answers(adapter: ModelAdapter, examples: Sequence[Example]) -> None:
    """Fail before training when an answer span would be empty (text only, no images)."""
    tok = adapter.tokenizer
    seen: set[str] = set()
    for ex in examples:
        if ex.answer in seen:
            continue
        seen.add(ex.answer)
        text = class_of(ex.answer)
        ids = [i for i in adapter.answer_ids(text) if i != tok.eos_token_id] if text.strip() else []
        if not ids:
            raise TrainingError(
                f"{ex.dataset}: sample {ex.sample_id!r}: answer {ex.answer!r} tokenizes to nothing "
                "(the loss span would be empty); fix or drop the row"
            )


def freeze_except(adapter: ModelAdapter, groups: Sequence[str]) -> dict[str, int]:
    """``requires_grad`` True exactly on ``groups`` of ``adapter.parameter_groups()``; returns sizes."""
    all_groups = adapter.parameter_groups()
    unknown = [g for g in groups if g not in all_groups]
    if unknown:
        raise TrainingError(f"unknown parameter group(s) {unknown}; valid: {sorted(all_groups)}")
    for p in adapter.model.parameters():
        p.requires_grad_(False)
    sizes = {}
    for g in groups:
        for p in all_groups[g]:
            p.requires_grad_(True)
        sizes[g] = sum(p.numel() for p in all_groups[g])
    if sum(sizes.values()) == 0:
        raise TrainingError(f"no trainable parameters selected: group(s) {list(groups)} are empty in this model")
    return sizes


def default_run_dir(out: str | os.PathLike[str]) -> Path:
    """``<parent>/.<name>.run``: checkpoints live beside the output, outside what DVC deletes."""
    out = Path(out)
    return out.parent / f".{out.name}.run"


def _dataset_id(path: str | os.PathLike[str]) -> str:
    from vlmscope.data.manifest import INFO

    info = Path(path) / INFO
    if info.is_file():
        return str(json.loads(info.read_text()).get("fingerprint", path))
    return str(Path(path).resolve())


def inputs_fingerprint(cfg: BaseModel, model: str | os.PathLike[str], datasets: Sequence[str | os.PathLike[str]]) -> str:
    """Identity of (config minus resume-neutral knobs, model, dataset contents) for resume checks."""
    parts = {
        "config": config_fingerprint(cfg, ignore=RESUME_NEUTRAL_FIELDS),
        "model": str(Path(model).resolve()) if Path(model).exists() else str(model),
        "datasets": [_dataset_id(d) for d in datasets],
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


@torch.no_grad()
def mean_answer_loss(model: nn.Module, cache: EncodedCache, indices: Sequence[int], batch_size: int = 16) -> float:
    """Mean over rows of each row's mean answer-token cross-entropy (CPU or the model's device)."""
    device = next(model.parameters()).device
    losses = []
    for i in range(0, len(indices), batch_size):
        b = cache.batch(indices[i : i + batch_size]).to(device)
        losses.append(per_example_loss(model, b).float().cpu())
    return float(torch.cat(losses).mean()) if losses else float("nan")


def generation_scores(
    adapter: ModelAdapter,
    examples: Sequence[Example],
    *,
    batch_size: int = 32,
    max_new_tokens: int = 5,
    images: ImageCache | None = None,
    cache: EncodedCache | None = None,
) -> list[tuple[str, bool]]:
    """Greedy-decode every row and score it as the evaluation stage does; (text, correct) per row."""
    from vlmscope.evaluation.scoring import score_text

    enc = cache or EncodedCache(adapter, examples, images=images, with_answers=False)
    was_training = adapter.model.training
    adapter.model.eval()
    out: list[tuple[str, bool]] = []
    try:
        for i in range(0, len(examples), batch_size):
            idx = list(range(i, min(i + batch_size, len(examples))))
            texts = adapter.generate(enc.batch(idx), max_new_tokens=max_new_tokens)
            for j, t in zip(idx, texts):
                ex = examples[j]
                row = {
                    "answer_type": ex.answer_type, "answer": ex.answer,
                    "choices": list(ex.choices) if ex.choices is not None else None, "answer_index": ex.answer_index,
                }
                out.append((t, score_text(row, t).correct))
    finally:
        adapter.model.train(was_training)
    return out


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
    with atomic_dir(run.out) as tmp:
        if write_extra is not None:
            metrics.update(write_extra(tmp, result))
        save_model_files(run.adapter, tmp, trained_from=str(run.adapter.source),
                         trainer=run.training_args.get("trainer"))  # fmt: skip
        args = {**run.training_args, "vlmscope_version": __version__}
        (tmp / "training_args.json").write_text(json.dumps(args, indent=2, sort_keys=True, default=str) + "\n")
        (tmp / "train_state.json").write_text(json.dumps(result.summary(), indent=2, sort_keys=True) + "\n")
        flat = {k: v for k, v in metrics.items() if isinstance(v, (int, float, bool)) and v is not None}
        (tmp / "metrics.json").write_text(json.dumps(flat, indent=2, sort_keys=True) + "\n")
        live = run.run_dir / "dvclive"
        if live.is_dir():
            shutil.copytree(live, tmp / "dvclive")


def save_model_files(adapter: Any, out: Path, **sidecar_extra: Any) -> None:
    """Weights + config + processor (``save_pretrained``) and the base's ``vlmscope.json`` sidecar.

    The sidecar carries the family (a composite and a LLaVA share
    ``model_type``), so the trained checkpoint is detected as its base was.
    """
    from vlmscope.models.tiny import read_sidecar, write_sidecar

    adapter.model.save_pretrained(str(out))
    adapter.processor.save_pretrained(str(out))
    base = Path(adapter.source)
    sidecar = read_sidecar(base) if base.is_dir() else None
    if sidecar is not None:
        fam = sidecar.pop("family")
        sidecar.pop("vlmscope_version", None)
        write_sidecar(out, fam, **{**sidecar, **sidecar_extra})


class _Uncached:
    """Encode every batch afresh (datasets too large to keep encoded in memory)."""

    def __init__(self, cache: EncodedCache) -> None:
        self._cache = cache

    def batch(self, indices: Sequence[int]) -> Any:
        from vlmscope.training.encoding import collate

        items = []
        for i in indices:
            items.append(self._cache.one(int(i)))
            self._cache._enc.pop(int(i), None)
        self._cache._shared.clear()
        return collate(items, self._cache.pad_id)
