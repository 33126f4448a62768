"""Every input and output path of a stage is written once, in dvc.yaml, and reaches the script on its command line.

A stage that rebuilt ``artifacts/models/<name>`` in code would read a
directory DVC does not know it reads (a stale result when that directory
changes), and moving the artifacts tree would need code edits. So: no code in
``stages/`` or ``src/`` spells an ``artifacts`` path, and each stage's ``cmd``
names exactly the artifacts its ``deps``/``outs`` declare.
"""

from __future__ import annotations

import ast
import re
import shlex
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml
from tests.pipeline.stage_coverage import pipelines

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS_PATH = re.compile(r"(?<![\w.-])artifacts(/|$)")
"""``artifacts`` as a path (``artifacts/models``, ``"artifacts"``), not the word in prose (``artifacts root``)."""


def _docstrings(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                ids.add(id(first.value))
    # attribute docstrings: a string expression right after an assignment
    for node in ast.walk(tree):
        for field in ("body", "orelse"):
            stmts = getattr(node, field, None)
            for stmt in stmts if isinstance(stmts, list) else []:
                if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
                    ids.add(id(stmt.value))
    return ids


def artifact_strings(path: Path) -> list[str]:
    """String literals of ``path`` (f-string parts included, docstrings not) that spell an artifacts path."""
    tree = ast.parse(path.read_text())
    skip = _docstrings(tree)
    return [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip
        and ARTIFACTS_PATH.search(node.value)
    ]  # fmt: skip


CODE = sorted([*ROOT.joinpath("stages").glob("*.py"), *ROOT.joinpath("src").rglob("*.py")])


def test_the_scan_finds_a_built_path(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text('"""Writes under artifacts/models."""\nfrom pathlib import Path\nP = Path("artifacts/models") / "x"\n'
                   'Q = f"artifacts/{P}"\nR = "artifacts root missing"\n')  # fmt: skip
    assert sorted(artifact_strings(bad)) == ["artifacts/", "artifacts/models"]


@pytest.mark.parametrize("path", CODE, ids=[str(p.relative_to(ROOT)) for p in CODE])
def test_no_code_builds_an_artifacts_path(path: Path) -> None:
    found = artifact_strings(path)
    assert not found, f"{path.relative_to(ROOT)} spells artifacts paths {found}; take them from dvc.yaml's cmd instead"


def _paths(entries: Any) -> list[str]:
    return [e if isinstance(e, str) else next(iter(e)) for e in entries or ()]


def _stages() -> list[tuple[str, list[str], list[str]]]:
    """``(stage id, artifacts paths on its cmd, artifacts paths it declares)`` of every pipeline's stages.

    A study's paths are relative to its folder, as its cmd runs there, so
    both sides compare as written.
    """
    out = []
    for path in pipelines(ROOT):
        folder = path.parent.relative_to(ROOT).as_posix()
        for name, body in yaml.safe_load(path.read_text())["stages"].items():
            out.append((name if folder == "." else f"{folder}:{name}", *_artifact_paths(body.get("do", body))))
    return out


def _artifact_paths(body: dict[str, Any]) -> tuple[list[str], list[str]]:
    cmd = shlex.split(" ".join(body["cmd"].split()))
    in_cmd = [t for t in cmd if ARTIFACTS_PATH.match(t)]
    declared = [p for key in ("deps", "outs", "metrics", "plots") for p in _paths(body.get(key))]
    return in_cmd, [p for p in declared if ARTIFACTS_PATH.match(p)]


def _under(path: str, root: str) -> bool:
    p, r = PurePosixPath(path), PurePosixPath(root)
    return p == r or r in p.parents


@pytest.mark.parametrize(("name", "in_cmd", "declared"), _stages(), ids=[s[0] for s in _stages()])
def test_cmd_passes_every_declared_artifact(name: str, in_cmd: list[str], declared: list[str]) -> None:
    assert in_cmd, f"{name}: its cmd passes no artifacts path"
    unlisted = [c for c in in_cmd if not any(_under(d, c) for d in declared)]
    assert not unlisted, f"{name}: cmd passes {unlisted}, which no dep/out declares"
    unpassed = [d for d in declared if not any(_under(d, c) for c in in_cmd)]
    assert not unpassed, f"{name}: declares {unpassed} but its cmd does not pass them to the script"
