"""What each dvc.yaml stage declares against what its script can import and actually reads.

Pure functions over ``dvc.yaml`` / ``dvc.lock`` data, shared by the static
test (import graph of every stage script) and the end-to-end test (what each
stage process recorded through ``VLMSCOPE_STAGE_TRACE``).
"""

from __future__ import annotations

import posixpath
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

SRC = PurePosixPath("src")


@dataclass(frozen=True)
class StageSpec:
    """One stage (or the template of a foreach/matrix stage) as dvc.yaml declares it.

    ``script`` and ``deps`` are relative to the repository root whichever
    ``dvc.yaml`` declares them (a study's ``../../stages/x.py`` is
    ``stages/x.py``), so one coverage check serves every pipeline.
    """

    name: str
    script: str
    deps: tuple[str, ...]
    params: tuple[str, ...]
    pipeline: str = "dvc.yaml"
    """The declaring ``dvc.yaml``, relative to the repository root."""

    @property
    def id(self) -> str:
        """``probe`` for the root pipeline, ``studies/counting:probe`` for a study's."""
        folder = posixpath.dirname(self.pipeline)
        return f"{folder}:{self.name}" if folder else self.name


def pipelines(root: Path) -> list[Path]:
    """The root ``dvc.yaml`` and every study pipeline (``studies/<study>/dvc.yaml``)."""
    return [root / "dvc.yaml", *sorted(root.glob("studies/*/dvc.yaml"))]


def to_root(path: str, pipeline: str) -> str:
    """``path`` as written in ``pipeline`` (relative to its folder) -> relative to the repository root."""
    return posixpath.normpath(posixpath.join(posixpath.dirname(pipeline), path))


def from_root(path: str, pipeline: str) -> str:
    """Inverse of :func:`to_root`: a root-relative path as ``pipeline`` must write it."""
    return posixpath.relpath(path, posixpath.dirname(pipeline) or ".")


def stage_specs(dvc_yaml: Mapping[str, Any], pipeline: str = "dvc.yaml") -> list[StageSpec]:
    """Every stage of ``dvc_yaml`` (declared in ``pipeline``), templates unexpanded (``${item.model}`` stays in paths)."""
    out = []
    for name, body in dvc_yaml["stages"].items():
        body = body.get("do", body)
        cmd = shlex.split(" ".join(body["cmd"].split()))
        script = to_root(next(t for t in cmd if t.endswith(".py")), pipeline)
        deps = tuple(to_root(d if isinstance(d, str) else next(iter(d)), pipeline) for d in body.get("deps", ()))
        params = tuple(p if isinstance(p, str) else next(iter(p)) for p in body.get("params", ()))
        out.append(StageSpec(name, script, deps, params, pipeline))
    return out


def all_stage_specs(root: Path) -> list[StageSpec]:
    """:func:`stage_specs` of every pipeline under ``root``."""
    import yaml

    return [
        spec
        for path in pipelines(root)
        for spec in stage_specs(yaml.safe_load(path.read_text()), path.relative_to(root).as_posix())
    ]


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
