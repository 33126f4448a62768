"""`train clip` on a class-folders import of grades: classes in grade order, keep-best by validation MAE in grade steps."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from vlmscope.cli.app import app
from vlmscope.data.importers import ClassFoldersImportConfig, import_class_folders
from vlmscope.training.data import load_examples
from vlmscope.training.trainers.clip import class_grades, class_names, classify_metrics

GRADES = ("0", "1", "3", "10")
"""Grade folders: not contiguous, and "10" sorts before "3" by name."""


def _knee_tree(root: Path) -> Path:
    """<root>/<split>/<grade>/<n>.png, a distinct colour per grade so a few steps can learn something."""
    n_per = {"train": 3, "val": 1, "test": 1}
    for split, n in n_per.items():
        for k, g in enumerate(GRADES):
            for i in range(n):
                (root / split / g).mkdir(parents=True, exist_ok=True)
                Image.new("RGB", (20, 20), (60 * k, 255 - 60 * k, 10 * i)).save(root / split / g / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def knee_ds(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("knee")
    import_class_folders([_knee_tree(tmp / "src")], tmp / "ds")
    return tmp / "ds"


def test_classify_metrics_mae_in_grade_steps() -> None:
    logits = torch.tensor([[0.0, 9.0, 0.0], [9.0, 0.0, 0.0], [0.0, 0.0, 9.0]])  # predicts classes 1, 0, 2
    target = torch.tensor([0, 0, 1])
    assert classify_metrics(logits, target) == {"accuracy": pytest.approx(1 / 3), "mae": pytest.approx(2 / 3)}
    # grades 0, 2, 4: errors |2-0| = 2, 0, |4-2| = 2
    assert classify_metrics(logits, target, [0, 2, 4])["mae"] == pytest.approx(4 / 3)
    assert classify_metrics(logits, target, [0, 1, 2]) == classify_metrics(logits, target)  # same bits as the index MAE


def test_class_order_and_grades_from_names_or_the_grade_column(knee_ds: Path, tmp_path: Path) -> None:
    rows = load_examples(knee_ds, ["train", "valid", "test"])
    assert class_names(rows, "label") == ["0", "1", "3", "10"]  # by grade, not "10" before "3"
    assert class_grades(rows, ["0", "1", "3", "10"], "label") == [0, 1, 3, 10]
    # the answers ("Grade 3") are graded too, so the default class (the answer) sorts the same way
    assert class_names(rows, None) == ["Grade 0", "Grade 1", "Grade 3", "Grade 10"]
    # names that are no grades, mapped by grade_names: the grade column decides the order and the steps
    src = tmp_path / "named"
    for name in ("severe", "doubtful", "none"):
        (src / "train" / name).mkdir(parents=True)
        Image.new("RGB", (8, 8)).save(src / "train" / name / "a.png")
    import_class_folders([src], tmp_path / "ds", ClassFoldersImportConfig(grade_names={"none": 0, "doubtful": 1, "severe": 4}))
    named = load_examples(tmp_path / "ds", ["train"])
    assert class_names(named, "label") == ["none", "doubtful", "severe"]
    assert class_grades(named, ["none", "doubtful", "severe"], "label") == [0, 1, 4]
    # not a grade scale: a class without a grade, or two classes of one grade
    assert class_grades(rows, ["0", "1", "mild"], "label") is None
    assert class_grades(rows, ["1", "grade 1"], "label") is None


def _curve(out: Path, name: str) -> dict[int, float]:
    (path,) = [p for p in out.rglob("*.tsv") if p.stem == name and "valid" in p.parts]
    with open(path) as fh:
        return {int(r["step"]): float(r[name]) for r in csv.DictReader(fh, delimiter="\t")}


def test_train_clip_on_imported_grades_keeps_the_best_validation_mae(
    tiny_checkpoint: Callable[[str], Path], knee_ds: Path, tmp_path: Path
) -> None:
    from vlmscope.models import load_model
    from vlmscope.training.trainers.clip import PrototypeClassifier, _logits, _Pixels

    out = tmp_path / "clip"
    res = CliRunner().invoke(app, [
        "train", "clip", "--model", str(tiny_checkpoint("clip")), "--dataset", str(knee_ds), "--out", str(out),
        "--class-column", "label", "--metric", "mae", "--max-steps", "6", "--batch-size", "4", "--lr", "1e-3",
        "--eval-every", "1", "--checkpoint-every", "0", "--prompts", "knee x-ray, KL grade {}",
        "--run-dir", str(tmp_path / "run"), "--set", "loop.keep_run_dir=true",  # keep the validation curves
    ])  # fmt: skip
    assert res.exit_code == 0, res.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert {"valid_mae", "valid_accuracy", "test_mae", "test_accuracy", "test_mae_zero_shot", "best_step"} <= set(metrics)
    assert metrics["train_rows"] == 12 and metrics["valid_rows"] == 4 and metrics["classes"] == 4
    protos = json.loads((out / "prototypes.json").read_text())
    assert protos["classes"] == ["0", "1", "3", "10"] and protos["grades"] == [0, 1, 3, 10]
    assert protos["texts"][3] == "knee x-ray, KL grade 10" and protos["class_column"] == "label"

    # keep-best: the step with the lowest validation MAE (the first of equals), its metrics reported
    state = json.loads((out / "train_state.json").read_text())
    curve = _curve(tmp_path / "run", "mae")
    assert sorted(curve) == list(range(1, 7))
    best_step = min(curve, key=lambda s: (curve[s], s))
    assert state["best"]["metric"] == "mae" and state["best"]["step"] == best_step == metrics["best_step"]
    assert metrics["valid_mae"] == pytest.approx(curve[best_step])

    # the saved (best) weights reproduce the reported test MAE in grade steps
    adapter = load_model(out)
    clf = PrototypeClassifier(adapter, adapter.text_embeddings(protos["texts"]))
    test = load_examples(knee_ds, ["test"])
    pred = _logits(clf, _Pixels(adapter.processor, test, True), len(test)).argmax(-1).tolist()
    grade = {c: g for c, g in zip(protos["classes"], protos["grades"], strict=True)}
    truth = [grade[dict(r.extra)["label"]] for r in test]
    want = sum(abs(protos["grades"][p] - t) for p, t in zip(pred, truth, strict=True)) / len(test)
    assert metrics["test_mae"] == pytest.approx(want, abs=1e-6)
