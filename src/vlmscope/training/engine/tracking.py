"""Training curves through dvclive, written by the main process only.

The curves live in ``<run_dir>/dvclive`` while training (they survive a kill
and continue on resume) and are copied into the finished artifact. On
resume, rows logged after the checkpoint being resumed are dropped so that a
curve never shows a step twice.
"""

from __future__ import annotations

import csv
import io
import os
import warnings
from pathlib import Path
from typing import Any

__all__ = ["Tracker"]


def _truncate_tsv(path: Path, max_step: int) -> None:
    text = path.read_text()
    rows = list(csv.reader(io.StringIO(text), delimiter="\t"))
    if not rows or "step" not in rows[0]:
        return
    col = rows[0].index("step")
    keep = [rows[0]] + [r for r in rows[1:] if r and int(float(r[col])) <= max_step]
    buf = io.StringIO()
    csv.writer(buf, delimiter="\t", lineterminator="\n").writerows(keep)
    path.write_text(buf.getvalue())


class Tracker:
    """Thin dvclive wrapper; a no-op on non-main ranks or when disabled."""

    def __init__(self, directory: str | os.PathLike[str], *, enabled: bool, resume_step: int | None) -> None:
        self.directory = Path(directory)
        self._live: Any = None
        if not enabled:
            return
        from dvclive import Live

        resuming = resume_step is not None and self.directory.is_dir()
        if resuming:
            for tsv in (self.directory / "plots").rglob("*.tsv"):
                _truncate_tsv(tsv, int(resume_step))  # type: ignore[arg-type]
        self._live = Live(
            dir=str(self.directory),
            resume=resuming,
            save_dvc_exp=False,
            dvcyaml=None,
            report=None,
        )

    def log_params(self, params: dict[str, Any]) -> None:
        if self._live is not None:
            self._live.log_params(params)

    def log(self, step: int, metrics: dict[str, float]) -> None:
        """Record ``metrics`` at optimizer step ``step`` (1-based: steps completed)."""
        if self._live is None:
            return
        self._live.step = step
        for k, v in metrics.items():
            self._live.log_metric(k, float(v))
        self._live.make_summary()

    def close(self) -> None:
        if self._live is not None:
            with warnings.catch_warnings():
                # inside `dvc exp run`, dvclive's end() builds a pathspec with a pattern name pathspec
                # deprecated; a third-party warning that must not fail a run under warnings-as-errors
                warnings.filterwarnings("ignore", category=DeprecationWarning, message=".*GitWildMatchPattern")
                self._live.end()
            self._live = None
