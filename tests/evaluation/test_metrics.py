"""Metrics against values computed by hand in the comments."""

from __future__ import annotations

import math

import polars as pl
import pytest

from vlmscope.errors import DatasetError
from vlmscope.evaluation import (
    EvaluateConfig,
    accuracy,
    count_stats,
    flatten_metrics,
    group_table,
    macro_accuracy,
    pair_rows,
    paired_by_group,
    paired_stats,
    pick_group_columns,
    prepare_rows,
    score_text,
    summarize,
)

# 10 predictions; classes: cat x6 (4 correct), dog x3 (1 correct), owl x1 (0 correct)
PRED = pl.DataFrame(
    {
        "label": ["cat"] * 6 + ["dog"] * 3 + ["owl"],
        "correct": [True, True, True, True, False, False, True, False, False, False],
        "seen": [True] * 6 + [False] * 4,
    }
)


def test_accuracy_and_macro_accuracy() -> None:
    assert accuracy(PRED) == pytest.approx(5 / 10)
    # macro = mean(4/6, 1/3, 0/1) = (0.6667 + 0.3333 + 0) / 3 = 1/3
    assert macro_accuracy(PRED, label="label") == pytest.approx(1 / 3)
    with pytest.raises(DatasetError, match="no rows"):
        accuracy(PRED.head(0))
    with pytest.raises(DatasetError, match=r"needs column\(s\) \['nope'\]"):
        macro_accuracy(PRED, label="nope")


def test_group_table_with_macro() -> None:
    t = group_table(PRED, ["seen"], label="label")
    assert t.columns == ["group", "value", "n", "n_correct", "accuracy", "macro_accuracy"]
    rows = {r["value"]: r for r in t.iter_rows(named=True)}
    # seen: 6 cats, 4 right -> 4/6, macro over {cat} = 4/6
    assert rows["true"]["n"] == 6 and rows["true"]["n_correct"] == 4
    assert rows["true"]["accuracy"] == pytest.approx(4 / 6) and rows["true"]["macro_accuracy"] == pytest.approx(4 / 6)
    # unseen: dog 1/3, owl 0/1 -> accuracy 1/4, macro (1/3 + 0)/2 = 1/6
    assert rows["false"]["accuracy"] == pytest.approx(1 / 4)
    assert rows["false"]["macro_accuracy"] == pytest.approx(1 / 6)


# relations-style pairs: 6 sources, each with an original and a masked row
#   source: s1 s2 s3 s4 s5 s6
#   orig:   T  T  T  F  F  T
#   masked: T  F  T  T  F  F
PAIRS = pl.DataFrame(
    {
        "source_id": [f"s{i}" for i in range(1, 7)] * 2,
        "variant": ["original"] * 6 + ["masked"] * 6,
        "correct": [True, True, True, False, False, True] + [True, False, True, True, False, False],
        "query_type": ["count", "count", "count", "shape", "shape", "shape"] * 2,
    }
)


def test_paired_stats_takes_other_column_names() -> None:
    renamed = PAIRS.rename({"variant": "kind", "correct": "ok"}).with_columns(
        pl.col("kind").replace({"original": "orig", "masked": "mask"})
    )
    st = paired_stats(renamed, key=["source_id"], variant="kind", original="orig", masked="mask", correct="ok")
    assert st == paired_stats(PAIRS, key=["source_id"])


def test_paired_stats_by_hand() -> None:
    st = paired_stats(PAIRS, key=["source_id"])
    assert st is not None and st.n_pairs == 6
    assert st.accuracy_original == pytest.approx(4 / 6)
    assert st.accuracy_masked == pytest.approx(3 / 6)
    assert st.accuracy_drop == pytest.approx(1 / 6)
    # retain: correct on both (s1, s3) / correct on original (s1 s2 s3 s6) = 2/4
    assert st.retain_rate == pytest.approx(0.5)
    # fix: correct masked & wrong original (s4) / wrong original (s4, s5) = 1/2
    assert st.fix_rate == pytest.approx(0.5)


