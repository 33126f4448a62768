"""Balanced Pixmo-Count -> counting rows (train / valid / test from the folders).

The counting study's balanced Pixmo-Count ships one ``samples.json`` per
split folder (``train/``, ``valid/``, ``test/``; 2948 / 474 / 471 records),
each a JSON list of ``{"image_url", "image_sha256", "count", "points",
"label", "image_path"}``; ``points`` is ``{"x": [...], "y": [...]}`` (two
equal-length lists; ``[[x, y], ...]`` and ``[{"x", "y"}, ...]`` are read
too). Images are not redistributed: they are downloaded to
``<root>/<split>/images/<image_path>``, and the file names restart at
``0.jpg`` in every split.

``SRC`` may be the folder holding the split folders, one split folder, or a
``samples.json`` file; the split is the name of the folder holding
``samples.json`` (``val`` is read as ``valid``) unless ``split`` is set.
``images`` may be that root (an image is looked up at
``<images>/<split>/images/<image_path>`` first) or one folder holding the
``image_path`` names (``<images>/<image_path>``).

Because names repeat across splits, images are placed per split in the
dataset (``images/<split>/<image_path>``), and two records that resolve to
the same source file while carrying different ``image_sha256`` are an error
naming both: that is one folder serving several splits' ``0.jpg``, which
would silently give train, valid and test rows the same picture (records
without ``image_sha256`` cannot be told apart and are not checked).

Rows: ``answer`` = str(count), ``answer_type`` = ``count``, columns
``count``, ``label``, ``image_sha256``, ``image_url`` and ``points`` (list of
``[x, y]``; list columns are not carried onto activation stores). With
``verify_sha256`` an image whose bytes do not hash to ``image_sha256`` is
dropped and counted (a re-downloaded URL may serve another picture).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, Literal

import polars as pl

from vlmscope.data.importers.common import (
    SPLIT_NAMES,
    ImageSink,
    ImportConfigBase,
    ImportReport,
    check_count,
    field,
    find_image,
    infer_split,
    load_json,
    safe_relative,
    usable_image,
    write_import,
)
from vlmscope.errors import ImporterError, NotFound
from vlmscope.templates import template_check

__all__ = ["PixmoCountImportConfig", "import_pixmo_count", "find_sample_files"]

SAMPLES = "samples.json"
_SPLIT_DIRS = tuple(SPLIT_NAMES)


class PixmoCountImportConfig(ImportConfigBase):
    """How Pixmo-Count records become rows."""

    split: Literal["train", "valid", "test"] | None = None
    """Split for all rows; ``None`` takes it from the folder holding ``samples.json``."""
    prompt_template: Annotated[str, template_check("label")] = (
        "How many {label} are there? Answer using as few words as possible."
    )
    """Question text; ``{label}`` is the record's label."""
    verify_sha256: bool = False
    """Drop (and count) images whose SHA-256 differs from ``image_sha256``."""


def find_sample_files(src: Path) -> list[Path]:
    """The ``samples.json`` files ``src`` designates (file, split folder, or root of split folders)."""
    src = Path(src)
    if src.is_file():
        return [src]
    if not src.is_dir():
        raise NotFound(f"{src}: no such file or directory")
    if (src / SAMPLES).is_file():
        return [src / SAMPLES]
    found = [src / d / SAMPLES for d in _SPLIT_DIRS if (src / d / SAMPLES).is_file()]
    if not found:
        raise NotFound(f"{src}: no samples.json in it or in its {'/'.join(_SPLIT_DIRS)} folders")
    return found


def _number(c: Any) -> bool:
    return isinstance(c, (int, float)) and not isinstance(c, bool)


def _points(value: Any, where: str) -> list[list[float]]:
    """``[[x, y], ...]`` from ``{"x": [...], "y": [...]}``, ``[[x, y], ...]`` or ``[{"x", "y"}, ...]``."""
    if value is None:
        return []
    if isinstance(value, dict):
        xs, ys = field(value, "x", list, f"{where}: field 'points'"), field(value, "y", list, f"{where}: field 'points'")
        if len(xs) != len(ys):
            raise ImporterError(
                f"{where}: field 'points' has {len(xs)} x but {len(ys)} y coordinates (the lists must be equally long)"
            )
        value = [[x, y] for x, y in zip(xs, ys)]
    if not isinstance(value, list):
        raise ImporterError(f"{where}: field 'points' must be {{'x': [...], 'y': [...]}} or a list, got {value!r:.80}")
    out = []
    for k, p in enumerate(value):
        if isinstance(p, dict) and "x" in p and "y" in p:
            x, y = p["x"], p["y"]
        elif isinstance(p, (list, tuple)) and len(p) == 2:
            x, y = p
        else:
            raise ImporterError(f"{where}: points[{k}] must be {{'x', 'y'}} or [x, y], got {p!r:.80}")
        if not (_number(x) and _number(y)):
            raise ImporterError(f"{where}: points[{k}] coordinates must be numbers, got {p!r:.80}")
        try:
            out.append([float(x), float(y)])
        except OverflowError:  # an integer beyond float range
            raise ImporterError(f"{where}: points[{k}] coordinates are out of range, got {p!r:.80}") from None
    return out


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _split_folders(path: Path, split: str) -> tuple[str, ...]:
    """Folder names under ``images`` that may hold this file's ``images/`` (its own folder's name, then the split)."""
    return tuple(dict.fromkeys(f"{name}/images" for name in (path.parent.name, split) if name))


