"""Run a copy of this project under DVC the way a user's fresh clone would, and check what its stages did.

Shared by the default pipeline's end-to-end test and the study pipelines'
tests (tests/pipeline/studies/): the copy holds what a clone holds, every
stage script runs with warnings as errors and offline, and
:func:`trace_problems` compares what each stage process read (params keys)
and imported (vlmscope modules) with its ``dvc.lock`` entry.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml
from tests.pipeline.stage_coverage import lock_stage_for, module_path, to_root, uncovered_files, uncovered_params

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

COMMAND_TIMEOUT = 1200
"""Seconds one subprocess (``dvc repro`` of the whole smoke pipeline is the longest) may run before it is killed."""


def subprocess_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This environment for a stage process: the venv first on PATH, offline, warnings as errors."""
    out = dict(os.environ)
    out.update(extra or {})
    out["PATH"] = f"{BIN}{os.pathsep}{out.get('PATH', '')}"
    out["VLMSCOPE_WARNINGS_AS_ERRORS"] = "1"
    out["HF_HUB_OFFLINE"] = "1"
    out["DVC_NO_ANALYTICS"] = "1"
    out["GIT_AUTHOR_NAME"] = out["GIT_COMMITTER_NAME"] = "vlmscope-test"
    out["GIT_AUTHOR_EMAIL"] = out["GIT_COMMITTER_EMAIL"] = "test@localhost"
    return out


def run(
    cmd: list[str], cwd: Path, *, check: bool = True, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, cwd=cwd, env=subprocess_env(env), text=True, capture_output=True, timeout=COMMAND_TIMEOUT)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} failed ({proc.returncode}) in {cwd}\n--- stdout\n{proc.stdout[-6000:]}\n--- stderr\n{proc.stderr[-6000:]}"
        )
    return proc


def dvc(*args: str, cwd: Path, check: bool = True, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return run([str(BIN / "dvc"), *args], cwd, check=check, env=env)


def stages_run(output: str) -> list[str]:
    return re.findall(r"Running stage '([^']+)'", output)


def copy_project(dst: Path) -> None:
    """Tracked and untracked-not-ignored files of this checkout (what a clone would hold), results left out."""
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.decode().split("\0")
    for rel in filter(None, listed):
        if "artifacts/" in rel or rel.endswith("dvc.lock") or not (ROOT / rel).is_file():
            continue
        (dst / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, dst / rel)


def git_repo(repo: Path) -> None:
    """Make ``repo`` a git repository with everything committed (DVC wants one)."""
    run(["git", "init", "-q", "-b", "main"], repo)
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "project"], repo)


def read_trace(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def trace_problems(
    root: Path, pipeline: str, records: list[dict[str, Any]], lock: dict[str, Any] | None = None
) -> list[str]:
    """Stages of ``pipeline`` (its dvc.lock) that read an unlisted param, ran unlisted code, or left no record.

    ``root`` is the project copy; ``records`` are its stage processes'
    ``VLMSCOPE_STAGE_TRACE`` lines; ``lock`` defaults to the pipeline's
    ``dvc.lock`` (a test passes an edited one to show the check fails). An
    empty list means every stage read only keys its ``params`` list and
    imported only modules its ``deps`` cover.
    """
    if lock is None:
        lock = yaml.safe_load((root / pipeline).with_name("dvc.lock").read_text())
    read: dict[str, set[str]] = {}
    imported: dict[str, set[str]] = {}
    problems = []
    for rec in records:
        stage = lock_stage_for(rec["argv"], lock)
        if stage is None:
            continue  # another pipeline's stage
        if "param" in rec:
            read.setdefault(stage, set()).add(rec["param"])
        else:
            imported.setdefault(stage, set()).update(rec["modules"])
    for stage, body in lock["stages"].items():
        if stage not in imported:
            problems.append(f"{stage}: ran without a trace record")
            continue
        listed = list(body.get("params", {}).get("params.yaml", {}))
        if bad := uncovered_params(read.get(stage, ()), listed):
            problems.append(f"{stage}: reads params {bad} its `params` do not list")
        deps = [to_root(d["path"], pipeline) for d in body.get("deps", ())]
        if bad := uncovered_files([module_path(m, root) for m in imported[stage]], deps):
            problems.append(f"{stage}: runs code {bad} its `deps` do not cover")
    return problems
