"""Run one study pipeline (``studies/<name>``) with ``dvc repro`` in a throwaway copy of the project.

A stand-in for the lead's shared ``harness.run_study`` with the same shape:
copy what a clone would hold, ``git init``, run ``dvc repro`` in the study
folder with every stage recording the params keys it reads and the modules it
imports, check that record against ``dvc.lock`` (a stage may read only the
params it lists and run only the code its deps list), and hand back the study
folder, the repro output and the wall time.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import pytest
import yaml
from tests.pipeline.stage_coverage import lock_stage_for, module_path, uncovered_files, uncovered_params
from tests.pipeline.test_end_to_end import _copy_project, dvc, run, stages_run

from vlmscope.params import TRACE_ENV


@dataclass(frozen=True)
class StudyRun:
    study: Path
    """The study folder inside the copy (``<copy>/studies/<name>``)."""
    output: str
    """``dvc repro``'s stdout."""
    seconds: float
    """Wall time of the first ``dvc repro``."""

    @property
    def ran(self) -> list[str]:
        return stages_run(self.output)


def check_trace(study: Path, trace: Path) -> None:
    """Every stage read only listed params and imported only modules its deps cover; every stage ran."""
    lock = yaml.safe_load((study / "dvc.lock").read_text())
    read: dict[str, set[str]] = {}
    imported: dict[str, set[str]] = {}
    for rec in (json.loads(line) for line in trace.read_text().splitlines()):
        stage = lock_stage_for(rec["argv"], lock)
        assert stage is not None, f"no dvc.lock stage ran {rec['argv']}"
        if "param" in rec:
            read.setdefault(stage, set()).add(rec["param"])
        else:
            imported.setdefault(stage, set()).update(rec["modules"])
    assert sorted(imported) == sorted(lock["stages"]), "every stage must have run and been recorded"
    for stage, body in lock["stages"].items():
        listed = list(body.get("params", {}).get("params.yaml", {}))
        assert not uncovered_params(read.get(stage, ()), listed), (stage, uncovered_params(read[stage], listed))
        deps = [d["path"] for d in body["deps"]]
        files = [PurePosixPath("../..") / module_path(m, study.parents[1]) for m in imported[stage]]  # deps are ../../src/...
        assert not uncovered_files(files, deps), (stage, uncovered_files(files, deps))


def run_study(name: str, tmp_path_factory: pytest.TempPathFactory) -> StudyRun:
    repo = tmp_path_factory.mktemp(f"study-{name}") / "repo"
    repo.mkdir()
    _copy_project(repo)
    run(["git", "init", "-q", "-b", "main"], repo)
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "project"], repo)
    study = repo / "studies" / name
    trace = repo.parent / "stage-trace.jsonl"
    start = time.monotonic()
    out = dvc("repro", cwd=study, env={TRACE_ENV: str(trace)})
    seconds = time.monotonic() - start
    check_trace(study, trace)
    return StudyRun(study=study, output=out.stdout, seconds=seconds)
