"""``vlmscope train default``: the embedded default model a newcomer sees first.

Trains every weight of the tiny composite (random CLIP-style tower + Llama LM
as a LLaVA checkpoint) on the ``train`` split of the synthetic datasets, for a
few minutes on a CPU, in two steps as real VLMs are built: the tower and
projector on image-level labels (vision pre-training), then projector and LM
on the answers with the answer-span loss. A small seeded slice of each
dataset's training rows is held out; greedy-generation accuracy on it picks the best checkpoint. The
finished model is then evaluated on every dataset's ``test`` split, scored
exactly as the evaluation stage scores (``answer_type``-aware parsing), and
compared with two baselines: uniform chance (1 / number of options) and the
majority answer of the training rows (what a model that ignores the image
could reach at best by answer priors alone).

``metrics.json`` is flat (``<dataset>/accuracy``, ``<dataset>/chance``,
``<dataset>/majority`` ...); ``eval_by_group.csv`` breaks accuracy down by
dataset and ``query_type``.
"""

from __future__ import annotations

import math
import os
import shutil
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from pydantic import BaseModel, ConfigDict, Field

from vlmscope.errors import ConfigError, TrainingError
from vlmscope.io.atomic import atomic_dir
from vlmscope.io.outguard import check_out
from vlmscope.models.adapter import ModelAdapter
from vlmscope.models.trained import load_generative
from vlmscope.training.config import LoopConfig
from vlmscope.training.data import Example, ImageCache, load_rows, row_matches
from vlmscope.training.engine.loop import LoopResult
from vlmscope.training.trainers.invocation import TrainerCall, trainer_entry
from vlmscope.training.trainers.vision_pretrain import PretrainHead, VisionPretrainConfig, pretrain_vision
from vlmscope.training.trainers.vlm_eval import generation_scores
from vlmscope.training.trainers.vlm_run import VlmRun, run_vlm_training
from vlmscope.training.trainers.vlm_setup import check_answers, freeze_except

__all__ = [
    "LARGE_COUNTS",
    "LARGE_SHAPES",
    "SHAPE_QUESTIONS",
    "CurriculumStage",
    "DefaultTrainConfig",
    "baselines",
    "curriculum_sampler",
    "evaluate_rows",
    "train_default",
]


LARGE_SHAPES = "train-color-large"
"""Directory name of the colour set with large shapes that the default curriculum starts on."""

LARGE_COUNTS = "train-counting-large"
"""Directory name of the counting set on a 3 x 3 grid (entities 9 times the patch area) that counting starts on."""

SHAPE_QUESTIONS = "train-shape"
"""Directory name of the shape-question set ("what shape is the red one?", large shapes) the curriculum opens with."""


class CurriculumStage(BaseModel):
    """Train only on some rows until a fraction of the steps has passed."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    until: float = Field(gt=0, le=1)
    """This stage ends after ``until * total_steps`` steps (stages are in order)."""
    datasets: tuple[str, ...] | None = None
    """Dataset directory names (``train-color``) or generator kinds (``color``); None: all."""
    where: dict[str, tuple[Any, ...]] = Field(default_factory=dict)
    """Label column -> allowed values (``{"n_shapes": [1]}``); a row without that column is not constrained."""
    optional: bool = False
    """Skip this stage (with a warning) when no training row matches, instead of failing: the
    default first stage needs the pipeline's large-shape colour set, which other data lacks."""


