"""What each dvc.yaml stage declares against what its script can import and actually reads.

Pure functions over ``dvc.yaml`` / ``dvc.lock`` data, shared by the static
test (import graph of every stage script) and the end-to-end test (what each
stage process recorded through ``VLMSCOPE_STAGE_TRACE``).
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

SRC = PurePosixPath("src")


@dataclass(frozen=True)
class StageSpec:
    """One stage (or the template of a foreach/matrix stage) as dvc.yaml declares it."""

    name: str
    script: str
    deps: tuple[str, ...]
    params: tuple[str, ...]


def stage_specs(dvc_yaml: Mapping[str, Any]) -> list[StageSpec]:
    """Every stage of ``dvc.yaml``, templates unexpanded (``${item.model}`` stays in paths)."""
    out = []
    for name, body in dvc_yaml["stages"].items():
        body = body.get("do", body)
        cmd = shlex.split(" ".join(body["cmd"].split()))
        script = next(t for t in cmd if t.endswith(".py"))
        deps = tuple(d if isinstance(d, str) else next(iter(d)) for d in body.get("deps", ()))
        params = tuple(p if isinstance(p, str) else next(iter(p)) for p in body.get("params", ()))
        out.append(StageSpec(name, script, deps, params))
    return out


def module_path(module: str, root: Path) -> PurePosixPath:
    """``vlmscope.probing.run`` -> ``src/vlmscope/probing/run.py`` (packages: their ``__init__.py``), relative to ``root``."""
    base = SRC.joinpath(*module.split("."))
    return base / "__init__.py" if (root / base).is_dir() else base.with_suffix(".py")


def covered(path: PurePosixPath, deps: Iterable[str]) -> bool:
    """A file is covered by a dep that is the file itself or a directory above it."""
    for dep in deps:
        d = PurePosixPath(dep.rstrip("/"))
        if path == d or d in path.parents:
            return True
    return False


def uncovered_files(files: Iterable[PurePosixPath], deps: Iterable[str]) -> list[str]:
    deps = list(deps)
    return sorted(str(f) for f in files if not covered(f, deps))


def uncovered_params(read: Iterable[str], listed: Iterable[str]) -> list[str]:
    """Keys read that no listed key covers (a listed key covers itself and everything under it)."""
    listed = list(listed)
    return sorted({k for k in read if not any(k == p or k.startswith(p + ".") for p in listed)})


def lock_stage_for(argv: list[str], lock: Mapping[str, Any]) -> str | None:
    """The dvc.lock stage whose rendered ``cmd`` ran ``python *argv``."""
    for name, body in lock["stages"].items():
        cmd = shlex.split(" ".join(str(body["cmd"]).split()))
        if cmd[1:] == argv:
            return name
    return None
