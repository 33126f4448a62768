"""`vlmscope train`: projector, LoRA, output layer, CLIP and the default model; `merge`, `gradcam`.

Every command builds its ``<X>TrainConfig`` from the options (unset options
keep the trainer's defaults) and makes one library call. All of them run
unchanged under ``accelerate launch`` (configs in ``configs/accelerate/``):

    accelerate launch --config_file configs/accelerate/multi_gpu.yaml -m vlmscope train lora ...
    torchrun --nproc_per_node 2 -m vlmscope train projector ...     (CPU processes, gloo DDP)

A killed run resumes from its last checkpoint when started again with the
same command (``--no-resume`` starts afresh).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import typer

__all__ = ["TOP_LEVEL", "app", "gradcam", "merge"]

app = typer.Typer(
    help="Train projectors, LoRA adapters, output layers, CLIP classifiers and the embedded default model.",
    no_args_is_help=True,
)

# -- shared options -------------------------------------------------------------

_MODEL = typer.Option(..., "--model", help="Base checkpoint: local directory or hub id.")
_DATASETS = typer.Option(..., "--dataset", help="Dataset directory (repeat for several).")
_OUT = typer.Option(..., "--out", help="Output directory (replaced atomically when training finishes).")
_MAX_STEPS = typer.Option(None, "--max-steps", min=1, help="Optimizer steps (overrides --epochs).")
_EPOCHS = typer.Option(None, "--epochs", min=0.0, help="Passes over the training rows.")
_LR = typer.Option(None, "--lr", min=0.0, help="Peak learning rate (cosine schedule with warm-up).")
_BATCH = typer.Option(None, "--batch-size", min=1, help="Rows per device per step.")
_ACCUM = typer.Option(None, "--grad-accum", min=1, help="Micro-batches accumulated per step.")
_WARMUP = typer.Option(None, "--warmup-ratio", min=0.0, help="Fraction of steps with linear warm-up.")
_WD = typer.Option(None, "--weight-decay", min=0.0, help="AdamW weight decay (not on biases / norms).")
_SEED = typer.Option(None, "--seed", min=0, help="Seed of data order, initialisation and dropout.")
_CKPT = typer.Option(None, "--checkpoint-every", min=0, help="Write a resumable checkpoint every N steps.")
_MINUTES = typer.Option(None, "--max-minutes", min=0.0, help="Stop cleanly after this wall time.")
_THREADS = typer.Option(None, "--threads", min=1, help="torch CPU threads (tiny models: 1 is fastest).")
_RESUME = typer.Option(True, "--resume/--no-resume", help="Continue from the last checkpoint if there is one.")
_RUN_DIR = typer.Option(None, "--run-dir", help="Checkpoints and curves while training (default: <out>/../.<name>.run).")
_MP = typer.Option(None, "--mixed-precision", help="auto (bf16 on GPU, fp32 on CPU), no, bf16 or fp16.")


def _splits(text: str | None) -> tuple[str, ...] | None:
    if text is None:
        return None
    return tuple(s.strip() for s in text.split(",") if s.strip())


def _loop(defaults: Any, **options: Any) -> Any:
    """The trainer's default LoopConfig with the given (non-None) options, validated."""
    from vlmscope.training.config import LoopConfig

    data = defaults.model_dump()
    data.update({k: v for k, v in options.items() if v is not None})
    return LoopConfig(**data)


def _report(out: Path, metrics: dict[str, Any]) -> None:
    if int(os.environ.get("RANK", "0")) != 0:  # under torchrun / accelerate launch only rank 0 reports
        return
    shown = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in metrics.items()
             if isinstance(v, (int, float, bool)) and v is not None}  # fmt: skip
    typer.echo(json.dumps(shown, indent=1, sort_keys=True))
    typer.echo(f"wrote {out}")


def _subsample(proportion: float | None, mode: str | None, column: str | None, seed: int | None) -> Any:
    from vlmscope.training.config import SubsampleConfig

    data: dict[str, Any] = {"class_column": column}
    if proportion is not None:
        data["proportion"] = proportion
    if mode is not None:
        data["mode"] = mode
    if seed is not None:
        data["seed"] = seed
    return SubsampleConfig(**data)


def _pick(**kw: Any) -> dict[str, Any]:
    return {k: v for k, v in kw.items() if v is not None}


# -- train projector ----------------------------------------------------------------