class DefaultTrainConfig(BaseModel):
    """Knobs of the embedded default model's training."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    loop: LoopConfig = Field(
        default_factory=lambda: LoopConfig(
            max_steps=1000, batch_size=16, lr=1e-3, adam_beta2=0.95, warmup_ratio=0.02, weight_decay=0.01,
            checkpoint_every=200, eval_every=250, min_lr_ratio=0.1, threads=1,
        )
    )
    train_split: tuple[str, ...] = ("train",)
    eval_split: tuple[str, ...] = ("test",)
    valid_rows: int = Field(default=32, ge=0, le=100_000)
    """Training rows held out per dataset (seeded) whose generation accuracy picks the best step."""
    eval_max_rows: int | None = Field(default=None, ge=1)
    """Evaluate at most this many test rows per dataset (None: all)."""
    max_new_tokens: int = Field(default=5, ge=1, le=64)
    curriculum: tuple[CurriculumStage, ...] = (
        CurriculumStage(until=0.1, datasets=(SHAPE_QUESTIONS,), where={"n_shapes": (1,)}, optional=True),
        CurriculumStage(until=0.18, datasets=(LARGE_SHAPES,), where={"n_shapes": (1,)}, optional=True),
        CurriculumStage(until=0.3, datasets=(SHAPE_QUESTIONS, LARGE_SHAPES), where={"n_shapes": (1,)},
                        optional=True),
        CurriculumStage(until=0.4, datasets=(SHAPE_QUESTIONS, LARGE_SHAPES, LARGE_COUNTS), optional=True),
        CurriculumStage(until=0.5, datasets=("color", "counting", "relations"),
                        where={"query_type": ("recognition_color", "recognition_shape", "count")}),
    )  # fmt: skip
    """Easy rows first. A tiny model trained from scratch must first discover that the answer is
    in the image at all, and it does so one kind of question at a time: single-shape questions
    on large shapes (``train-shape``, ``train-color-large``: shapes 48-96 px on the 448 px
    canvas) make that happen within ~100 steps of batch 16, against 300-600 steps or never on
    study-size shapes (20-40 px). Which question comes first matters. Measured on 2 CPU cores
    (test accuracy after 1000 steps, chance .20 for shape): with colour questions first, or the
    two mixed from the start, the shape questions stayed at .19-.21 (a constant answer) in four
    runs and in one of 400 steps; with shape questions first they reached .31-.44 (7 runs). Counting starts on the 3 x 3
    grid (``train-counting-large``), where an entity covers about nine patches instead of one.
    Counting rows have no ``query_type``, so the fifth stage does not filter them. After the
    last stage every training row is used."""
    vision_pretrain: VisionPretrainConfig | None = VisionPretrainConfig(
        heads=(
            PretrainHead(column="count", datasets=("counting",), optional=True),
            PretrainHead(column="shape", datasets=(LARGE_SHAPES, SHAPE_QUESTIONS), where={"n_shapes": (1,)},
                         pool="max", optional=True),
            PretrainHead(column="color", datasets=(LARGE_SHAPES, SHAPE_QUESTIONS), where={"n_shapes": (1,)},
                         optional=True),
        ),
        steps=2000,
    )  # fmt: skip
    """Pre-train the vision tower and projector on image-level labels before the whole model
    trains (:mod:`vlmscope.training.trainers.vision_pretrain`); None skips it. The default heads: the
    count of every counting image (both grids; mean of the image tokens), and the shape (their
    max) and colour (their mean) of the single-shape large-shape images. Measured on 2 CPU
    cores, test accuracy of the answers after the 1000 steps that follow (colour on study-size
    shapes / shape / 9 x 9 counting; chance .10 / .20 / .11), one or two runs each:

    - count and shape heads only (1600 steps): .13-.16 / .44 / .96-.98, colour on large
      shapes .31-.36;
    - these three heads, 1600 steps: .39 / .36 / .66; 2000 steps (the default): .39 / .44 / .85
      (and .39 / .38 / .70 in a fresh clone's ``make repro``, 2 threads);
    - the last recipe (count, colour, shape heads, all on the mean, 1200 steps, tower trained
      with the answers, no shape questions): .49-.55 / - / .38-.40.

    The colour head costs the others held-out accuracy (count / shape .85 / .74 after 1200
    steps without it, .49 / .71 after 2000 with it) but keeps colour in the tower."""
    train_groups: tuple[str, ...] = Field(default=("projector", "language"), min_length=1)
    """Parameter groups the answer loss trains after the vision pre-training. The tower stays as
    pre-trained: when it also trained, 80 steps of colour questions overwrote what it had learnt
    (9 x 9 counting fell from .96 to .23 and shape to .20 when a colour-only stage followed the
    shape stage; frozen, the same curriculum kept .98 and .44), and each step is ~15% cheaper."""
    balance: bool = True
    """Repeat the rows of smaller datasets so every dataset contributes about equally per epoch
    (the relations set has ~19 questions per image and would otherwise dominate)."""


def _holdout(rows: list[Example], n: int, seed: int) -> tuple[list[Example], list[Example]]:
    """Split off ``n`` rows per dataset, whole images at a time (rows sharing an image stay together)."""
    if n == 0:
        return rows, []
    train, valid = [], []
    for ds in sorted({r.dataset for r in rows}):
        part = [r for r in rows if r.dataset == ds]
        images = sorted({str(r.image) for r in part})
        rng = np.random.default_rng([seed, len(images)])
        chosen: set[str] = set()
        count = 0
        for i in rng.permutation(len(images)):
            if count >= n or len(chosen) >= len(images) - 1:
                break
            chosen.add(images[i])
            count += sum(1 for r in part if str(r.image) == images[i])
        valid.extend(r for r in part if str(r.image) in chosen)
        train.extend(r for r in part if str(r.image) not in chosen)
    return train, valid


def curriculum_sampler(
    rows: Sequence[Example], stages: Sequence[CurriculumStage], total_steps: int, seed: int
) -> Callable[[int, int], np.ndarray] | None:
    """``(step, global_batch) -> indices`` drawing each step's batch from its stage's rows.

    Within a stage, batches walk seeded epoch permutations of the stage's rows
    (:func:`batch_indices`), so the order is a pure function of the step
    (resume-safe). Raises when a stage matches no row.
    """
    from vlmscope.training.engine.schedule import batch_indices

    if not stages:
        return None
    pools, ends = [], []
    for k, st in enumerate(stages):
        pool = np.array([i for i, r in enumerate(rows) if row_matches(r, st.datasets, st.where)], dtype=np.int64)
        if len(pool) == 0 and st.optional:
            warnings.warn(
                f"curriculum stage {k} ({st.model_dump()}) matches no training row; skipped", stacklevel=2
            )
            continue
        if len(pool) == 0:
            raise ConfigError(
                f"curriculum stage {k} ({st.model_dump()}) matches no training row; "
                "fix its datasets/where or pass an empty curriculum"
            )
        pools.append(pool)
        ends.append(int(np.ceil(st.until * total_steps)))
    everything = np.arange(len(rows), dtype=np.int64)

    def sample(step: int, global_batch: int) -> np.ndarray:
        for k, end in enumerate(ends):
            if step < end:
                pool = pools[k]
                return pool[batch_indices(step, global_batch, len(pool), seed * 1009 + k + 1)]
        return everything[batch_indices(step, global_batch, len(everything), seed)]

    return sample


def _balance(rows: list[Example]) -> list[Example]:
    """Each dataset's rows repeated ``round(largest / own)`` times (order kept, deterministic)."""
    sizes = Counter(r.dataset for r in rows)
    if len(sizes) < 2:
        return rows
    top = max(sizes.values())
    out: list[Example] = []
    for ds in sorted(sizes):
        part = [r for r in rows if r.dataset == ds]
        out.extend(part * max(1, round(top / len(part))))
    return out


def _group(r: Example) -> str:
    extra = dict(r.extra)
    return str(extra.get("query_type", "all"))


def baselines(train: Sequence[Example], test: Sequence[Example]) -> list[tuple[float, bool]]:
    """Per test row: (chance of a uniform guess, whether the training majority answer is right).

    Chance is 1 / number of options (``choices``), or 1 / number of distinct
    answers of that dataset and query type in training for count/open rows.
    The majority answer is taken per (dataset, query type).
    """
    answers: dict[tuple[str, str], Counter[str]] = {}
    for r in train:
        answers.setdefault((r.dataset, _group(r)), Counter())[r.answer.strip().casefold()] += 1
    out = []
    for r in test:
        c = answers.get((r.dataset, _group(r)), Counter())
        chance = 1.0 / len(r.choices) if r.choices else 1.0 / max(1, len(c))
        majority = c.most_common(1)[0][0] if c else None
        out.append((chance, majority == r.answer.strip().casefold()))
    return out


def _exact_mean(values: pl.Series) -> float:
    return math.fsum(float(v) for v in values) / len(values)


def evaluate_rows(
    adapter: ModelAdapter,
    train: Sequence[Example],
    test: Sequence[Example],
    *,
    max_new_tokens: int = 5,
    images: ImageCache | None = None,
) -> tuple[dict[str, float], pl.DataFrame]:
    """Greedy-generation accuracy on ``test`` vs chance and majority, overall, per dataset and query type."""
    scores = generation_scores(adapter, test, max_new_tokens=max_new_tokens, images=images)
    base = baselines(train, test)
    df = pl.DataFrame(
        {
            "dataset": [r.dataset for r in test],
            "query_type": [_group(r) for r in test],
            "correct": [c for _, c in scores],
            "chance": [b[0] for b in base],
            "majority": [b[1] for b in base],
        }
    )
    # exactly rounded means (math.fsum): polars' partitioned group-by may add a group's floats in any
    # order, which moved the last bit of "chance" between identical runs
    agg = [pl.len().alias("n"), pl.col("correct").map_batches(_exact_mean, returns_scalar=True).alias("accuracy"),
           pl.col("chance").map_batches(_exact_mean, returns_scalar=True).alias("chance"),
           pl.col("majority").map_batches(_exact_mean, returns_scalar=True).alias("majority")]  # fmt: skip
    by_group = df.group_by("dataset", "query_type").agg(agg).sort("dataset", "query_type")
    by_ds = df.group_by("dataset").agg(agg).sort("dataset")
    metrics: dict[str, float] = {
        "test/accuracy": _exact_mean(df["correct"]),
        "test/chance": _exact_mean(df["chance"]),
        "test/majority": _exact_mean(df["majority"]),
        "test/n": float(len(df)),
    }
    for row in by_ds.iter_rows(named=True):
        for k in ("accuracy", "chance", "majority", "n"):
            metrics[f"{row['dataset']}/{k}"] = float(row[k])
    return metrics, by_group


@trainer_entry("default", DefaultTrainConfig())
def train_default(
    call: TrainerCall, cfg: DefaultTrainConfig, *, logs: str | os.PathLike[str] | None = None
) -> dict[str, Any]:
    """Train ``model`` on the datasets' train rows (tower, then ``cfg.train_groups``); evaluate on the test rows.

    ``logs`` (optional) receives a copy of ``metrics.json``,
    ``eval_by_group.csv``, ``train_state.json`` and ``dvclive/`` (for a DVC
    stage that tracks metrics outside the model directory).
    """
    if not call.datasets:
        raise TrainingError("no datasets given; pass --dataset at least once")
    if logs is not None:
        check_out(logs, "training-logs", [call.model, *call.datasets, call.out])
    adapter = load_generative(call.model, revision=call.revision)
    rows = load_rows(call.datasets, cfg.train_split)
    check_answers(adapter, rows)
    train, valid = _holdout(rows, cfg.valid_rows, cfg.loop.seed)
    pretrained: dict[str, float] = {}
    if cfg.vision_pretrain is not None:
        # deterministic given its seed, so a resumed run redoes it and then loads its checkpoint
        pretrained = pretrain_vision(adapter, train, cfg.vision_pretrain,
                                     progress=call.accelerator is None or call.accelerator.is_main_process)  # fmt: skip
    if cfg.balance:
        train = _balance(train)
    test = load_rows(call.datasets, cfg.eval_split, allow_empty=True)
    if cfg.eval_max_rows is not None:
        test = [r for ds in dict.fromkeys(r.dataset for r in test)
                for r in [x for x in test if x.dataset == ds][: cfg.eval_max_rows]]  # fmt: skip
    from accelerate import PartialState

    world = call.accelerator.num_processes if call.accelerator is not None else PartialState().num_processes
    sampler = curriculum_sampler(train, cfg.curriculum, cfg.loop.total_steps(len(train), world), cfg.loop.seed)
    sizes = freeze_except(adapter, list(cfg.train_groups))
    images = ImageCache()
    run = VlmRun.from_call(call, adapter, train,
                           {"trainable_parameters": sizes, "train_rows": len(train), "valid_rows": len(valid)},
                           valid=valid or None, valid_metric="accuracy", sampler=sampler)  # fmt: skip
    table: dict[str, pl.DataFrame] = {}

    def evaluate(tmp: Path, result: LoopResult) -> dict[str, Any]:
        if not test:
            return dict(pretrained)
        metrics, by_group = evaluate_rows(adapter, train, test, max_new_tokens=cfg.max_new_tokens, images=images)
        by_group.write_csv(tmp / "eval_by_group.csv")
        table["by_group"] = by_group
        return {**pretrained, **metrics}

    _, metrics = run_vlm_training(run, write_extra=evaluate, callbacks=call.callbacks, accelerator=call.accelerator)
    if logs is not None and (call.accelerator is None or call.accelerator.is_main_process):
        with atomic_dir(logs, kind="training-logs", inputs=[call.model, *call.datasets]) as tmp:
            for name in ("metrics.json", "eval_by_group.csv", "train_state.json", "training_args.json"):
                if (call.out / name).is_file():
                    shutil.copy2(call.out / name, tmp / name)
            if (call.out / "dvclive").is_dir():
                shutil.copytree(call.out / "dvclive", tmp / "dvclive")
    return metrics
