"""`vlmscope train`: projector, LoRA, output layer, CLIP and the default model; `merge`, `gradcam`.

Every command builds its ``<X>TrainConfig`` from ``--params``, ``--set`` and
the options (unset options keep the trainer's defaults; see
:mod:`vlmscope.cli.options`) and makes one library call. All of them run
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

from vlmscope.cli.options import ConfigCommand, bind, bound_config
from vlmscope.cli.outdir import refuse_cwd_out
from vlmscope.cli.signature import config_options, with_options

__all__ = ["TOP_LEVEL", "app", "gradcam", "merge"]

app = typer.Typer(
    help="Train projectors, LoRA adapters, output layers, CLIP classifiers and the embedded default model.",
    no_args_is_help=True,
)

# -- options several commands share ------------------------------------------------
# An option that only one option block below takes is declared in that block.
# Defaults are None ("not given"): the trainer's config supplies the rest, and
# ``--help`` shows its defaults (ConfigCommand), so none is written here.

_MODEL = typer.Option(..., "--model", help="Base checkpoint: local directory or hub id.")
_REVISION = typer.Option(None, "--revision", help="Hub revision (commit, tag, branch) of a hub id; ignored for a directory.")
_OUT = typer.Option(..., "--out", callback=refuse_cwd_out, help="Output directory (written when training finishes; an existing one is replaced only if it is an earlier output of this kind).")
_MAX_STEPS = typer.Option(None, "--max-steps", min=1, help="Optimizer steps (overrides --epochs).")
_EPOCHS = typer.Option(None, "--epochs", min=0.0, help="Passes over the training rows.")
_LR = typer.Option(None, "--lr", min=0.0, help="Peak learning rate (cosine schedule with warm-up).")
_BATCH = typer.Option(None, "--batch-size", min=1, help="Rows per device per step.")
_WARMUP = typer.Option(None, "--warmup-ratio", min=0.0, help="Fraction of steps with linear warm-up.")
_WD = typer.Option(None, "--weight-decay", min=0.0, help="AdamW weight decay (not on biases / norms).")
_SEED = typer.Option(None, "--seed", min=0, help="Seed of data order, initialisation and dropout.")
_CKPT = typer.Option(None, "--checkpoint-every", min=0, help="Write a resumable checkpoint every N steps.")
_THREADS = typer.Option(None, "--threads", min=1, help="torch CPU threads (tiny models: 1 is fastest).")
_RESUME = typer.Option(None, "--resume/--no-resume", help="Continue from the last checkpoint if there is one.")
_RUN_DIR = typer.Option(None, "--run-dir", help="Checkpoints and curves while training (unset: <out>/../.<name>.run).")
_TRAIN_SPLIT = typer.Option(None, "--train-split", help="Comma-separated splits to train on.")

_LOOP = {
    name: f"loop.{name}"
    for name in ("max_steps", "epochs", "lr", "batch_size", "grad_accum", "warmup_ratio", "checkpoint_every",
                 "max_minutes", "threads", "mixed_precision", "resume", "eval_every")
}  # fmt: skip
"""Option name -> ``LoopConfig`` field, the same for every trainer."""

_SUBSAMPLING = {
    "subsample": "subsample.proportion", "subsample_mode": "subsample.mode",
    "class_column": "subsample.class_column", "seed": ("loop.seed", "subsample.seed"),
}  # fmt: skip
"""Options of the trainers with a ``SubsampleConfig``; ``--seed`` seeds both."""


def _splits(text: str | None) -> tuple[str, ...] | None:
    if text is None:
        return None
    return tuple(s.strip() for s in text.split(",") if s.strip())


def _report(out: Path, metrics: dict[str, Any]) -> None:
    if int(os.environ.get("RANK", "0")) != 0:  # under torchrun / accelerate launch only rank 0 reports
        return
    shown = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in metrics.items()
             if isinstance(v, (int, float, bool)) and v is not None}  # fmt: skip
    typer.echo(json.dumps(shown, indent=1, sort_keys=True))
    typer.echo(f"wrote {out}")


# -- option blocks several trainers share (see with_options) ----------------------------


def _inputs(
    model: str = _MODEL,
    dataset: list[Path] = typer.Option(..., "--dataset", help="Dataset directory (repeat for several)."),
    out: Path = _OUT,
    revision: str | None = _REVISION,
) -> None:
    """Base checkpoint (and its hub revision), datasets and output of the trainers that read datasets."""


def _schedule(
    max_steps: int | None = _MAX_STEPS,
    epochs: float | None = _EPOCHS,
    lr: float | None = _LR,
    batch_size: int | None = _BATCH,
    grad_accum: int | None = typer.Option(None, "--grad-accum", min=1, help="Micro-batches accumulated per step."),
    warmup_ratio: float | None = _WARMUP,
) -> None:
    """Optimisation schedule of the LM trainers (projector, LoRA)."""


def _rows(
    subsample: float | None = typer.Option(None, "--subsample", help="Keep this proportion of the training rows."),
    subsample_mode: str | None = typer.Option(None, "--subsample-mode", help="class-preserving or class-exclusive."),
    class_column: str | None = typer.Option(None, "--class-column", help="Label column for subsampling."),
    train_split: str | None = _TRAIN_SPLIT,
    valid_split: str | None = typer.Option(None, "--valid-split", help="Splits whose answer loss picks the best step."),
) -> None:
    """Which rows the LM trainers train and validate on."""


def _run(
    seed: int | None = _SEED,
    checkpoint_every: int | None = _CKPT,
    max_minutes: float | None = typer.Option(None, "--max-minutes", min=0.0, help="Stop cleanly after this wall time."),
    threads: int | None = _THREADS,
    mixed_precision: str | None = typer.Option(
        None, "--mixed-precision", help="auto (bf16 on GPU, fp32 on CPU), no, bf16 or fp16."
    ),
    resume: bool | None = _RESUME,
    run_dir: Path | None = _RUN_DIR,
) -> None:
    """Seed, checkpoints, time and device settings of a loop trainer's run."""


