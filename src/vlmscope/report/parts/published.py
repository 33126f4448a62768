"""A study's published figures next to this run's numbers ("Published vs this run").

Rows are the study's figures (``vlmscope.report.published``) as matched by
``vlmscope.report.comparison``; a figure no run matches keeps empty cells, so
the table always shows what a real-model run would fill. The tiny default
models match no figure: the note says which command fills the table.
"""

from __future__ import annotations

from collections.abc import Sequence

from vlmscope.report.comparison import ComparisonRow
from vlmscope.report.html import Cell, note, table
from vlmscope.report.published import DATASET_KINDS, SETTINGS, STUDY_NOTES

__all__ = ["TITLE", "FILL_COMMAND", "render_published"]

TITLE = "Published vs this run"
FILL_COMMAND = "python -m vlmscope.profiles profiles/real-gpu.yaml && dvc repro"
"""What fills the table on a GPU (README: real models); the study pipelines under studies/ fill the rest."""


def render_published(study: str, rows: Sequence[ComparisonRow]) -> str:
    """The study's comparison table (or its note when it has no figure); ``rows`` may hold other studies' rows."""
    mine = [r for r in rows if r.figure.study == study]
    extra = STUDY_NOTES.get(study)
    if not mine:
        return note(extra) if extra else ""
    per_query = any(r.figure.query_type for r in mine)
    header = ["model", "dataset", "setting"]
    header += ["query type", "images"] if per_query else []
    header += ["metric", "published", "this run", "difference", "run"]
    body: list[list[Cell]] = []
    for r in mine:
        f = r.figure
        cells: list[Cell] = [f.label, f.dataset, f.setting]
        cells += [f.query_type, f.variant] if per_query else []
        cells += [
            f.metric,
            f.value,
            None if r.run is None else r.run.value,
            r.diff,
            None if r.run is None else r.run.run,
        ]
        body.append(cells)
    html = [table(header, body, caption="Published figures vs this run")]
    if all(r.run is None for r in mine):
        html.append(
            note(
                "No run here matches a published model and dataset (the tiny models match none): "
                f"`{FILL_COMMAND}` on a GPU fills the run column."
            )
        )
    used_kinds = dict.fromkeys(r.figure.dataset for r in mine)
    used_settings = dict.fromkeys(r.figure.setting for r in mine)
    html.append(note("Datasets: " + "; ".join(f"{k}: {DATASET_KINDS[k]}" for k in used_kinds) + "."))
    html.append(note("Settings: " + "; ".join(f"{s}: {SETTINGS[s]}" for s in used_settings) + "."))
    html.append(note("Sources: " + "; ".join(dict.fromkeys(r.figure.source for r in mine)) + "."))
    if extra:
        html.append(note(extra))
    return "".join(html)
