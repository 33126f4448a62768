"""Run one study pipeline (``studies/<study>/dvc.yaml``) with ``dvc repro`` in a fresh copy of the project.

Each study's test calls :func:`run_study` once (module scope): the copy holds
what a clone holds (the study's real-format sample files included, no
results), ``dvc repro`` runs in the study folder with every stage process
recording what it read and imported, and the run comes back with the trace
already checked against the study's ``dvc.lock``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.pipeline.project import copy_project, dvc, git_repo, read_trace, stages_run, trace_problems

from vlmscope.params import TRACE_ENV

__all__ = ["StudyRun", "run_study"]


@dataclass(frozen=True)
class StudyRun:
    root: Path
    """The project copy (a git repository)."""
    dir: Path
    """``root/studies/<study>``: where ``dvc`` runs and ``artifacts/`` lands."""
    output: str
    """``dvc repro``'s stdout."""
    seconds: float
    """Wall time of ``dvc repro``."""
    stages: list[str]
    """Stages run, in order."""
    trace_problems: list[str]
    """Stages that read params or ran code their dvc.yaml entry does not declare (empty: none)."""

    def dvc(self, *args: str, check: bool = True) -> str:
        return dvc(*args, cwd=self.dir, check=check).stdout


def run_study(study: str, tmp_path_factory: pytest.TempPathFactory) -> StudyRun:
    """Copy the project, ``dvc repro`` ``studies/<study>``, and return what happened."""
    repo = tmp_path_factory.mktemp(f"study-{study}") / "repo"
    repo.mkdir()
    copy_project(repo)
    git_repo(repo)
    folder = repo / "studies" / study
    assert (folder / "dvc.yaml").is_file(), f"no pipeline at studies/{study}/dvc.yaml"
    trace = repo.parent / "stage-trace.jsonl"
    start = time.perf_counter()
    out = dvc("repro", cwd=folder, env={TRACE_ENV: str(trace)})
    seconds = time.perf_counter() - start
    print(f"studies/{study}: dvc repro took {seconds:.1f} s")
    problems = trace_problems(repo, f"studies/{study}/dvc.yaml", read_trace(trace))
    return StudyRun(repo, folder, out.stdout, seconds, stages_run(out.stdout), problems)