def _lm_trainer(fn: Any, train: Any, values: dict[str, Any], **converted: Any) -> None:
    """Config, training and report of a projector/LoRA run (their bodies are otherwise the same)."""
    cfg = bound_config(
        fn, values, train_split=_splits(values["train_split"]), valid_split=_splits(values["valid_split"]), **converted
    )
    out = values["out"]
    _report(out, train(values["model"], values["dataset"], out, cfg, revision=values["revision"], run_dir=values["run_dir"]))


# -- train projector ----------------------------------------------------------------


@app.command("projector", cls=ConfigCommand)
@bind("vlmscope.training.trainers.projector:ProjectorTrainConfig", "train_split", "valid_split", **_LOOP, **_SUBSAMPLING)
@with_options(_inputs, _schedule, _rows, _run, config_options)
def projector(**options: Any) -> None:
    """Train only the projector (vision tower and LM frozen) on the answer-span loss."""
    from vlmscope.training.trainers.projector import train_projector

    _lm_trainer(projector, train_projector, options)


# -- train lora ---------------------------------------------------------------------


@app.command("lora", cls=ConfigCommand)
@bind(
    "vlmscope.training.trainers.lora:LoraTrainConfig",
    "r", "alpha", "dropout", "target_modules", "train_split", "valid_split",
    train_projector_="train_projector", **_LOOP, **_SUBSAMPLING,
)  # fmt: skip
@with_options(_inputs, _schedule, None, _rows, _run, config_options)
def lora(
    r: int | None = typer.Option(None, "--r", min=1, help="LoRA rank."),
    alpha: float | None = typer.Option(None, "--alpha", min=0.0, help="LoRA alpha."),
    dropout: float | None = typer.Option(None, "--dropout", min=0.0, help="LoRA dropout."),
    target_modules: str | None = typer.Option(None, "--target-modules", help="Comma-separated LM linear names."),
    train_projector_: bool | None = typer.Option(
        None, "--train-projector/--no-train-projector", help="Also train the projector fully."
    ),
    **options: Any,
) -> None:
    """LoRA fine-tuning of the LM; writes the merged checkpoint and the adapter (out/adapter)."""
    from vlmscope.training.trainers.lora import train_lora

    _lm_trainer(lora, train_lora, locals() | options, target_modules=_splits(target_modules))


# -- train output-layer ----------------------------------------------------------------


