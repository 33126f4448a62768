"""`vlmscope report`: the self-contained HTML page over an artifacts root."""

from __future__ import annotations

from pathlib import Path

import typer

from vlmscope.report.config import ReportConfig

__all__ = ["report"]


def report(
    artifacts: Path = typer.Option(Path("artifacts"), "--artifacts", help="Artifacts root to report on."),
    out: Path = typer.Option(
        Path("artifacts/reports"),
        "--out",
        help="Output directory (replaced as a whole): index.html, PNGs, report.json.",
    ),
    title: str = typer.Option("vlmscope report", "--title", help="Page title."),
    attention_examples: int = typer.Option(3, "--attention-examples", help="Samples drawn with attention overlays."),
    attention_layers: int = typer.Option(4, "--attention-layers", help="Evenly spaced layers per overlay sample."),
    attention_stat: str = typer.Option("mean", "--attention-stat", help="Head reduction drawn: mean or max."),
    ffn_examples: int = typer.Option(3, "--ffn-examples", help="ffn.jsonl rows shown per model x dataset."),
    ffn_layers: int = typer.Option(4, "--ffn-layers", help="Layers shown per FFN example."),
    max_table_rows: int = typer.Option(60, "--max-table-rows", help="Rows shown of a long table."),
    dpi: int = typer.Option(80, "--dpi", help="Resolution of every picture."),
) -> None:
    """Write one self-contained HTML report (plus its PNGs and report.json) of what exists under --artifacts."""
    from vlmscope.report.build import build_report
    from vlmscope.report.where import report_location

    cfg = ReportConfig(
        title=title,
        attention_examples=attention_examples,
        attention_layers=attention_layers,
        attention_stat=attention_stat,  # type: ignore[arg-type]
        ffn_examples=ffn_examples,
        ffn_layers=ffn_layers,
        max_table_rows=max_table_rows,
        dpi=dpi,
    )
    build_report(artifacts, out, cfg)
    typer.echo(report_location(out))
