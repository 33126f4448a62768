"""``evaluate`` on a tiny real model over a class-folders import: grade rows scored exactly, MAE written."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from vlmscope.data.importers import import_class_folders
from vlmscope.evaluation import EvaluateConfig, evaluate


@pytest.fixture
def knee_dataset(tmp_path: Path) -> Path:
    """Five test images in grade folders 0, 1, 2 (two, two, one), imported as ordinal rows."""
    root = tmp_path / "knee"
    for k, (grade, n) in enumerate((("0", 2), ("1", 2), ("2", 1))):
        for i in range(n):
            (root / "test" / grade).mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (16, 16), (40 * k, 20 * i, 90)).save(root / "test" / grade / f"{i}.png")
    import_class_folders([root], tmp_path / "ds")
    return tmp_path / "ds"


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_grade_rows_report_accuracy_and_mae(
    tiny_generative: tuple[Path, Any], knee_dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Encoding runs on the real model; ``generate`` returns fixed texts so the errors are known by hand."""
    path, adapter = tiny_generative
    # rows in order: grades 0, 0, 1, 1, 2
    outputs = ["Grade 0", "KL grade 2", "grade 1 or 2", "Grade 10", "The KL grade is 2."]
    monkeypatch.setattr(adapter, "generate", lambda batch, max_new_tokens: [outputs.pop(0) for _ in batch.last_index])
    out = tmp_path / "ev"
    metrics = evaluate(str(path), knee_dataset, out, EvaluateConfig(batch_size=2), adapter=adapter, progress=False)
    preds = _jsonl(out / "predictions.jsonl")
    assert [p["answer_type"] for p in preds] == ["grade"] * 5
    assert [p["parsed"] for p in preds] == [0, 2, None, 10, 2]
    assert [p["correct"] for p in preds] == [True, False, False, False, True]
    assert metrics["accuracy"] == pytest.approx(2 / 5) and metrics["n_unparsed"] == 1
    # |0-0| + |2-0| + |10-1| + |2-2| = 11 over the 4 parsed rows
    assert metrics["grade/mae"] == pytest.approx(11 / 4) and metrics["grade/unparsed_rate"] == pytest.approx(1 / 5)
    assert metrics["grade/grade/1/mae"] == pytest.approx(9.0) and metrics["grade/grade/1/n_unparsed"] == 1
    assert metrics["accuracy/label/0"] == pytest.approx(0.5)
    # macro accuracy over the true grades: (1/2 + 0/2 + 1/1) / 3
    assert metrics["macro_accuracy"] == pytest.approx(0.5)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["grade/mae"] == metrics["grade/mae"] and "grade/grade/1/mae" not in summary


def test_real_generation_on_grade_rows(tiny_generative: tuple[Path, Any], knee_dataset: Path, tmp_path: Path) -> None:
    """The tiny random model's own text: whatever it says, the counts add up and nothing is made up."""
    path, adapter = tiny_generative
    metrics = evaluate(
        str(path), knee_dataset, tmp_path / "g", EvaluateConfig(max_new_tokens=3), adapter=adapter, progress=False
    )
    preds = _jsonl(tmp_path / "g" / "predictions.jsonl")
    assert metrics["grade/n_parsed"] + metrics["grade/n_unparsed"] == 5 == len(preds)
    assert metrics["grade/n_unparsed"] == sum(p["parsed"] is None for p in preds)
    assert ("grade/mae" in metrics) == (metrics["grade/n_parsed"] > 0)


def test_cli_evaluate_prints_the_grade_numbers(tiny_generative: tuple[Path, Any], knee_dataset: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from vlmscope.cli.app import app

    path, _ = tiny_generative
    out = tmp_path / "cli"
    res = CliRunner().invoke(app, ["evaluate", "--model", str(path), "--dataset", str(knee_dataset), "--out", str(out),
                                   "--max-new-tokens", "2"])  # fmt: skip
    assert res.exit_code == 0, res.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert f"grade/unparsed_rate {metrics['grade/unparsed_rate']:.4f}" in res.output