@app.command("output-layer", cls=ConfigCommand)
@bind(
    "vlmscope.training.trainers.output_layer:OutputLayerTrainConfig",
    "epochs", "max_steps", "lr", "weight_decay", "batch_size", "kl_lambda", "rows", "train_split", "valid_split",
    "test_split", "eval_split", "layer", "seed", "save_model",
)  # fmt: skip
@with_options(None, config_options)
def output_layer(
    store: Path = typer.Option(..., "--store", help="Activation store with the last layer's last-token states."),
    model: str = _MODEL,
    out: Path = _OUT,
    revision: str | None = _REVISION,
    epochs: int | None = typer.Option(None, "--epochs", min=1, help="Epochs."),
    max_steps: int | None = _MAX_STEPS,
    lr: float | None = typer.Option(None, "--lr", min=0.0, help="AdamW learning rate."),
    weight_decay: float | None = _WD,
    batch_size: int | None = typer.Option(None, "--batch-size", min=1, help="Rows per step."),
    kl_lambda: float | None = typer.Option(None, "--kl-lambda", min=0.0, help="Weight of KL to the frozen head."),
    rows: str | None = typer.Option(None, "--rows", help="all, or answer-tokens (train only the answers' rows)."),
    train_split: str | None = _TRAIN_SPLIT,
    valid_split: str | None = typer.Option(None, "--valid-split", help="Splits that pick the best epoch."),
    test_split: str | None = typer.Option(None, "--test-split", help="Splits reported as test."),
    eval_store: list[Path] = typer.Option([], "--eval-store", help="Further stores to score (repeatable)."),
    eval_split: str | None = typer.Option(None, "--eval-split", help="Rows of the eval stores to score."),
    dataset: Path | None = typer.Option(None, "--dataset", help="Manifest for answers/splits if the store lacks them."),
    layer: int | None = typer.Option(None, "--layer", min=0, help="Store layer; unset: the LM's last."),
    seed: int | None = _SEED,
    save_model: bool | None = typer.Option(
        None, "--save-model/--no-save-model", help="Also write out/model: the full checkpoint."
    ),
    **options: Any,
) -> None:
    """Fine-tune the unembedding on cached last-layer states (no model forward pass)."""
    from vlmscope.training.trainers.output_layer import train_output_layer

    args = locals() | options
    splits = {name: _splits(args[name]) for name in ("train_split", "valid_split", "test_split", "eval_split")}
    cfg = bound_config(output_layer, args, **splits)
    _report(out, train_output_layer(store, model, out, cfg, eval_stores=eval_store, dataset=dataset, revision=revision))


# -- train clip -----------------------------------------------------------------------


@app.command("clip", cls=ConfigCommand)
@bind(
    "vlmscope.training.trainers.clip:ClipTrainConfig",
    "metric", "classes", "class_column", prompts="prompt", seed="loop.seed", **_LOOP,
)  # fmt: skip
@with_options(_inputs, None, _run, config_options)
def clip(
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
    **options: Any,
) -> None:
    """Fine-tune CLIP/SigLIP's image tower as a classifier over fixed text prototypes."""
    from vlmscope.training.trainers.clip import train_clip

    cfg = bound_config(clip, locals() | options, classes=_splits(classes))
    out = options["out"]
    run = train_clip(options["model"], options["dataset"], out, cfg, revision=options["revision"], run_dir=options["run_dir"])
    _report(out, run)


# -- train default ----------------------------------------------------------------------


