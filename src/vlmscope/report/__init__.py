"""The HTML report: one self-contained page over everything under an artifacts root.

``build_report(artifacts, out, config)`` scans the artifacts layout (datasets,
evals, probes, lens, activation stores, trained models), assigns each result
to its study by the dataset's generator, and writes ``out/index.html`` (inline
CSS, PNGs as data URIs, no script), the PNGs beside it and ``report.json``.
Missing parts say "not run"; the output is byte-identical for identical inputs.

Names are re-exported lazily so that importing the CLI (which imports
``vlmscope.report.config``) does not load matplotlib and polars.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = [
    "INDEX",
    "SUMMARY",
    "STUDIES",
    "Inventory",
    "ReportConfig",
    "assign_studies",
    "build_report",
    "scan_artifacts",
]

_WHERE = {
    "INDEX": "vlmscope.report.build",
    "SUMMARY": "vlmscope.report.build",
    "build_report": "vlmscope.report.build",
    "ReportConfig": "vlmscope.report.config",
    "Inventory": "vlmscope.report.inventory",
    "scan_artifacts": "vlmscope.report.inventory",
    "STUDIES": "vlmscope.report.studies",
    "assign_studies": "vlmscope.report.studies",
}

if TYPE_CHECKING:  # pragma: no cover
    from vlmscope.report.build import INDEX, SUMMARY, build_report
    from vlmscope.report.config import ReportConfig
    from vlmscope.report.inventory import Inventory, scan_artifacts
    from vlmscope.report.studies import STUDIES, assign_studies


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'vlmscope.report' has no attribute {name!r}")
