"""Which ``--out`` a command may replace: only what vlmscope wrote, of the same kind.

Every verb replaces its output directory as a whole, so pointing ``--out`` at
a folder of notes, a file, or the command's own input would destroy data the
user owns. Every artifact directory therefore carries a marker of its kind
(:data:`MARKER`, written by :func:`vlmscope.io.atomic.atomic_dir`; datasets
and activation stores are recognised by their own ``dataset.json`` and Zarr
group attributes; reports and checkpoints made before the marker by
``report.json`` and by the ``vlmscope.json`` sidecar vlmscope writes). :func:`check_out` is the one
place that decides; ``--overwrite`` never overrides it. DVC removes a stage's
outputs before running it, so pipeline stages always find ``--out`` absent.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

from vlmscope.errors import OutputRefused

__all__ = ["MARKER", "artifact_kind", "check_out", "write_marker"]

MARKER = ".vlmscope-artifact"
"""Hidden JSON file ``{"kind": ...}`` at the top of an artifact directory."""

_NATIVE = {"dataset", "activations"}
"""Kinds recognised by their own metadata; they get no marker (it would change a dataset's files)."""


def write_marker(directory: str | os.PathLike[str], kind: str) -> None:
    """Mark ``directory`` as an artifact of ``kind`` (no-op for kinds with native metadata)."""
    if kind not in _NATIVE:
        (Path(directory) / MARKER).write_text(json.dumps({"kind": kind}) + "\n")


def _json(path: Path) -> dict | None:
    """A JSON object from ``path``, or None when it is missing or not one."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def artifact_kind(path: str | os.PathLike[str]) -> str | None:
    """The kind of vlmscope artifact ``path`` is, or None when it is not one."""
    path = Path(path)
    if not path.is_dir() or path.is_symlink():
        return None
    marker = _json(path / MARKER)
    if marker is not None and isinstance(marker.get("kind"), str):
        return marker["kind"]
    info = _json(path / "dataset.json")
    if info is not None and "generator" in info and (path / "manifest.parquet").is_file():
        return "dataset"
    group = _json(path / "zarr.json")
    if group is not None and group.get("node_type") == "group" and "format" in group.get("attributes", {}):
        return "activations"
    if (path / "report.json").is_file() and (path / "index.html").is_file():
        return "report"
    sidecar = _json(path / "vlmscope.json")  # a checkpoint vlmscope wrote before the marker existed
    if sidecar is not None and "vlmscope_version" in sidecar and (path / "config.json").is_file():
        return "model"
    return None


def _overlap(out: Path, source: Path) -> str | None:
    """How ``out`` collides with input ``source`` (both resolved), or None."""
    if out == source:
        return "is"
    if source.is_relative_to(out):
        return "contains"
    if out.is_relative_to(source):
        return "is inside"
    return None


def check_out(
    out: str | os.PathLike[str],
    kind: str,
    inputs: Iterable[object] = (),
    *,
    may_nest: bool = False,
    ignore: Iterable[str] = (),
) -> None:
    """Refuse (one line, :class:`OutputRefused`) an ``out`` this command must not replace.

    ``out`` may be absent, an empty directory, or an artifact of ``kind``; it
    must not be, contain or lie inside any of ``inputs`` (hub ids and other
    names that are not local paths, such as configs, are skipped). ``may_nest`` allows ``out``
    inside an input (a report under the artifacts root it summarises);
    entries named in ``ignore`` (an extraction's lock file) do not make
    ``out`` non-empty.
    """
    out = Path(out)
    real = out.resolve()
    if real == real.parent or real == Path.cwd().resolve():
        raise OutputRefused(f"--out {out}: refusing to replace the current or root directory; name a new directory")
    for item in inputs:
        if not isinstance(item, (str, os.PathLike)) or str(item) == "" or not Path(item).exists():
            continue
        how = _overlap(real, Path(item).resolve())
        if how is not None and not (may_nest and how == "is inside"):
            raise OutputRefused(f"--out {out} {how} the input {item}; write the output somewhere else")
    if not (out.exists() or out.is_symlink()):
        return
    if out.is_symlink() or not out.is_dir():
        raise OutputRefused(
            f"--out {out} exists and is not a directory; vlmscope only replaces its own output ({kind})"
        )
    found = artifact_kind(out)
    skip = set(ignore)
    if found == kind or not any(p.name not in skip for p in out.iterdir()):
        return
    what = f"a vlmscope {found}" if found else "not a vlmscope artifact"
    raise OutputRefused(
        f"--out {out} is {what} (this command writes: {kind}); replacing it would delete it, so vlmscope "
        "refuses (--overwrite does not change this): choose another --out or remove it yourself"
    )