@app.command("default", cls=ConfigCommand)
@bind(
    "vlmscope.training.trainers.default_model:DefaultTrainConfig",
    "valid_rows", minutes="loop.max_minutes", seed="loop.seed", pretrain_steps="vision_pretrain.steps", **_LOOP,
)  # fmt: skip
@with_options(_inputs, None, config_options)
def default(
    max_steps: int | None = _MAX_STEPS,
    minutes: float | None = typer.Option(None, "--minutes", min=0.0, help="Stop cleanly after this wall time."),
    lr: float | None = _LR,
    batch_size: int | None = _BATCH,
    eval_every: int | None = typer.Option(None, "--eval-every", min=0, help="Validate every N steps."),
    valid_rows: int | None = typer.Option(None, "--valid-rows", min=0, help="Train rows held out per dataset."),
    pretrain_steps: int | None = typer.Option(
        None, "--pretrain-steps", min=0,
        help="Steps of vision-tower pre-training on image-level labels before the whole model trains; 0 skips it.",
    ),
    seed: int | None = _SEED,
    checkpoint_every: int | None = _CKPT,
    threads: int | None = _THREADS,
    resume: bool | None = _RESUME,
    run_dir: Path | None = _RUN_DIR,
    logs: Path | None = typer.Option(None, "--logs", help="Also copy metrics and curves here (for DVC)."),
    **options: Any,
) -> None:
    """Train every weight of the tiny composite on the synthetic train splits; report test accuracy.

    First the vision tower alone learns image-level labels (count, colour and shape of the
    counting and large-shape sets, where present), then the whole model learns the answers.
    """
    from vlmscope.training.trainers.default_model import train_default

    skip_pretrain = pretrain_steps == 0
    sets = [*(options["set_"] or []), *(["vision_pretrain=null"] if skip_pretrain else [])]
    cfg = bound_config(
        default, locals() | options | {"set_": sets}, pretrain_steps=None if skip_pretrain else pretrain_steps
    )
    out = options["out"]
    revision = options["revision"]
    _report(out, train_default(options["model"], options["dataset"], out, cfg, logs=logs, run_dir=run_dir, revision=revision))


# -- top-level: merge, gradcam -------------------------------------------------------------


def merge(
    base: str = typer.Option(..., "--base", help="Base checkpoint: directory, vlmscope-ref.json pin or cached hub id."),
    out: Path = _OUT,
    adapter: Path | None = typer.Option(None, "--adapter", help="LoRA adapter (a `train lora` output or its adapter/)."),
    projector: Path | None = typer.Option(
        None, "--projector",
        help="projector.safetensors, a `train projector` output, or an original mm_projector.bin.",
    ),
    tensors: Path | None = typer.Option(None, "--tensors", help="Any safetensors of named tensors (e.g. head.safetensors)."),
    vision_tower: Path | None = typer.Option(
        None, "--vision-tower", help="A `train clip` output or CLIP checkpoint whose image tower replaces the base's."
    ),
    revision: str | None = _REVISION,
) -> None:
    """Fold a LoRA adapter, separately trained tensors, a LLaVA projector or a CLIP tower into a full checkpoint."""
    from vlmscope.models.merge_checkpoint import merge_checkpoint

    info = merge_checkpoint(base, out, adapter=adapter, projector=projector, tensors=tensors,
                            vision_tower=vision_tower, revision=revision)  # fmt: skip
    typer.echo(json.dumps({k: v for k, v in info.items() if k != "vlmscope_version"}, indent=1))
    typer.echo(f"wrote {out}")


@bind("vlmscope.attribution.gradcam:GradcamConfig", "samples", "split", "max_samples", "target", "prompt", "alpha", "size")
@with_options(None, config_options)
def gradcam(
    model: str = _MODEL,
    dataset: Path = typer.Option(..., "--dataset", help="Dataset directory."),
    out: Path = _OUT,
    revision: str | None = _REVISION,
    samples: str | None = typer.Option(None, "--samples", help="Comma-separated sample ids; unset: the first rows."),
    split: str | None = typer.Option(None, "--split", help="Splits to take rows from."),
    max_samples: int | None = typer.Option(None, "--max-samples", min=1, help="Rows when --samples is not given."),
    target: str | None = typer.Option(None, "--target", help="predicted or answer."),
    prompt: str | None = typer.Option(None, "--prompt", help="CLIP prototype text when prototypes.json is absent."),
    alpha: float | None = typer.Option(None, "--alpha", min=0.0, max=1.0, help="Heat-map opacity."),
    size: int | None = typer.Option(None, "--size", min=16, help="PNG width/height."),
    **options: Any,
) -> None:
    """Write Grad-CAM overlays (last vision layer) as PNGs plus gradcam.csv."""
    from vlmscope.attribution.gradcam import gradcam as run

    cfg = bound_config(gradcam, locals() | options, samples=_splits(samples), split=_splits(split))
    df = run(model, dataset, out, cfg, revision=revision)
    typer.echo(f"wrote {len(df)} overlay(s) to {out}")


TOP_LEVEL: dict[str, Any] = {"merge": merge, "gradcam": gradcam}
"""Top-level commands the root app mounts: ``vlmscope merge``, ``vlmscope gradcam``."""