@app.command("projector")
def projector(
    model: str = _MODEL,
    dataset: list[Path] = _DATASETS,
    out: Path = _OUT,
    max_steps: int | None = _MAX_STEPS,
    epochs: float | None = _EPOCHS,
    lr: float | None = _LR,
    batch_size: int | None = _BATCH,
    grad_accum: int | None = _ACCUM,
    warmup_ratio: float | None = _WARMUP,
    subsample: float | None = typer.Option(None, "--subsample", help="Keep this proportion of the training rows."),
    subsample_mode: str | None = typer.Option(None, "--subsample-mode", help="class-preserving or class-exclusive."),
    class_column: str | None = typer.Option(None, "--class-column", help="Label column for subsampling."),
    train_split: str | None = typer.Option(None, "--train-split", help="Comma-separated splits to train on."),
    valid_split: str | None = typer.Option(None, "--valid-split", help="Splits whose answer loss picks the best step."),
    seed: int | None = _SEED,
    checkpoint_every: int | None = _CKPT,
    max_minutes: float | None = _MINUTES,
    threads: int | None = _THREADS,
    mixed_precision: str | None = _MP,
    resume: bool = _RESUME,
    run_dir: Path | None = _RUN_DIR,
) -> None:
    """Train only the projector (vision tower and LM frozen) on the answer-span loss."""
    from vlmscope.training.trainers.projector import ProjectorTrainConfig, train_projector

    d = ProjectorTrainConfig()
    cfg = ProjectorTrainConfig(
        loop=_loop(d.loop, max_steps=max_steps, epochs=epochs, lr=lr, batch_size=batch_size, grad_accum=grad_accum,
                   warmup_ratio=warmup_ratio, seed=seed, checkpoint_every=checkpoint_every,
                   max_minutes=max_minutes, threads=threads, mixed_precision=mixed_precision, resume=resume),
        subsample=_subsample(subsample, subsample_mode, class_column, seed),
        **_pick(train_split=_splits(train_split), valid_split=_splits(valid_split)),
    )  # fmt: skip
    _report(out, train_projector(model, dataset, out, cfg, run_dir=run_dir))


# -- train lora ---------------------------------------------------------------------


@app.command("lora")
def lora(
    model: str = _MODEL,
    dataset: list[Path] = _DATASETS,
    out: Path = _OUT,
    max_steps: int | None = _MAX_STEPS,
    epochs: float | None = _EPOCHS,
    lr: float | None = _LR,
    batch_size: int | None = _BATCH,
    grad_accum: int | None = _ACCUM,
    warmup_ratio: float | None = _WARMUP,
    r: int | None = typer.Option(None, "--r", min=1, help="LoRA rank (default 128)."),
    alpha: float | None = typer.Option(None, "--alpha", min=0.0, help="LoRA alpha (default 256)."),
    dropout: float | None = typer.Option(None, "--dropout", min=0.0, help="LoRA dropout (default 0.05)."),
    target_modules: str | None = typer.Option(None, "--target-modules", help="Comma-separated LM linear names."),
    train_projector_: bool = typer.Option(False, "--train-projector", help="Also train the projector fully."),
    subsample: float | None = typer.Option(None, "--subsample", help="Keep this proportion of the training rows."),
    subsample_mode: str | None = typer.Option(None, "--subsample-mode", help="class-preserving or class-exclusive."),
    class_column: str | None = typer.Option(None, "--class-column", help="Label column for subsampling."),
    train_split: str | None = typer.Option(None, "--train-split", help="Comma-separated splits to train on."),
    valid_split: str | None = typer.Option(None, "--valid-split", help="Splits whose answer loss picks the best step."),
    seed: int | None = _SEED,
    checkpoint_every: int | None = _CKPT,
    max_minutes: float | None = _MINUTES,
    threads: int | None = _THREADS,
    mixed_precision: str | None = _MP,
    resume: bool = _RESUME,
    run_dir: Path | None = _RUN_DIR,
) -> None:
    """LoRA fine-tuning of the LM; writes the merged checkpoint and the adapter (out/adapter)."""
    from vlmscope.training.trainers.lora import LoraTrainConfig, train_lora

    d = LoraTrainConfig()
    cfg = LoraTrainConfig(
        loop=_loop(d.loop, max_steps=max_steps, epochs=epochs, lr=lr, batch_size=batch_size, grad_accum=grad_accum,
                   warmup_ratio=warmup_ratio, seed=seed, checkpoint_every=checkpoint_every,
                   max_minutes=max_minutes, threads=threads, mixed_precision=mixed_precision, resume=resume),
        subsample=_subsample(subsample, subsample_mode, class_column, seed), train_projector=train_projector_,
        **_pick(r=r, alpha=alpha, dropout=dropout, target_modules=_splits(target_modules),
                train_split=_splits(train_split), valid_split=_splits(valid_split)),
    )  # fmt: skip
    _report(out, train_lora(model, dataset, out, cfg, run_dir=run_dir))


# -- train output-layer ----------------------------------------------------------------


