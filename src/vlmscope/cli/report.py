"""`vlmscope report`: the self-contained HTML page over an artifacts root."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from vlmscope.cli.options import bind, bound_config
from vlmscope.cli.outdir import refuse_cwd_out
from vlmscope.cli.signature import config_options, field_options, option_names, with_options

__all__ = ["report"]

_FIELDS = field_options(
    title=str, attention_examples=int, attention_layers=int, attention_stat=str, ffn_examples=int, ffn_layers=int,
    max_table_rows=int, dpi=int,
)
"""The page settings: options that are a ``ReportConfig`` field and nothing more."""


@bind("vlmscope.report.config:ReportConfig", *option_names(_FIELDS))
@with_options(None, _FIELDS, config_options)
def report(
    artifacts: Path = typer.Option(..., "--artifacts", help="Artifacts root to report on (dvc.yaml: artifacts)."),
    out: Path = typer.Option(
        ..., "--out", callback=refuse_cwd_out, help="Output directory (written atomically; an existing one is replaced only if it is an earlier output of this kind): index.html, PNGs, report.json."
    ),
    comparison: Path | None = typer.Option(
        None, "--comparison", help="Also write the published figures next to this run's numbers as flat JSON "
        "(dvc metrics show) to this file, outside --out (the pipeline: published_comparison.json beside reports/)."
    ),
    **options: Any,
) -> None:
    """Write one self-contained HTML report (plus its PNGs and report.json) of what exists under --artifacts.

    Each study's section ends with its published figures (STUDIES.md) next to this run's numbers.
    """
    from vlmscope.report.build import build_report
    from vlmscope.report.where import report_location

    cfg = bound_config(report, options)
    build_report(artifacts, out, cfg, comparison=comparison)
    typer.echo(report_location(out))
