"""Evaluation: exact answer parsing, metrics over predictions, and the evaluate runner.

- :mod:`~vlmscope.evaluation.parsing`: ``parse_choice``, ``parse_count``,
  ``parse_yes_no``, ``parse_grade``, ``normalize_open`` (documented rules, no substring matches).
- :mod:`~vlmscope.evaluation.metrics`: accuracy, macro accuracy, per-group
  tables, original/masked pair stats, counting MAE; pure polars functions.
- :mod:`~vlmscope.evaluation.runner`: ``evaluate(model, dataset, out, config)``
  writing ``predictions.jsonl``, ``metrics.json`` and ``per_group.csv``.

Imports are lazy so that ``import vlmscope.evaluation`` stays cheap.
"""

from __future__ import annotations

from vlmscope._lazy import lazy_exports

__all__ = [
    "EvaluateConfig",
    "evaluate",
    "option_nll",
    "parse_choice",
    "parse_count",
    "parse_yes_no",
    "parse_grade",
    "normalize_open",
    "letter",
    "accuracy",
    "macro_accuracy",
    "group_table",
    "PairedStats",
    "pair_rows",
    "paired_stats",
    "paired_by_group",
    "CountStats",
    "count_stats",
    "flatten_metrics",
    "prepare_rows",
    "score_text",
    "generate_and_score",
    "score_index",
    "pick_group_columns",
    "summarize",
]

_WHERE, __getattr__ = lazy_exports(
    __name__,
    {
        "config": ("EvaluateConfig",),
        "metrics": ("CountStats", "PairedStats", "accuracy", "count_stats", "flatten_metrics", "group_table",
                    "macro_accuracy", "pair_rows", "paired_by_group", "paired_stats"),
        "parsing": ("letter", "normalize_open", "parse_choice", "parse_count", "parse_grade", "parse_yes_no"),
        "runner": ("evaluate", "option_nll"),
        "scoring": ("generate_and_score", "pick_group_columns", "prepare_rows", "score_index", "score_text",
                    "summarize"),
    },
)
