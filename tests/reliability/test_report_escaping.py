"""Labels, prompts, answers, tokens and names that carry HTML never become markup in the report.

The report shows text from datasets and model outputs that vlmscope does not
control (an imported prompt, a generated answer, a lens token, a class
name). Here every such string in the fake artifacts tree of the report
tests is poisoned with a ``<script>`` tag, an ``onerror`` attribute and a
closing ``</table>``; the page must still hold no script, no event-handler
attribute and no element the artifacts injected, and the poison must show
up escaped (proving it reached the page).
"""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import polars as pl
from tests.report.conftest import build_artifacts

from vlmscope.report import INDEX, ReportConfig, build_report

PAYLOAD = '<script>alert(1)</script><img src=x onerror="alert(2)"></table>&amp;'
KEEP = {"sample_id", "image", "split", "answer_type", "source_id", "variant", "query_type", "group", "set"}
"""Columns that key rows or name files: left alone so the tree stays a valid tree."""


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.handlers: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.handlers += [f"{tag}.{k}" for k, _ in attrs if k.lower().startswith("on")]


def _poison_value(value: Any) -> Any:
    if isinstance(value, str):
        return value + PAYLOAD
    if isinstance(value, list):
        return [_poison_value(v) for v in value]
    if isinstance(value, dict):
        return {k: (v if k in KEEP or k in ("layer", "gt_index") else _poison_value(v)) for k, v in value.items()}
    return value


def _poison_table(df: pl.DataFrame) -> pl.DataFrame:
    strings = [c for c, t in df.schema.items() if c not in KEEP and t in (pl.String, pl.List(pl.String))]
    return df.with_columns(
        [
            (pl.col(c) + PAYLOAD) if df.schema[c] == pl.String else pl.col(c).list.eval(pl.element() + PAYLOAD)
            for c in strings
        ]
    )


def _poison(root: Path) -> int:
    """Append PAYLOAD to every free-text value of every table and JSON-lines file; returns files changed."""
    changed = 0
    for path in sorted(root.rglob("*")):
        if path.suffix == ".parquet":
            _poison_table(pl.read_parquet(path)).write_parquet(path)
        elif path.suffix == ".csv":
            _poison_table(pl.read_csv(path)).write_csv(path)
        elif path.suffix == ".jsonl":
            lines = [json.dumps(_poison_value(json.loads(ln))) for ln in path.read_text().splitlines() if ln.strip()]
            path.write_text("\n".join(lines) + "\n")
        else:
            continue
        changed += 1
    return changed


def test_html_in_artifacts_is_escaped_everywhere(tmp_path: Path) -> None:
    clean_root = build_artifacts(tmp_path / "clean")
    clean = _Tags()
    clean.feed((build_report(clean_root, tmp_path / "clean-report", ReportConfig())).read_text())

    root = build_artifacts(tmp_path / "poisoned")
    assert _poison(root) >= 5
    index = build_report(root, tmp_path / "report", ReportConfig())
    assert index.name == INDEX
    text = index.read_text()
    page = _Tags()
    page.feed(text)
    assert "script" not in page.tags and page.handlers == []
    assert page.tags.count("img") == clean.tags.count("img")  # only the report's own figures
    assert page.tags.count("table") == clean.tags.count("table")
    shown = text.count("&lt;script&gt;alert(1)&lt;/script&gt;")
    assert shown >= 5, f"the poisoned labels should reach the page, escaped ({shown} found)"
    assert "&amp;amp;" in text  # an entity in the data is shown as typed, not decoded