@app.command("output-layer")
def output_layer(
    store: Path = typer.Option(..., "--store", help="Activation store with the last layer's last-token states."),
    model: str = _MODEL,
    out: Path = _OUT,
    epochs: int | None = typer.Option(None, "--epochs", min=1, help="Epochs (default 50)."),
    max_steps: int | None = _MAX_STEPS,
    lr: float | None = typer.Option(None, "--lr", min=0.0, help="AdamW learning rate (default 1e-4)."),
    weight_decay: float | None = _WD,
    batch_size: int | None = typer.Option(None, "--batch-size", min=1, help="Rows per step (default 32)."),
    kl_lambda: float | None = typer.Option(None, "--kl-lambda", min=0.0, help="Weight of KL to the frozen head."),
    rows: str | None = typer.Option(None, "--rows", help="all, or answer-tokens (train only the answers' rows)."),
    train_split: str | None = typer.Option(None, "--train-split", help="Comma-separated splits to train on."),
    valid_split: str | None = typer.Option(None, "--valid-split", help="Splits that pick the best epoch."),
    test_split: str | None = typer.Option(None, "--test-split", help="Splits reported as test."),
    eval_store: list[Path] = typer.Option([], "--eval-store", help="Further stores to score (repeatable)."),
    eval_split: str | None = typer.Option(None, "--eval-split", help="Rows of the eval stores to score (all)."),
    dataset: Path | None = typer.Option(None, "--dataset", help="Manifest for answers/splits if the store lacks them."),
    layer: int | None = typer.Option(None, "--layer", min=0, help="Store layer (default: the LM's last)."),
    seed: int | None = _SEED,
    save_model: bool = typer.Option(False, "--save-model", help="Also write out/model: the full checkpoint."),
) -> None:
    """Fine-tune the unembedding on cached last-layer states (no model forward pass)."""
    from vlmscope.training.trainers.output_layer import (
        OutputLayerTrainConfig,
        train_output_layer,
    )

    cfg = OutputLayerTrainConfig(**_pick(
        epochs=epochs, max_steps=max_steps, lr=lr, weight_decay=weight_decay, batch_size=batch_size,
        kl_lambda=kl_lambda, rows=rows, train_split=_splits(train_split), valid_split=_splits(valid_split),
        test_split=_splits(test_split), eval_split=_splits(eval_split), layer=layer, seed=seed,
    ), save_model=save_model)  # fmt: skip
    _report(out, train_output_layer(store, model, out, cfg, eval_stores=eval_store, dataset=dataset))


# -- train clip -----------------------------------------------------------------------


@app.command("clip")
def clip(
    model: str = _MODEL,
    dataset: list[Path] = _DATASETS,
    out: Path = _OUT,
    metric: str | None = typer.Option(None, "--metric", help="accuracy, or mae for ordinal grades."),
    prompts: str | None = typer.Option(None, "--prompts", help='Prototype text with {} for the class ("a photo of {}").'),
    classes: str | None = typer.Option(None, "--classes", help="Comma-separated class names in order."),
    class_column: str | None = typer.Option(None, "--class-column", help="Manifest column holding the class."),
    max_steps: int | None = _MAX_STEPS,
    epochs: float | None = _EPOCHS,
    lr: float | None = _LR,
    batch_size: int | None = _BATCH,
    warmup_ratio: float | None = _WARMUP,
    eval_every: int | None = typer.Option(None, "--eval-every", min=0, help="Validate every N steps."),
    seed: int | None = _SEED,
    checkpoint_every: int | None = _CKPT,
    max_minutes: float | None = _MINUTES,
    threads: int | None = _THREADS,
    mixed_precision: str | None = _MP,
    resume: bool = _RESUME,
    run_dir: Path | None = _RUN_DIR,
) -> None:
    """Fine-tune CLIP/SigLIP's image tower as a classifier over fixed text prototypes."""
    from vlmscope.training.trainers.clip import ClipTrainConfig, train_clip

    d = ClipTrainConfig()
    cfg = ClipTrainConfig(
        loop=_loop(d.loop, max_steps=max_steps, epochs=epochs, lr=lr, batch_size=batch_size,
                   warmup_ratio=warmup_ratio, seed=seed, checkpoint_every=checkpoint_every, eval_every=eval_every,
                   max_minutes=max_minutes, threads=threads, mixed_precision=mixed_precision, resume=resume),
        **_pick(metric=metric, prompt=prompts, classes=_splits(classes), class_column=class_column),
    )  # fmt: skip
    _report(out, train_clip(model, dataset, out, cfg, run_dir=run_dir))


# -- train default ----------------------------------------------------------------------


