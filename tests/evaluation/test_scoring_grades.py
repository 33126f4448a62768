"""Ordinal rows (``answer_type`` grade): scored by ``parse_grade``, MAE + unparsed rate overall and per group."""

from __future__ import annotations

import math
from typing import Any

import polars as pl
import pytest

from vlmscope.errors import DatasetError
from vlmscope.evaluation import EvaluateConfig
from vlmscope.evaluation.metrics import CountStats, count_stats_by_group, flatten_metrics
from vlmscope.evaluation.runner import headline
from vlmscope.evaluation.scoring import generate_and_score, pick_group_columns, prepare_rows, score_text, summarize

TRUTH = [0, 1, 2, 2, 3, 4, 4]
OUTPUTS = ["Grade 0", "KL grade 3", "grade 2.", "2", "grades 3 or 4", "The KL grade is 10", "I cannot tell"]
PARSED = [0, 3, 2, 2, None, 10, None]


def _manifest() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "sample_id": [f"test/{g}/{i}.png" for i, g in enumerate(TRUTH)],
            "image": ["images/x.png"] * len(TRUTH),
            "prompt": ["What is the KL grade?"] * len(TRUTH),
            "answer": [f"Grade {g}" for g in TRUTH],
            "split": ["test"] * len(TRUTH),
            "answer_type": ["grade"] * len(TRUTH),
            "label": [str(g) for g in TRUTH],
            "grade": TRUTH,
            "site": ["a", "a", "a", "b", "b", "b", "b"],
        },
        schema_overrides={"grade": pl.Int64},
    )


def _predictions(df: pl.DataFrame, outputs: list[str]) -> pl.DataFrame:
    """The runner's predictions frame: verdict columns beside the prepared rows."""
    scored = [score_text(r, t) for r, t in zip(df.iter_rows(named=True), outputs, strict=True)]
    return df.with_columns(
        pl.Series("correct", [s.correct for s in scored], dtype=pl.Boolean),
        pl.Series("parsed_count", [None] * df.height, dtype=pl.Int64),
        pl.Series(
            "parsed_grade", [s.parsed if k == "grade" else None for s, k in zip(scored, df["answer_type"], strict=True)],
            dtype=pl.Int64,
        ),
        pl.Series("unparsed", [s.prediction is None for s in scored], dtype=pl.Boolean),
    )


def test_grade_rows_score_by_parsed_grade() -> None:
    df = prepare_rows(_manifest(), "m")
    assert df["gt_class"].to_list() == [str(g) for g in TRUTH]
    rows = list(df.iter_rows(named=True))
    verdicts = [score_text(r, t) for r, t in zip(rows, OUTPUTS, strict=True)]
    assert [v.parsed for v in verdicts] == PARSED
    assert [v.correct for v in verdicts] == [True, False, True, True, False, False, False]
    assert verdicts[1].prediction == "3" and verdicts[4].prediction is None
    assert not score_text(rows[5], "Grade 1").correct  # "Grade 10" vs 1, "Grade 4" vs 1: never a substring match


def test_summarize_reports_grade_mae_and_unparsed_rate_overall_and_per_group() -> None:
    df = prepare_rows(_manifest(), "m")
    groups = pick_group_columns(df, EvaluateConfig())
    assert groups == ["label", "grade", "site"]
    flat, table = summarize(_predictions(df, OUTPUTS), groups, EvaluateConfig())
    assert flat["accuracy"] == pytest.approx(3 / 7) and flat["n_unparsed"] == 2
    # parsed rows: |0-0| + |3-1| + |2-2| + |2-2| + |10-4| = 8 over 5; the 2 unparsed rows are no distance at all
    assert flat["grade/mae"] == pytest.approx(8 / 5)
    assert flat["grade/n_parsed"] == 5 and flat["grade/n_unparsed"] == 2
    assert flat["grade/unparsed_rate"] == pytest.approx(2 / 7)
    # per group: site a = rows 0-2 (errors 0, 2, 0), site b = rows 3-6 (errors 0, -, 6, -)
    assert flat["grade/site/a/mae"] == pytest.approx(2 / 3) and flat["grade/site/a/unparsed_rate"] == 0.0
    assert flat["grade/site/b/mae"] == pytest.approx(3.0) and flat["grade/site/b/n_unparsed"] == 2
    assert flat["grade/grade/4/mae"] == pytest.approx(6.0) and flat["grade/grade/4/unparsed_rate"] == 0.5
    assert flat["accuracy/site/a"] == pytest.approx(2 / 3)
    assert "count/mae" not in flat and "count/n_parsed" not in flat  # no count rows
    assert table.columns == ["group", "value", "n", "n_correct", "accuracy", "macro_accuracy"]
    # the headline keeps the overall grade numbers, not the per-group ones
    head = headline(flat)
    assert head["grade/mae"] == flat["grade/mae"] and "grade/site/a/mae" not in head
    assert all(isinstance(v, (int, float)) and math.isfinite(v) for v in flat.values())


