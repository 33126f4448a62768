"""Scores over a predictions frame: pure functions, polars in, numbers out.

A predictions frame has one row per sample with a boolean ``correct`` column
and whatever label columns the manifest carried (``query_type``, ``count``,
``variant``, ``source_id``, ``seen``, ...). Nothing here reads files.

Definitions (N rows, ``c_i`` in {0, 1}):

- accuracy = sum(c) / N.
- macro accuracy = mean over the ground-truth classes present of the
  per-class accuracy (the unseen-class study's "macro-averaged MCQA
  accuracy"; a rare class weighs as much as a frequent one).
- paired original/masked stats (relations study), over the pairs whose
  original and masked rows are both present: accuracy on each, accuracy drop
  = original - masked, retain rate = P(correct masked | correct original),
  fix rate = P(correct masked | wrong original). A rate whose condition never
  occurs is ``None`` (left out of the flat metrics) rather than a made-up 0.
- counting MAE = mean |predicted - true| over the rows whose output parsed
  to a number (unparsed rows are counted separately, not scored as 0 or -1).
- grade MAE (ordinal answers, ``answer_type`` ``grade``) = the same mean
  absolute error in grade steps over the rows whose output parsed to a
  grade; the unparsed rows are reported as ``unparsed_rate`` = unparsed /
  all grade rows beside it, never scored as some made-up distance (which
  would turn "no answer" into "a near miss" or "the worst miss" by an
  arbitrary rule). Accuracy counts an unparsed row as wrong, so accuracy
  and MAE + unparsed rate together describe the answers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import polars as pl

from vlmscope.errors import DatasetError

__all__ = [
    "accuracy",
    "macro_accuracy",
    "group_table",
    "PairedStats",
    "pair_rows",
    "paired_from_pairs",
    "paired_stats",
    "paired_by_group",
    "CountStats",
    "count_stats",
    "count_stats_by_group",
    "flatten_metrics",
]


def _require(df: pl.DataFrame, cols: Sequence[str], what: str) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise DatasetError(f"{what} needs column(s) {missing}; predictions have {df.columns}")


def _nonempty(df: pl.DataFrame, what: str) -> None:
    if df.height == 0:
        raise DatasetError(f"{what}: no rows to score")


def accuracy(df: pl.DataFrame, *, correct: str = "correct") -> float:
    """Fraction of rows whose ``correct`` is true."""
    _require(df, [correct], "accuracy")
    _nonempty(df, "accuracy")
    return float(df[correct].cast(pl.Float64).mean())  # type: ignore[arg-type]


def macro_accuracy(df: pl.DataFrame, *, label: str, correct: str = "correct") -> float:
    """Mean over the distinct values of ``label`` (ground-truth class) of per-class accuracy."""
    _require(df, [label, correct], "macro accuracy")
    _nonempty(df, "macro accuracy")
    # integer counts and an exactly rounded sum: the same bits whatever order polars yields the classes in
    per_class = df.group_by(label).agg(pl.col(correct).cast(pl.Int64).sum().alias("k"), pl.len().alias("n"))
    return math.fsum(k / n for k, n in per_class.select("k", "n").iter_rows()) / per_class.height


def group_table(
    df: pl.DataFrame,
    groups: Sequence[str],
    *,
    label: str | None = None,
    correct: str = "correct",
) -> pl.DataFrame:
    """Per (group column, value): ``n``, ``n_correct``, ``accuracy`` (and ``macro_accuracy`` with ``label``).

    Returns columns ``group`` (str), ``value`` (str, null labels as ``"null"``),
    ``n``, ``n_correct``, ``accuracy`` [, ``macro_accuracy``], sorted by group
    then value, ready for ``per_group.csv``.
    """
    _require(df, [*groups, correct] + ([label] if label else []), "group table")
    parts = []
    for g in groups:
        aggs = [
            pl.len().alias("n"),
            pl.col(correct).cast(pl.Int64).sum().alias("n_correct"),
            pl.col(correct).cast(pl.Float64).mean().alias("accuracy"),
        ]
        frame = df.with_columns(pl.col(g).cast(pl.String).fill_null("null").alias("value"))
        table = frame.group_by("value").agg(aggs)
        if label:
            macro = (
                frame.group_by("value", label)
                .agg(pl.col(correct).cast(pl.Float64).mean().alias("acc"))
                .group_by("value")
                .agg(pl.col("acc").mean().alias("macro_accuracy"))
            )
            table = table.join(macro, on="value", how="left")
        parts.append(table.select(pl.lit(g).alias("group"), pl.all()))
    if not parts:
        schema = {"group": pl.String, "value": pl.String, "n": pl.UInt32, "n_correct": pl.Int64, "accuracy": pl.Float64}
        if label:
            schema["macro_accuracy"] = pl.Float64
        return pl.DataFrame(schema=schema)
    return pl.concat(parts, how="vertical_relaxed").sort("group", "value")


@dataclass(frozen=True)
class PairedStats:
    """Original vs masked consistency over matched pairs (see module docstring)."""

    n_pairs: int
    accuracy_original: float
    accuracy_masked: float
    accuracy_drop: float
    retain_rate: float | None
    fix_rate: float | None


def pair_rows(
    df: pl.DataFrame,
    *,
    key: Sequence[str],
    variant: str = "variant",
    original: str = "original",
    masked: str = "masked",
    correct: str = "correct",
    carry: Sequence[str] = (),
) -> pl.DataFrame:
    """One row per matched pair: ``key``, ``c_original``, ``c_masked`` and the ``carry`` columns of the original row.

    ``key`` must be unique within each variant (else a ``DatasetError`` naming
    an example); rows without a partner are left out.
    """
    _require(df, [*key, variant, correct, *carry], "paired original/masked stats")
    sides = []
    for name, extra in ((original, [c for c in carry if c not in key]), (masked, [])):
        side = df.filter(pl.col(variant) == name).select(
            *key, pl.col(correct).cast(pl.Boolean).alias(f"c_{'original' if name == original else 'masked'}"), *extra
        )
        dup = side.filter(pl.struct(key).is_duplicated())
        if dup.height:
            raise DatasetError(
                f"paired stats: key {list(key)} is not unique among {variant}={name!r} rows "
                f"(e.g. {dup.select(key).row(0, named=True)}); pair on a finer key"
            )
        sides.append(side)
    return sides[0].join(sides[1], on=list(key), how="inner", nulls_equal=False)


def paired_from_pairs(pairs: pl.DataFrame) -> PairedStats | None:
    """Stats over a :func:`pair_rows` frame; ``None`` when it is empty."""
    if pairs.height == 0:
        return None
    co, cm = pairs["c_original"], pairs["c_masked"]
    n_co = int(co.sum())
    n_wo = pairs.height - n_co
    acc_o = n_co / pairs.height
    acc_m = int(cm.sum()) / pairs.height
    return PairedStats(
        n_pairs=pairs.height,
        accuracy_original=acc_o,
        accuracy_masked=acc_m,
        accuracy_drop=acc_o - acc_m,
        retain_rate=int((co & cm).sum()) / n_co if n_co else None,
        fix_rate=int((~co & cm).sum()) / n_wo if n_wo else None,
    )


def paired_stats(df: pl.DataFrame, *, key: Sequence[str], **columns: str) -> PairedStats | None:
    """Pair ``variant == original`` rows with ``variant == masked`` rows on ``key``; ``None`` without pairs.

    ``columns`` overrides :func:`pair_rows`'s ``variant``, ``original``,
    ``masked`` and ``correct`` names (one place holds their defaults).
    """
    return paired_from_pairs(pair_rows(df, key=key, **columns))


def paired_by_group(pairs: pl.DataFrame, by: str) -> dict[tuple[str, str], PairedStats]:
    """Paired stats per value of ``by`` (a carried column, i.e. the original row's value)."""
    out: dict[tuple[str, str], PairedStats] = {}
    for part in pairs.partition_by(by, maintain_order=True):
        stats = paired_from_pairs(part)
        value = part[by][0]
        if stats is not None:
            out[(by, "null" if value is None else str(value))] = stats
    return dict(sorted(out.items()))


@dataclass(frozen=True)
class CountStats:
    """Counting error over rows whose output parsed to a number."""

    mae: float | None
    """Mean absolute error over parsed rows (``None`` when nothing parsed)."""
    n_parsed: int
    n_unparsed: int

    @property
    def unparsed_rate(self) -> float | None:
        """Share of the rows whose output parsed to nothing (``None`` without rows)."""
        n = self.n_parsed + self.n_unparsed
        return self.n_unparsed / n if n else None


def count_stats(df: pl.DataFrame, *, predicted: str = "predicted_count", truth: str = "true_count") -> CountStats:
    """MAE of ``predicted`` vs ``truth`` where ``predicted >= 0`` (``-1`` = unparsed)."""
    _require(df, [predicted, truth], "counting MAE")
    parsed = df.filter(pl.col(predicted).is_not_null() & (pl.col(predicted) >= 0))
    mae = None
    if parsed.height:
        err = (parsed[predicted].cast(pl.Float64) - parsed[truth].cast(pl.Float64)).abs()
        mae = float(err.mean())  # type: ignore[arg-type]
    return CountStats(mae=mae, n_parsed=parsed.height, n_unparsed=df.height - parsed.height)


def count_stats_by_group(
    df: pl.DataFrame, by: str, *, predicted: str = "predicted_count", truth: str = "true_count"
) -> dict[tuple[str, str], CountStats]:
    """:func:`count_stats` per value of ``by`` (null as ``"null"``), keyed ``(by, value)`` and sorted."""
    _require(df, [by], "per-group MAE")
    out: dict[tuple[str, str], CountStats] = {}
    for part in df.partition_by(by, maintain_order=True):
        value = part[by][0]
        out[(by, "null" if value is None else str(value))] = count_stats(part, predicted=predicted, truth=truth)
    return dict(sorted(out.items()))


def _flat_grades(
    grades: CountStats | None, by_group: Mapping[tuple[str, str], CountStats] | None
) -> dict[str, float | int]:
    """``grade/<stat>`` and ``grade/<group>/<value>/<stat>`` (``mae`` left out when nothing parsed)."""
    out: dict[str, float | int] = {}
    parts = ([("grade", grades)] if grades is not None else []) + [
        (f"grade/{g}/{v}", st) for (g, v), st in (by_group or {}).items()
    ]
    for prefix, st in parts:
        if st.mae is not None:
            out[f"{prefix}/mae"] = st.mae
        out[f"{prefix}/n_parsed"] = st.n_parsed
        out[f"{prefix}/n_unparsed"] = st.n_unparsed
        if st.unparsed_rate is not None:
            out[f"{prefix}/unparsed_rate"] = st.unparsed_rate
    return out


def flatten_metrics(
    *,
    overall: Mapping[str, float | int | None],
    groups: pl.DataFrame | None = None,
    paired: PairedStats | None = None,
    paired_by_group: Mapping[tuple[str, str], PairedStats] | None = None,
    counts: CountStats | None = None,
    grades: CountStats | None = None,
    grades_by_group: Mapping[tuple[str, str], CountStats] | None = None,
) -> dict[str, float | int]:
    """One flat ``{name: number}`` dict for ``metrics.json`` (``dvc metrics show``).

    Keys: the ``overall`` names as given; ``accuracy/<group>/<value>``,
    ``n/<group>/<value>`` and ``macro_accuracy/<group>/<value>`` per group row;
    ``paired/<stat>`` and ``paired/<group>/<value>/<stat>``; ``count/mae``,
    ``count/n_unparsed``; ``grade/mae``, ``grade/n_parsed``, ``grade/n_unparsed``,
    ``grade/unparsed_rate`` and the same per group as ``grade/<group>/<value>/<stat>``.
    ``None`` values are left out, never written as 0.
    """
    out: dict[str, float | int] = {k: v for k, v in overall.items() if v is not None}
    if groups is not None:
        for row in groups.iter_rows(named=True):
            g, v = row["group"], row["value"]
            out[f"accuracy/{g}/{v}"] = row["accuracy"]
            out[f"n/{g}/{v}"] = row["n"]
            if row.get("macro_accuracy") is not None:
                out[f"macro_accuracy/{g}/{v}"] = row["macro_accuracy"]
    if paired is not None:
        out.update({f"paired/{k}": v for k, v in asdict(paired).items() if v is not None})
    for (g, v), stats in (paired_by_group or {}).items():
        out.update({f"paired/{g}/{v}/{k}": x for k, x in asdict(stats).items() if x is not None})
    if counts is not None:
        if counts.mae is not None:
            out["count/mae"] = counts.mae
        out["count/n_parsed"] = counts.n_parsed
        out["count/n_unparsed"] = counts.n_unparsed
    out.update(_flat_grades(grades, grades_by_group))
    return out
