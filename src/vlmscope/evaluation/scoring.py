"""From manifest rows and model outputs to per-row verdicts, and from those to metrics.

Scoring is chosen per row by the manifest's ``answer_type``:

- ``choice``: :func:`parse_choice` against ``choices``, compared with
  ``answer_index``. Letters count only when the row is lettered (its
  ``answer`` is the letter of ``answer_index``, the lettered-prompt
  convention); otherwise only option texts do. A row whose truth is that no
  option is right (``answer`` ``"None"``, ``answer_index`` null: the
  relational study's released prompts have such questions) is answered
  correctly by a reply that picks no option (``none``, ``no option fits``)
  and wrongly by one that picks an option, a letter included; its class is
  ``none``.
- ``count``: :func:`parse_count` vs ``int(answer)``.
- ``open`` and ``class`` (a class name, e.g. a class-folder import's label):
  :func:`normalize_open` equality with the answer.
- ``grade``: :func:`parse_grade` of the output vs :func:`parse_grade` of the
  answer (``"Grade 2"``); ordinal rows also get MAE in grade steps and the
  unparsed rate, overall and per group (see :mod:`~vlmscope.evaluation.metrics`).

A manifest without ``answer_type`` gets one per row: ``choice`` when
``choices`` and ``answer_index`` are set, ``count`` when the answer is a
whole number, else ``open`` (``grade`` is never inferred: an importer that
knows its answers are grades says so).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl

from vlmscope.errors import DatasetError
from vlmscope.evaluation.config import EvaluateConfig
from vlmscope.evaluation.metrics import (
    accuracy,
    count_stats,
    count_stats_by_group,
    flatten_metrics,
    group_table,
    macro_accuracy,
    pair_rows,
    paired_by_group,
    paired_from_pairs,
)
from vlmscope.evaluation.parsing import letter, normalize_open, parse_choice, parse_count, parse_grade

__all__ = [
    "ANSWER_TYPES",
    "NONE_ANSWER",
    "Scored",
    "generate_and_score",
    "grade_summary",
    "prepare_rows",
    "score_text",
    "score_index",
    "pick_group_columns",
    "summarize",
]

ANSWER_TYPES = ("choice", "count", "open", "grade", "class")
NONE_ANSWER = "none"
"""The class (and prediction text) of a choice row whose truth is that no option is right."""
_NEVER_GROUP = {"sample_id", "image", "prompt", "answer", "answer_index", "answer_text", "choices", "gt_class"}
_MAX_GROUP_TEXT = 40


@dataclass(frozen=True)
class Scored:
    """One row's verdict."""

    parsed: int | str | None
    """Option index (choice, None = unparsed), count (-1 = unparsed), normalised text (open) or grade (None = unparsed)."""
    prediction: str | None
    """The predicted answer as text (option text, count), None when nothing parsed."""
    correct: bool


def prepare_rows(df: pl.DataFrame, where: str) -> pl.DataFrame:
    """Validate the scoring columns and add ``answer_type`` (filled) and ``gt_class``.

    Errors name ``where``, the sample and the field. Returns a new frame.
    """
    has_choices = "choices" in df.columns and "answer_index" in df.columns
    inferred = (
        pl.when(
            pl.col("choices").is_not_null() & pl.col("answer_index").is_not_null() if has_choices else pl.lit(False)
        )
        .then(pl.lit("choice"))
        .when(pl.col("answer").str.strip_chars().str.contains(r"^\d+$"))
        .then(pl.lit("count"))
        .otherwise(pl.lit("open"))
    )
    if "answer_type" in df.columns:
        df = df.with_columns(pl.col("answer_type").cast(pl.String).fill_null(inferred))
    else:
        df = df.with_columns(inferred.alias("answer_type"))
    bad = df.filter(~pl.col("answer_type").is_in(ANSWER_TYPES))
    if bad.height:
        r = bad.row(0, named=True)
        raise DatasetError(
            f"{where}: sample {r['sample_id']!r} has answer_type {r['answer_type']!r}; expected one of {ANSWER_TYPES}"
        )
    gt: list[str] = []
    for r in df.select(
        "sample_id", "answer", "answer_type", *(["choices", "answer_index"] if has_choices else [])
    ).iter_rows(named=True):
        kind, sid = r["answer_type"], r["sample_id"]
        if r["answer"] is None:
            raise DatasetError(f"{where}: sample {sid!r} has no answer")
        if kind == "choice":
            choices, idx = r.get("choices"), r.get("answer_index")
            if not choices:
                raise DatasetError(f"{where}: choice sample {sid!r} needs a non-empty 'choices' list")
            if _none_truth(r):
                gt.append(NONE_ANSWER)
                continue
            if idx is None or not 0 <= idx < len(choices):
                raise DatasetError(
                    f"{where}: sample {sid!r} has answer_index {idx!r} outside its {len(choices)} choices"
                )
            gt.append(choices[idx])
        elif kind == "count":
            if not r["answer"].strip().isdigit():
                raise DatasetError(f"{where}: count sample {sid!r} has answer {r['answer']!r}; expected a whole number")
            gt.append(str(int(r["answer"])))
        elif kind == "grade":
            gt.append(str(_grade_truth(r["answer"], f"{where}: grade sample {sid!r}")))
        else:
            gt.append(normalize_open(r["answer"]))
    return df.with_columns(pl.Series("gt_class", gt, dtype=pl.String))