def test_paired_stats_per_group_and_edge_cases() -> None:
    pairs = pair_rows(PAIRS, key=["source_id"], carry=["query_type"])
    by = paired_by_group(pairs, "query_type")
    # count: orig TTT, masked TFT -> drop 1/3, retain 2/3, no wrong originals -> fix None
    c = by[("query_type", "count")]
    assert (c.accuracy_original, c.accuracy_masked, c.retain_rate, c.fix_rate) == (
        1.0,
        pytest.approx(2 / 3),
        pytest.approx(2 / 3),
        None,
    )
    s = by[("query_type", "shape")]
    assert s.retain_rate == 0.0 and s.fix_rate == pytest.approx(0.5)
    # unmatched rows are ignored; no pairs -> None
    assert paired_stats(PAIRS.filter(pl.col("variant") == "original"), key=["source_id"]) is None
    with pytest.raises(DatasetError, match="not unique among variant='original'"):
        paired_stats(pl.concat([PAIRS, PAIRS.head(1)]), key=["source_id"])


def test_count_stats_ignores_unparsed_rows() -> None:
    df = pl.DataFrame({"predicted_count": [3, 5, -1, 10, None], "true_count": [3, 2, 4, 1, 7]})
    st = count_stats(df)
    # |3-3| + |5-2| + |10-1| = 0 + 3 + 9 = 12 over 3 parsed rows = 4
    assert st.mae == pytest.approx(4.0) and st.n_parsed == 3 and st.n_unparsed == 2
    assert count_stats(df.filter(pl.col("predicted_count") == -1)).mae is None


def test_flatten_metrics_keys_and_no_made_up_zeros() -> None:
    paired = paired_stats(PAIRS.filter(pl.col("source_id").is_in(["s1", "s3"])), key=["source_id"])
    flat = flatten_metrics(
        overall={"accuracy": 0.5, "skip": None},
        groups=group_table(PRED, ["seen"], label="label"),
        paired=paired,
        counts=count_stats(pl.DataFrame({"predicted_count": [1], "true_count": [2]})),
    )
    assert "skip" not in flat and "paired/fix_rate" not in flat  # never wrong on original -> undefined
    assert flat["paired/retain_rate"] == 1.0
    assert flat["accuracy/seen/false"] == pytest.approx(0.25) and flat["n/seen/true"] == 6
    assert flat["macro_accuracy/seen/false"] == pytest.approx(1 / 6)
    assert flat["count/mae"] == 1.0 and flat["count/n_unparsed"] == 0
    assert all(isinstance(v, (int, float)) and math.isfinite(v) for v in flat.values())


def _manifest() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "sample_id": ["a", "b", "c", "d", "e"],
            "image": ["images/x.png"] * 5,
            "prompt": ["q"] * 5,
            "answer": ["B", "left of", "10", "Zebra", "3"],
            "split": ["test"] * 5,
            "answer_type": ["choice", "choice", "count", "open", None],
            "choices": [["red", "blue"], ["left of", "right of"], None, None, None],
            "answer_index": [1, 0, None, None, None],
            "query_type": ["color", "spatial", "count", "open", "count"],
            "scene": ['{"entities": [1, 2, 3], "relations": "a long json blob"}'] * 5,
            "image_id": ["i1", "i2", "i3", "i4", "i5"],
        },
        schema_overrides={"choices": pl.List(pl.String), "answer_index": pl.Int64},
    )


def test_prepare_rows_and_score_text_by_answer_type() -> None:
    df = prepare_rows(_manifest(), "m")
    assert df["answer_type"].to_list() == ["choice", "choice", "count", "open", "count"]  # null -> inferred
    assert df["gt_class"].to_list() == ["blue", "left of", "10", "zebra", "3"]
    rows = list(df.iter_rows(named=True))
    assert score_text(rows[0], "(B)").correct  # lettered row: letters count
    assert score_text(rows[0], "blue").correct
    assert not score_text(rows[1], "B").correct and score_text(rows[1], "B").parsed is None  # not lettered
    assert score_text(rows[1], "Left of.").correct
    assert score_text(rows[2], "10").correct and not score_text(rows[2], "1").correct
    assert score_text(rows[2], "ten").parsed == 10
    assert score_text(rows[3], "the zebra.").correct and not score_text(rows[3], "zebras").correct
    assert score_text(rows[4], "none").parsed == -1 and score_text(rows[4], "none").prediction is None