@app.command("default")
def default(
    model: str = _MODEL,
    dataset: list[Path] = _DATASETS,
    out: Path = _OUT,
    max_steps: int | None = _MAX_STEPS,
    minutes: float | None = typer.Option(None, "--minutes", min=0.0, help="Stop cleanly after this wall time."),
    lr: float | None = _LR,
    batch_size: int | None = _BATCH,
    eval_every: int | None = typer.Option(None, "--eval-every", min=0, help="Validate every N steps."),
    valid_rows: int | None = typer.Option(None, "--valid-rows", min=0, help="Train rows held out per dataset."),
    pretrain_steps: int | None = typer.Option(
        None, "--pretrain-steps", min=0,
        help="Steps of vision-tower pre-training on image-level labels before the whole model trains "
             "(default 1200; 0 skips it).",
    ),
    seed: int | None = _SEED,
    checkpoint_every: int | None = _CKPT,
    threads: int | None = _THREADS,
    resume: bool = _RESUME,
    run_dir: Path | None = _RUN_DIR,
    logs: Path | None = typer.Option(None, "--logs", help="Also copy metrics and curves here (for DVC)."),
) -> None:
    """Train every weight of the tiny composite on the synthetic train splits; report test accuracy.

    First the vision tower alone learns image-level labels (count, colour and shape of the
    counting and large-shape sets, where present), then the whole model learns the answers.
    """
    from vlmscope.training.trainers.default_model import DefaultTrainConfig, train_default

    d = DefaultTrainConfig()
    pretrain: dict[str, Any] = {}
    if pretrain_steps == 0:
        pretrain = {"vision_pretrain": None}
    elif pretrain_steps is not None and d.vision_pretrain is not None:
        pretrain = {"vision_pretrain": d.vision_pretrain.model_copy(update={"steps": pretrain_steps})}
    cfg = DefaultTrainConfig(
        loop=_loop(d.loop, max_steps=max_steps, max_minutes=minutes, lr=lr, batch_size=batch_size, seed=seed,
                   checkpoint_every=checkpoint_every, eval_every=eval_every, threads=threads, resume=resume),
        **_pick(valid_rows=valid_rows), **pretrain,
    )  # fmt: skip
    _report(out, train_default(model, dataset, out, cfg, logs=logs, run_dir=run_dir))


# -- top-level: merge, gradcam -------------------------------------------------------------


def merge(
    base: str = typer.Option(..., "--base", help="Base checkpoint directory."),
    out: Path = _OUT,
    adapter: Path | None = typer.Option(None, "--adapter", help="LoRA adapter (a `train lora` output or its adapter/)."),
    projector: Path | None = typer.Option(None, "--projector", help="projector.safetensors or a `train projector` output."),
    tensors: Path | None = typer.Option(None, "--tensors", help="Any safetensors of named tensors (e.g. head.safetensors)."),
) -> None:
    """Fold a LoRA adapter or separately trained tensors into a full checkpoint."""
    from vlmscope.errors import ConfigError
    from vlmscope.models.merge import merge_adapter, merge_tensors

    given = [x for x in (adapter, projector, tensors) if x is not None]
    if len(given) != 1:
        raise ConfigError("pass exactly one of --adapter, --projector or --tensors")
    if adapter is not None:
        info = merge_adapter(base, adapter, out)
    else:
        info = merge_tensors(base, given[0], out)
    typer.echo(json.dumps({k: v for k, v in info.items() if k != "vlmscope_version"}, indent=1))
    typer.echo(f"wrote {out}")


def gradcam(
    model: str = _MODEL,
    dataset: Path = typer.Option(..., "--dataset", help="Dataset directory."),
    out: Path = _OUT,
    samples: str | None = typer.Option(None, "--samples", help="Comma-separated sample ids (default: first rows)."),
    split: str | None = typer.Option(None, "--split", help="Splits to take rows from (default test)."),
    max_samples: int | None = typer.Option(None, "--max-samples", min=1, help="Rows when --samples is not given."),
    target: str | None = typer.Option(None, "--target", help="predicted or answer."),
    prompt: str | None = typer.Option(None, "--prompt", help="CLIP prototype text when prototypes.json is absent."),
    alpha: float | None = typer.Option(None, "--alpha", min=0.0, max=1.0, help="Heat-map opacity."),
    size: int | None = typer.Option(None, "--size", min=16, help="PNG width/height."),
) -> None:
    """Write Grad-CAM overlays (last vision layer) as PNGs plus gradcam.csv."""
    from vlmscope.attribution.gradcam import GradcamConfig
    from vlmscope.attribution.gradcam import gradcam as run

    cfg = GradcamConfig(**_pick(samples=_splits(samples), split=_splits(split), max_samples=max_samples,
                                target=target, prompt=prompt, alpha=alpha, size=size))  # fmt: skip
    df = run(model, dataset, out, cfg)
    typer.echo(f"wrote {len(df)} overlay(s) to {out}")


TOP_LEVEL: dict[str, Any] = {"merge": merge, "gradcam": gradcam}
"""Top-level commands the root app mounts: ``vlmscope merge``, ``vlmscope gradcam``."""