def _none_truth(row: dict[str, Any]) -> bool:
    """Whether a choice row's truth is "no option": ``answer_index`` null and ``answer`` ``None``."""
    return row.get("answer_index") is None and normalize_open(row["answer"]) == NONE_ANSWER


def _lettered(row: dict[str, Any]) -> bool:
    idx = row.get("answer_index")
    return idx is not None and row["answer"].strip().upper().rstrip(".)") == letter(idx)


def score_text(row: dict[str, Any], text: str) -> Scored:
    """Score generated ``text`` against a prepared manifest row (a dict with the columns above)."""
    kind = row["answer_type"]
    if kind == "choice":
        choices = list(row["choices"])
        if _none_truth(row):  # letters on: a reply naming an option by letter picks it, and is wrong
            idx = parse_choice(text, choices, letters=True)
            return Scored(idx, NONE_ANSWER if idx is None else choices[idx], idx is None)
        idx = parse_choice(text, choices, letters=_lettered(row))
        return Scored(idx, None if idx is None else choices[idx], idx == row["answer_index"])
    if kind == "count":
        n = parse_count(text)
        return Scored(n, str(n) if n >= 0 else None, n == int(row["answer"]))
    if kind == "grade":
        return _score_grade(row, text)
    norm = normalize_open(text)
    return Scored(norm, norm or None, bool(norm) and norm == normalize_open(row["answer"]))


def _grade_truth(answer: str, where: str) -> int:
    """The grade a ``grade`` row's answer states; an answer stating none is a dataset error naming ``where``."""
    truth = parse_grade(answer)
    if truth is None:
        raise DatasetError(f"{where} has answer {answer!r}, which states no single grade (expected e.g. 'Grade 2')")
    return truth


def _score_grade(row: dict[str, Any], text: str) -> Scored:
    """A ``grade`` row: the output's grade (None = unparsed) against the answer's."""
    g = parse_grade(text)
    truth = _grade_truth(row["answer"], f"sample {row.get('sample_id')!r}")
    return Scored(g, None if g is None else str(g), g == truth)


def grade_summary(predictions: pl.DataFrame, groups: Sequence[str]) -> dict[str, Any]:
    """``flatten_metrics`` keywords of the ``grade`` rows: MAE + unparsed rate overall and per group.

    ``predictions`` holds ``parsed_grade`` (null = unparsed) and the prepared
    ``gt_class`` (the true grade as text); ``{}`` without grade rows.
    """
    rows = predictions.filter(pl.col("answer_type") == "grade")
    if rows.height == 0 or "parsed_grade" not in rows.columns:
        return {}
    rows = rows.with_columns(pl.col("gt_class").cast(pl.Int64).alias("true_grade"))
    by_group: dict[tuple[str, str], Any] = {}
    for g in groups:
        by_group.update(count_stats_by_group(rows, g, predicted="parsed_grade", truth="true_grade"))
    return {
        "grades": count_stats(rows, predicted="parsed_grade", truth="true_grade"),
        "grades_by_group": dict(sorted(by_group.items())),
    }