def test_prepare_rows_errors_name_the_sample() -> None:
    bad = _manifest().with_columns(answer_index=pl.Series([5, 0, None, None, None], dtype=pl.Int64))
    with pytest.raises(DatasetError, match=r"m: sample 'a' has answer_index 5 outside its 2 choices"):
        prepare_rows(bad, "m")
    bad = _manifest().with_columns(answer_type=pl.lit("multiple"))
    with pytest.raises(DatasetError, match="answer_type 'multiple'"):
        prepare_rows(bad, "m")
    bad = _manifest().with_columns(answer=pl.Series(["B", "left of", "ten", "Zebra", "3"]))
    with pytest.raises(DatasetError, match="count sample 'c' has answer 'ten'"):
        prepare_rows(bad, "m")


def test_pick_group_columns_skips_ids_blobs_and_constants() -> None:
    df = prepare_rows(_manifest(), "m")
    assert pick_group_columns(df, EvaluateConfig()) == ["answer_type", "query_type"]
    assert pick_group_columns(df, EvaluateConfig(group_by=["image_id"])) == ["image_id"]
    with pytest.raises(DatasetError, match=r"\['nope'\] are not in the manifest"):
        pick_group_columns(df, EvaluateConfig(group_by=["nope"]))


def test_summarize_end_to_end_on_a_frame() -> None:
    df = prepare_rows(_manifest(), "m")
    outputs = ["B", "right of", "10", "zebra", "many"]
    scored = [score_text(r, t) for r, t in zip(df.iter_rows(named=True), outputs, strict=True)]
    preds = df.with_columns(
        pl.Series("correct", [s.correct for s in scored]),
        pl.Series(
            "parsed_count",
            [
                s.parsed if isinstance(s.parsed, int) and t in ("count",) else None
                for s, t in zip(scored, df["answer_type"], strict=True)
            ],
            dtype=pl.Int64,
        ),
        pl.Series("unparsed", [s.prediction is None for s in scored]),
    )
    flat, table = summarize(preds, ["query_type"], EvaluateConfig())
    assert flat["accuracy"] == pytest.approx(3 / 5) and flat["n"] == 5 and flat["n_unparsed"] == 1
    # classes blue(1/1) left of(0/1) 10(1/1) zebra(1/1) 3(0/1) -> macro 3/5
    assert flat["macro_accuracy"] == pytest.approx(3 / 5)
    assert flat["accuracy/query_type/count"] == pytest.approx(0.5)
    assert flat["count/mae"] == 0.0 and flat["count/n_unparsed"] == 1
    assert "paired/n_pairs" not in flat
    assert table.height == 4


def test_macro_accuracy_is_the_same_bits_in_any_row_order() -> None:
    """Per-class accuracies summed exactly: a permutation of the rows (or polars' group order) moves no bit."""
    import math
    import random

    rng = random.Random(0)
    labels = [f"c{rng.randrange(13)}" for _ in range(997)]
    correct = [rng.random() < 0.37 for _ in labels]
    by: dict[str, list[bool]] = {}
    for lab, ok in zip(labels, correct, strict=True):
        by.setdefault(lab, []).append(ok)
    want = math.fsum(sum(v) / len(v) for v in by.values()) / len(by)
    rows = list(zip(labels, correct, strict=True))
    for _ in range(20):
        rng.shuffle(rows)
        df = pl.DataFrame({"label": [r[0] for r in rows], "correct": [r[1] for r in rows]})
        assert macro_accuracy(df, label="label") == want
