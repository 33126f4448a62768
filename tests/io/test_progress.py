"""io/progress.py: the one progress bar (columns, enabled/disabled)."""

from __future__ import annotations

import pytest

from vlmscope.io.progress import progress_bar, track


def test_track_counts_and_a_disabled_bar_is_silent(capsys: pytest.CaptureFixture[str]) -> None:
    with track(5, "work", enabled=False) as advance:
        advance()
        advance(3)
    assert capsys.readouterr() == ("", "")
    bar = progress_bar(enabled=True, elapsed=True, info=True)
    with bar:
        task = bar.add_task("train", total=4, info="loss 1.0")
        bar.advance(task, 3)
        assert bar.tasks[0].completed == 3 and bar.tasks[0].fields["info"] == "loss 1.0"
    assert len(bar.columns) == 6
    assert len(progress_bar(enabled=False).columns) == 4
    assert progress_bar(enabled=False).disable and not progress_bar(enabled=True).disable
