"""The one generate-and-score: batches in order, every text scored by the manifest row's rules."""

from __future__ import annotations

from typing import Any

import polars as pl
import pytest

from vlmscope.errors import DatasetError
from vlmscope.evaluation.scoring import NONE_ANSWER, generate_and_score, prepare_rows, score_text


class _Echo:
    """A stand-in generator: the "encoded batch" is the row indices; it answers with the canned texts."""

    def __init__(self, texts: list[str]) -> None:
        self.texts = texts
        self.calls: list[tuple[list[int], int]] = []

    def generate(self, batch: list[int], *, max_new_tokens: int) -> list[str]:
        self.calls.append((batch, max_new_tokens))
        return [self.texts[i] for i in batch]


def test_generate_and_score_batches_in_order_and_scores_each_row() -> None:
    rows: list[dict[str, Any]] = [
        {"answer_type": "choice", "answer": "B", "choices": ["red", "blue"], "answer_index": 1},
        {"answer_type": "count", "answer": "3", "choices": None, "answer_index": None},
        {"answer_type": "open", "answer": "A dog.", "choices": None, "answer_index": None},
        {"answer_type": "choice", "answer": "red", "choices": ["red", "blue"], "answer_index": 0},
        {"answer_type": "count", "answer": "2", "choices": None, "answer_index": None},
    ]
    texts = ["B", "4", "a dog", "B", "2 shapes"]
    adapter, ticks = _Echo(texts), []
    out = generate_and_score(adapter, rows, list, batch_size=2, max_new_tokens=7, tick=ticks.append)
    assert adapter.calls == [([0, 1], 7), ([2, 3], 7), ([4], 7)]
    assert ticks == [2, 2, 1]
    assert [t for t, _ in out] == texts
    # lettered row: "B" is option 1; count 4 != 3; open text normalises; unlettered row: a bare letter is no option
    assert [s.correct for _, s in out] == [True, False, True, False, True]
    assert out[0][1].prediction == "blue" and out[1][1].parsed == 4 and out[3][1].parsed is None


def test_none_truth_choice_rows_are_right_only_when_no_option_is_picked() -> None:
    """The relational study's "None" ground truth: a reply naming no option is right, any option (letter) wrong."""
    df = pl.DataFrame(
        {
            "sample_id": ["n", "l"],
            "answer": ["None", "B"],
            "answer_type": ["choice", "choice"],
            "choices": [["yes", "no"], ["yes", "no"]],
            "answer_index": [None, 1],
        },
        schema_overrides={"answer_index": pl.Int64},
    )
    rows = prepare_rows(df, "m").to_dicts()
    assert [r["gt_class"] for r in rows] == [NONE_ANSWER, "no"]
    verdicts = {t: score_text(rows[0], t) for t in ("none", "None of the options.", "", "A", "b)", "no", "(B)")}
    assert {t: v.correct for t, v in verdicts.items()} == {
        "none": True, "None of the options.": True, "": True, "A": False, "b)": False, "no": False, "(B)": False
    }  # fmt: skip
    assert verdicts["none"].prediction == NONE_ANSWER and verdicts["A"].prediction == "yes"
    assert score_text(rows[1], "none").correct is False and score_text(rows[1], "B").correct is True
    with pytest.raises(DatasetError, match=r"sample 'x' has answer_index None outside its 2 choices"):
        prepare_rows(df.with_columns(pl.lit("x").alias("sample_id"), pl.lit("yes").alias("answer")).head(1), "m")