def _find(images: Path, rel: PurePosixPath, folders: tuple[str, ...]) -> Path | None:
    """``<images>/<folder>/<rel>`` for the first folder that has it, else ``<images>/<rel>``, else ``None``."""
    for folder in folders:
        src = find_image(images / folder, rel)
        if src is not None:
            return src
    return find_image(images, rel)


class _SameFile:
    """Refuses two records that resolve to one source file but carry different ``image_sha256``."""

    def __init__(self) -> None:
        self._seen: dict[str, tuple[str, str]] = {}

    def check(self, src: Path, sha: str | None, where: str) -> None:
        if sha is None:
            return
        key = os.path.realpath(src)
        prev = self._seen.setdefault(key, (sha.lower(), where))
        if prev[0] != sha.lower():
            raise ImporterError(
                f"{prev[1]} and {where} both resolve to image {src} but carry different image_sha256 "
                f"({prev[0][:12]}... vs {sha.lower()[:12]}...): file names restart in every split, so give each "
                "split its own image folder (--images the root holding <split>/images/)"
            )


def _read(
    path: Path, images: Path, split: str, cfg: PixmoCountImportConfig, report: ImportReport, same: _SameFile
) -> list[dict[str, Any]]:
    data = load_json(path)
    if not isinstance(data, list):
        raise ImporterError(f"{path}: expected a JSON list of samples, got {type(data).__name__}")
    rows = []
    for i, rec in enumerate(data):
        where = f"{path}: record {i}"
        report.n_records += 1
        count = check_count(field(rec, "count", int, where), where, "count")
        label = field(rec, "label", str, where).strip()
        rel = safe_relative(field(rec, "image_path", str, where), where)
        sha = rec.get("image_sha256")
        url = rec.get("image_url")
        for name, v in (("image_sha256", sha), ("image_url", url)):
            if v is not None and not isinstance(v, str):
                raise ImporterError(f"{where}: field {name!r} must be a string, got {v!r:.80}")
        points = _points(rec.get("points"), where)
        src = _find(images, rel, _split_folders(path, split))
        if src is not None:
            same.check(src, sha, where)
        if not usable_image(src, f"{split}/{rel}", report):
            continue
        if cfg.verify_sha256:
            if sha is None:
                raise ImporterError(f"{where}: missing field 'image_sha256' (needed by verify_sha256)")
            if _sha256(src).lower() != sha.lower():
                report.drop("sha256_mismatch", f"{split}/{rel}")
                continue
        rows.append(
            {
                "sample_id": f"pixmo-{split}-{i:05d}",
                "src": src,
                "rel": PurePosixPath(split) / rel,
                "split": split,
                "count": count,
                "label": label,
                "image_sha256": sha,
                "image_url": url,
                "points": points,
            }
        )
    return rows


def import_pixmo_count(
    sources: Sequence[Path], images: Path, out: Path, config: PixmoCountImportConfig = PixmoCountImportConfig()
) -> ImportReport:
    """Import balanced Pixmo-Count split folders into the dataset directory ``out``."""
    files = [f for s in sources for f in find_sample_files(Path(s))]
    if not files:
        raise ImporterError("pixmo-count: give a samples.json file or a folder of split folders")
    report = ImportReport("pixmo-count")
    rows: list[dict[str, Any]] = []
    same = _SameFile()
    for f in files:
        rows.extend(_read(f, Path(images), infer_split(f, config.split), config, report, same))
    ids = [r["sample_id"] for r in rows]
    if len(set(ids)) != len(ids):
        raise ImporterError("pixmo-count: two sources map to the same split; import each split folder once")
    if not rows:
        raise ImporterError(f"pixmo-count: no rows to write; {report.summary()}")
    report.count_rows(rows)

    def build(tmp: Path) -> pl.DataFrame:
        image_paths = ImageSink(tmp, config.image_mode).place_rows(rows)
        return pl.DataFrame(
            {
                "sample_id": ids,
                "image": image_paths,
                "prompt": [config.prompt_template.format(label=r["label"]) for r in rows],
                "answer": [str(r["count"]) for r in rows],
                "split": [r["split"] for r in rows],
                "answer_type": ["count"] * len(rows),
                "count": [r["count"] for r in rows],
                "label": [r["label"] for r in rows],
                "image_sha256": [r["image_sha256"] for r in rows],
                "image_url": [r["image_url"] for r in rows],
                "points": [r["points"] for r in rows],
            },
            schema_overrides={
                "count": pl.Int64,
                "image_sha256": pl.String,
                "image_url": pl.String,
                "points": pl.List(pl.List(pl.Float64)),
            },
        )

    return write_import(out, config, report, build, sources=sources, images=str(images))
