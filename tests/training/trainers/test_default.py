"""The embedded default model's trainer on tiny data: all weights train, evaluation vs baselines.

How good the default model gets is measured by benchmarks/train_default.py (minutes, not a test).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest
import torch

from vlmscope.models import load_model
from vlmscope.models.weights import read_tensors, tensor_names
from vlmscope.training.config import LoopConfig
from vlmscope.training.data import load_examples
from vlmscope.training.trainers.default_model import DefaultTrainConfig, baselines, train_default


def test_default_trains_everything_and_reports_per_dataset(composite: Path, tiny_dataset: Callable[..., Path],
                                                           tmp_path: Path) -> None:  # fmt: skip
    color, counting = tiny_dataset("color", 16), tiny_dataset("counting", 16)
    pretrain = DefaultTrainConfig().vision_pretrain
    assert pretrain is not None
    cfg = DefaultTrainConfig(valid_rows=2, max_new_tokens=3,
                             loop=LoopConfig(max_steps=3, batch_size=4, lr=1e-3, eval_every=2, checkpoint_every=0),
                             vision_pretrain=pretrain.model_copy(update={"steps": 3, "batch_size": 4}))  # fmt: skip
    out, logs = tmp_path / "default", tmp_path / "logs"
    # no large-shape or shape-question sets: the first curriculum stages and the shape and colour heads are skipped
    with pytest.warns(UserWarning, match="skipped") as seen:
        m = train_default(composite, [color, counting], out, cfg, logs=logs)
    assert sum("vision pre-training head" in str(w.message) for w in seen) == 2
    assert 1 / 9 <= m["pretrain/counting/count/chance"] <= 1 / 2  # one class per count in the training rows
    assert 0 <= m["pretrain/counting/count/accuracy"] <= 1
    for ds in (color.name, counting.name):
        assert {f"{ds}/accuracy", f"{ds}/chance", f"{ds}/majority", f"{ds}/n"} <= set(m)
    _check_accuracy_and_majority(m, out, [color, counting], cfg)
    assert m[f"{color.name}/chance"] == pytest.approx(0.1)  # ten colour options
    names = tensor_names(composite)
    a, b = read_tensors(composite, names), read_tensors(out, names)
    moved = {n.split(".")[0] + "." + n.split(".")[1] for n in names if not torch.equal(a[n], b[n])}
    assert any("vision" in n for n in moved) and any("projector" in n for n in moved)
    assert any("language" in n for n in moved)
    # the tower trains in the pre-training only; the answers train projector and LM
    trainable = json.loads((out / "training_args.json").read_text())["trainable_parameters"]
    assert set(trainable) == {"projector", "language"}
    assert load_model(out).family == "composite"
    assert json.loads((logs / "metrics.json").read_text()) == json.loads((out / "metrics.json").read_text())
    groups = pl.read_csv(logs / "eval_by_group.csv")
    assert set(groups["dataset"]) == {color.name, counting.name}


def _check_accuracy_and_majority(m: dict, out: Path, datasets: list[Path], cfg: DefaultTrainConfig) -> None:
    """Recompute each dataset's test accuracy and majority baseline from scratch and compare.

    Accuracy: the saved checkpoint greedily answers every test row, one row at a time, scored by the
    evaluation stage's parser. Majority: the most common answer per (dataset, query type) among the
    training rows the trainer kept after its validation hold-out (``training_args.json`` counts them).
    """
    from collections import Counter

    from PIL import Image

    from vlmscope.evaluation.scoring import score_text
    from vlmscope.training.trainers.default_model import _holdout

    adapter = load_model(out)
    train_all = [r for ds in datasets for r in load_examples(ds, ["train"])]
    train, _ = _holdout(train_all, cfg.valid_rows, cfg.loop.seed)
    assert json.loads((out / "training_args.json").read_text())["valid_rows"] == len(train_all) - len(train)
    for ds in datasets:
        test = load_examples(ds, ["test"])
        assert m[f"{ds.name}/n"] == len(test) > 0
        correct = []
        for r in test:
            text = adapter.generate(adapter.encode([Image.open(r.image).convert("RGB")], [r.prompt]),
                                    max_new_tokens=cfg.max_new_tokens)[0]  # fmt: skip
            row = {"answer_type": r.answer_type, "answer": r.answer, "answer_index": r.answer_index,
                   "choices": list(r.choices) if r.choices is not None else None}  # fmt: skip
            correct.append(score_text(row, text).correct)
        assert m[f"{ds.name}/accuracy"] == pytest.approx(sum(correct) / len(test))

        def group(r) -> tuple[str, str]:
            return r.dataset, str(dict(r.extra).get("query_type", "all"))

        counts: dict[tuple[str, str], Counter] = {}
        for r in train:
            counts.setdefault(group(r), Counter())[r.answer.strip().casefold()] += 1
        hits = []
        for r in test:
            top = counts[group(r)]
            # ties go to the answer seen first in manifest order (Counter keeps insertion order)
            best = next(a for a in top if top[a] == max(top.values()))
            hits.append(r.answer.strip().casefold() == best)
        assert m[f"{ds.name}/majority"] == pytest.approx(sum(hits) / len(test))


def test_baselines_use_training_answers(tiny_dataset: Callable[..., Path]) -> None:
    ds = tiny_dataset("color", 16)
    train, test = load_examples(ds, ["train"]), load_examples(ds, ["test"])
    out = baselines(train, test)
    assert all(c == pytest.approx(0.1) for c, _ in out)
    common = max({r.answer for r in train}, key=[r.answer for r in train].count)
    assert [m for _, m in out] == [r.answer == common for r in test]


def test_curriculum_draws_easy_rows_first(tiny_dataset: Callable[..., Path]) -> None:
    from vlmscope.errors import ConfigError
    from vlmscope.training.trainers.default_model import CurriculumStage, curriculum_sampler

    color, counting = tiny_dataset("color", 16), tiny_dataset("counting", 16)
    rows = load_examples(color, ["train"]) + load_examples(counting, ["train"])
    stage = CurriculumStage(until=0.5, datasets=("color",), where={"n_shapes": (1,)})
    sample = curriculum_sampler(rows, [stage], total_steps=10, seed=0)
    assert sample is not None
    easy = {i for i, r in enumerate(rows) if r.dataset == color.name and dict(r.extra)["n_shapes"] == 1}
    assert easy
    for step in range(5):
        assert set(sample(step, 4).tolist()) <= easy
    late = set().union(*(set(sample(s, 4).tolist()) for s in range(5, 10)))
    assert late - easy  # after the stage every row is eligible
    again = curriculum_sampler(rows, [stage], total_steps=10, seed=0)
    assert again is not None and all((sample(s, 4) == again(s, 4)).all() for s in range(10))
    with pytest.raises(ConfigError, match="matches no training row"):
        curriculum_sampler(rows, [CurriculumStage(until=0.5, datasets=("nope",))], total_steps=10, seed=0)
    # an optional stage without rows is skipped (warned), and the next stage starts at step 0
    missing = CurriculumStage(until=0.3, datasets=("nope",), optional=True)
    with pytest.warns(UserWarning, match="matches no training row; skipped"):
        skipping = curriculum_sampler(rows, [missing, stage], total_steps=10, seed=0)
    assert skipping is not None and all((skipping(s, 4) == sample(s, 4)).all() for s in range(10))
