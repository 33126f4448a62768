"""Tracker.close: dvclive's end() inside `dvc exp run` warns about a pathspec deprecation, which must not fail a run."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from vlmscope.training.engine.tracking import Tracker


class _Live:
    def __init__(self, message: str) -> None:
        self.message = message
        self.ended = False

    def end(self) -> None:
        warnings.warn(self.message, DeprecationWarning, stacklevel=2)
        self.ended = True


def _tracker(tmp_path: Path, live: _Live) -> Tracker:
    tracker = Tracker(tmp_path / "dvclive", enabled=False, resume_step=None)
    tracker._live = live
    return tracker


def test_pathspec_deprecation_from_dvclive_end_is_ignored_under_warnings_as_errors(tmp_path: Path) -> None:
    live = _Live("GitWildMatchPattern ('gitwildmatch') is deprecated. Use 'gitignore' for GitIgnoreBasicPattern")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _tracker(tmp_path, live).close()
    assert live.ended


def test_other_deprecations_still_surface(tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(DeprecationWarning, match="something else"):
            _tracker(tmp_path, _Live("something else is deprecated")).close()