def test_no_parsed_grade_means_no_mae_not_zero() -> None:
    df = prepare_rows(_manifest(), "m")
    flat, _ = summarize(_predictions(df, ["no idea"] * df.height), [], EvaluateConfig())
    assert "grade/mae" not in flat and flat["grade/unparsed_rate"] == 1.0 and flat["accuracy"] == 0.0


def test_rows_without_grades_get_no_grade_metrics() -> None:
    df = prepare_rows(_manifest().with_columns(answer_type=pl.lit("open")), "m")
    flat, _ = summarize(_predictions(df, OUTPUTS), [], EvaluateConfig())
    assert not any(k.startswith("grade/") for k in flat)


def test_a_grade_row_whose_answer_states_no_grade_is_a_dataset_error() -> None:
    bad = _manifest().with_columns(answer=pl.Series(["Grade 0", "Grade 1 or 2", *["Grade 2"] * 5]))
    with pytest.raises(DatasetError, match=r"m: grade sample 'test/1/1.png' has answer 'Grade 1 or 2', which states no single grade"):
        prepare_rows(bad, "m")


def test_class_rows_score_as_open_answers() -> None:
    df = prepare_rows(_manifest().with_columns(answer_type=pl.lit("class"), answer=pl.lit("Moderate")), "m")
    row = next(df.iter_rows(named=True))
    assert df["gt_class"][0] == "moderate"
    assert score_text(row, "moderate.").correct and not score_text(row, "moderately").correct


def test_count_stats_by_group_and_flattened_keys() -> None:
    df = pl.DataFrame({"p": [1, None, 3, 0], "t": [1, 2, 1, 4], "g": ["x", "x", "y", None]})
    by = count_stats_by_group(df, "g", predicted="p", truth="t")
    assert by == {("g", "null"): CountStats(4.0, 1, 0), ("g", "x"): CountStats(0.0, 1, 1), ("g", "y"): CountStats(2.0, 1, 0)}
    assert by[("g", "x")].unparsed_rate == 0.5 and CountStats(None, 0, 0).unparsed_rate is None
    flat = flatten_metrics(overall={}, grades=CountStats(None, 0, 3), grades_by_group=by)
    assert flat["grade/n_unparsed"] == 3 and "grade/mae" not in flat and flat["grade/unparsed_rate"] == 1.0
    assert flat["grade/g/y/mae"] == 2.0 and flat["grade/g/x/unparsed_rate"] == 0.5


class _Echo:
    def __init__(self, texts: list[str]) -> None:
        self.texts = texts

    def generate(self, batch: list[int], *, max_new_tokens: int) -> list[str]:
        return [self.texts[i] for i in batch]


def test_training_validation_scores_grade_rows_like_the_evaluation() -> None:
    """The trainers' validation rows carry only answer_type and answer: grade rows score the same."""
    rows: list[dict[str, Any]] = [
        {"answer_type": "grade", "answer": f"Grade {g}", "choices": None, "answer_index": None} for g in TRUTH
    ]
    out = generate_and_score(_Echo(OUTPUTS), rows, list, batch_size=3, max_new_tokens=5)
    assert [s.parsed for _, s in out] == PARSED
