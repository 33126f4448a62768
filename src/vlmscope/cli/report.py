"""`vlmscope report`: the self-contained HTML page over an artifacts root."""

from __future__ import annotations

from pathlib import Path

import typer

from vlmscope.cli.options import ParamsFile, Sets, bind, run_config

__all__ = ["report"]

_FIELDS = (
    "title", "attention_examples", "attention_layers", "attention_stat", "ffn_examples", "ffn_layers",
    "max_table_rows", "dpi",
)  # fmt: skip


@bind("vlmscope.report.config:ReportConfig", *_FIELDS)
def report(
    artifacts: Path = typer.Option(..., "--artifacts", help="Artifacts root to report on (dvc.yaml: artifacts)."),
    out: Path = typer.Option(
        ..., "--out", help="Output directory (replaced as a whole): index.html, PNGs, report.json."
    ),
    title: str | None = typer.Option(None, "--title"),
    attention_examples: int | None = typer.Option(None, "--attention-examples"),
    attention_layers: int | None = typer.Option(None, "--attention-layers"),
    attention_stat: str | None = typer.Option(None, "--attention-stat"),
    ffn_examples: int | None = typer.Option(None, "--ffn-examples"),
    ffn_layers: int | None = typer.Option(None, "--ffn-layers"),
    max_table_rows: int | None = typer.Option(None, "--max-table-rows"),
    dpi: int | None = typer.Option(None, "--dpi"),
    params: ParamsFile = None,
    set_: Sets = None,
) -> None:
    """Write one self-contained HTML report (plus its PNGs and report.json) of what exists under --artifacts."""
    from vlmscope.report.build import build_report
    from vlmscope.report.where import report_location

    cfg = run_config(
        report, params, set_,
        title=title, attention_examples=attention_examples, attention_layers=attention_layers,
        attention_stat=attention_stat, ffn_examples=ffn_examples, ffn_layers=ffn_layers,
        max_table_rows=max_table_rows, dpi=dpi,
    )  # fmt: skip
    build_report(artifacts, out, cfg)
    typer.echo(report_location(out))