def generate_and_score(
    adapter: Any,
    rows: Sequence[dict[str, Any]],
    encode: Callable[[range], Any],
    *,
    batch_size: int,
    max_new_tokens: int,
    tick: Callable[[int], None] | None = None,
) -> list[tuple[str, Scored]]:
    """Greedy-decode ``rows`` in batches and score each text; ``(text, verdict)`` per row, in order.

    The one generate-and-score: ``vlmscope evaluate --mode generate`` and the
    trainers' validation accuracy both call it, so a model scores the same
    during training as in the evaluation stage. ``encode(indices)`` returns
    the batch of ``rows[i]`` for ``i`` in ``indices`` (evaluation encodes
    images and prompts; training takes its cached encodings); ``tick(n)``
    reports ``n`` more rows done.
    """
    out: list[tuple[str, Scored]] = []
    for start in range(0, len(rows), batch_size):
        idx = range(start, min(start + batch_size, len(rows)))
        texts = adapter.generate(encode(idx), max_new_tokens=max_new_tokens)
        out.extend((t, score_text(rows[i], t)) for i, t in zip(idx, texts, strict=True))
        if tick is not None:
            tick(len(idx))
    return out


def score_index(row: dict[str, Any], picked: int) -> Scored:
    """Score an option picked by loss or similarity (option-loss / contrastive modes)."""
    choices = list(row["choices"])
    return Scored(picked, choices[picked], picked == row["answer_index"])


def pick_group_columns(df: pl.DataFrame, config: EvaluateConfig) -> list[str]:
    """Label columns to break accuracy down by.

    ``config.group_by`` when given (each must exist). Otherwise every column
    that is not scoring plumbing (``sample_id``, ``prompt``, ``choices`` ...,
    names ending in ``_id``), is a string / integer / boolean column with 2 to
    ``max_group_values`` distinct values, and is not long text (mean length
    over 40 characters: captions, hashes) or JSON (a value starting with
    ``{`` or ``[``).
    """
    if config.group_by is not None:
        missing = [c for c in config.group_by if c not in df.columns]
        if missing:
            raise DatasetError(f"group_by columns {missing} are not in the manifest (columns: {df.columns})")
        return list(config.group_by)
    out = []
    for name, dtype in df.schema.items():
        if name in _NEVER_GROUP or name.endswith("_id") or name in config.pair_key:
            continue
        if not (dtype == pl.String or dtype == pl.Boolean or dtype.is_integer()):
            continue
        col = df[name]
        n = col.n_unique()
        if not 2 <= n <= config.max_group_values:
            continue
        if dtype == pl.String:
            text = col.drop_nulls()
            if (text.str.len_chars().mean() or 0) > _MAX_GROUP_TEXT or text.str.contains(r"^\s*[\[{]").any():
                continue
        out.append(name)
    return out


def summarize(
    predictions: pl.DataFrame, groups: Sequence[str], config: EvaluateConfig
) -> tuple[dict[str, float | int], pl.DataFrame]:
    """``(flat metrics, per-group table)`` of a predictions frame.

    ``predictions`` holds the prepared manifest columns plus ``correct``,
    ``parsed_count`` (count rows), ``parsed_grade`` (grade rows; optional) and ``unparsed``.
    """
    label = config.class_column or "gt_class"
    if label not in predictions.columns:
        raise DatasetError(f"class_column {label!r} is not in the manifest (columns: {predictions.columns})")
    overall: dict[str, float | int | None] = {
        "accuracy": accuracy(predictions),
        "macro_accuracy": macro_accuracy(predictions, label=label),
        "n": predictions.height,
        "n_correct": int(predictions["correct"].sum()),
        "n_unparsed": int(predictions["unparsed"].sum()),
    }
    table = group_table(predictions, groups, label=label)
    paired = by_group = None
    if "variant" in predictions.columns and all(k in predictions.columns for k in config.pair_key):
        carry = [g for g in config.pair_group_by if g in predictions.columns and g != "variant"]
        pairs = pair_rows(predictions, key=config.pair_key, carry=carry)
        paired = paired_from_pairs(pairs)
        if paired is not None:
            by_group = {}
            for g in carry:
                by_group.update(paired_by_group(pairs, g))
    counts = None
    count_rows = predictions.filter(pl.col("answer_type") == "count")
    if count_rows.height:
        counts = count_stats(
            count_rows.with_columns(pl.col("answer").str.strip_chars().cast(pl.Int64).alias("true_count")),
            predicted="parsed_count",
            truth="true_count",
        )
    flat = flatten_metrics(
        overall=overall, groups=table, paired=paired, paired_by_group=by_group, counts=counts,
        **grade_summary(predictions, groups),
    )
    return flat, table
