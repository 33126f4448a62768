"""The HTML report: one self-contained page over everything under an artifacts root.

``build_report(artifacts, out, config, comparison=None)`` scans the artifacts layout (datasets,
evals, probes, lens, activation stores, trained models), assigns each result
to its study by the dataset's generator, and writes ``out/index.html`` (inline
CSS, PNGs as data URIs, no script), the PNGs beside it and ``report.json``.
Missing parts say "not run"; the output is byte-identical for identical inputs.
Each study ends with its published figures (``FIGURES``) next to this run's
numbers (``compare_published``), also written flat for ``dvc metrics`` when
``comparison`` names a file (``comparison_metrics``).

Names are re-exported lazily so that importing the CLI (which imports
``vlmscope.report.config``) does not load matplotlib and polars.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vlmscope._lazy import lazy_exports

__all__ = [
    "COMPARISON",
    "FIGURES",
    "INDEX",
    "SUMMARY",
    "STUDIES",
    "Inventory",
    "ReportConfig",
    "assign_studies",
    "build_report",
    "compare_published",
    "comparison_metrics",
    "scan_artifacts",
]

_WHERE, __getattr__ = lazy_exports(
    __name__,
    {
        "build": ("INDEX", "SUMMARY", "build_report"),
        "comparison": ("COMPARISON", "compare_published", "comparison_metrics"),
        "config": ("ReportConfig",),
        "inventory": ("Inventory", "scan_artifacts"),
        "published": ("FIGURES",),
        "studies": ("STUDIES", "assign_studies"),
    },
)

if TYPE_CHECKING:  # pragma: no cover
    from vlmscope.report.build import INDEX, SUMMARY, build_report
    from vlmscope.report.comparison import COMPARISON, compare_published, comparison_metrics
    from vlmscope.report.config import ReportConfig
    from vlmscope.report.inventory import Inventory, scan_artifacts
    from vlmscope.report.published import FIGURES
    from vlmscope.report.studies import STUDIES, assign_studies
