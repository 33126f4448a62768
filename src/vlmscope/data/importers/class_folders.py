"""Image-classification folders (``<root>/<split>/<class>/<image>``) -> grading / classification rows.

The medical study's knee X-rays (the Mendeley KL-grade set) ship as one
folder per split (``train``, ``val`` or ``valid``, ``test``) holding one
folder per class (``0`` .. ``4``); torchvision's ``ImageFolder`` and most
Kaggle image sets use the same layout. There is no annotation file: the
folder names are the labels.

Rows: ``sample_id`` = the image's path under the root
(``train/2/9001.png``, unique by construction), ``image`` =
``images/<split folder>/<class>/<file>`` (the source layout kept, linked or
copied by :class:`~vlmscope.data.importers.common.ImageSink`), ``prompt``
(one question for every row), ``answer`` (``answer_template`` filled),
``split`` (``val`` read as ``valid``), ``answer_type``, and the columns
``label`` (the class folder's name) and ``grade`` (Int64).

When every class folder names a grade (``2``, ``grade_2``, ``Grade 2``,
``KL2``: :func:`~vlmscope.grades.grade_of_name`; ``2_mild`` is none), or
``grade_names`` maps every folder to one, rows are ordinal: ``answer_type``
``grade``, ``grade`` the integer and answers like ``Grade 2``, so the
evaluation scores them with ``parse_grade`` and reports MAE; otherwise
``answer_type`` is ``class`` (scored like an open answer: the class name)
and ``grade`` is null. Either way the set trains ``vlmscope train clip
--class-column label``.

Rows are ordered by split (train, valid, test), class (by grade when the
classes are grades, else by name) and file name.

Skipped: hidden entries (``.DS_Store``, ``.ipynb_checkpoints``); top-level
folders that are no split (``auto_test``) and files beside the splits are
noted in the report; folders inside a class folder, and files PIL cannot
open (or that declare too many pixels), files beside the class folders and
file names that are not UTF-8 text are dropped and counted in
``import_report.json``; a class folder left without images is noted.

Errors (one line, naming the folder): no split folder under the root, a
split folder without class folders or without a readable image, two class
folders of one grade, a class folder missing from ``grade_names``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Annotated, Any

import polars as pl
from pydantic import AfterValidator, Field

from vlmscope.data.importers.common import (
    MAX_COUNT,
    SPLIT_NAMES,
    ImageSink,
    ImportConfigBase,
    ImportReport,
    shown_names,
    usable_image,
    write_import,
)
from vlmscope.errors import ImporterError, NotFound
from vlmscope.grades import grade_of_name
from vlmscope.templates import check_template

__all__ = ["ClassFoldersImportConfig", "import_class_folders", "folder_grades"]

SPLIT_FOLDERS = SPLIT_NAMES
"""Split folder name -> manifest split."""


def _answer_template(template: str) -> str:
    if "{label}" not in template and "{grade}" not in template:
        raise ValueError(f"answer_template must contain {{label}} or {{grade}}, got {template!r}")
    return check_template(template, "answer_template", (), ("label", "grade"))


class ClassFoldersImportConfig(ImportConfigBase):
    """How class folders become rows."""

    prompt: str = "What is the KL grade of this knee X-ray? Answer with 'Grade N'."
    """Question asked of every image (used as is: braces are plain text)."""
    answer_template: Annotated[str | None, AfterValidator(lambda v: v if v is None else _answer_template(v))] = None
    """Answer text; ``{label}`` is the class folder's name, ``{grade}`` its grade. ``None``: ``Grade {grade}``
    when the classes are grades, else ``{label}``. Graded answers must state the grade (the evaluation reads
    it back with ``parse_grade``)."""
    grade_names: dict[str, Annotated[int, Field(ge=0, le=MAX_COUNT)]] | None = None
    """Class folder name -> grade, for folders not named by their grade (``{Normal: 0, Doubtful: 1}``); every
    class folder must then be listed."""


def _visible(entries: list[os.DirEntry[str]]) -> list[os.DirEntry[str]]:
    return sorted((e for e in entries if not e.name.startswith(".")), key=lambda e: e.name)


def _is_text(name: str) -> bool:
    """Whether a file name is text (a name that is not UTF-8 arrives with surrogate escapes no manifest can store)."""
    try:
        name.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def _scan(path: Path) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(path) as it:
            return _visible(list(it))
    except OSError as e:
        raise ImporterError(f"{path}: cannot list the folder ({e.strerror or e})") from None


def _is_dir(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir()
    except OSError:
        return False


def folder_grades(labels: Sequence[str], grade_names: dict[str, int] | None, root: Path) -> dict[str, int] | None:
    """Grade per class folder, or ``None`` when the classes are not all grades.

    With ``grade_names`` every folder must be listed (an error names the
    first that is not); else each name must be a grade (:func:`grade_of_name`). Two folders of
    one grade (``2`` and ``grade_2``) make the classes no ordinal scale: an error.
    """
    if grade_names is not None:
        missing = [x for x in labels if x not in grade_names]
        if missing:
            raise ImporterError(
                f"{root}: class folder {missing[0]!r} is not in grade_names (names: {shown_names(sorted(grade_names))})"
            )
        grades = {x: grade_names[x] for x in labels}
    else:
        parsed = {x: grade_of_name(x) for x in labels}
        if any(g is None for g in parsed.values()):
            return None
        grades = {x: g for x, g in parsed.items() if g is not None}
    seen: dict[int, str] = {}
    for label, g in grades.items():
        if g in seen:
            raise ImporterError(f"{root}: class folders {seen[g]!r} and {label!r} both have grade {g}")
        seen[g] = label
    return grades


def _splits(root: Path, report: ImportReport) -> list[tuple[str, Path]]:
    """``(split, folder)`` of the split folders under ``root``; other entries are noted."""
    found = []
    for e in _scan(root):
        split = SPLIT_FOLDERS.get(e.name.lower()) if _is_text(e.name) else None
        if split is not None and _is_dir(e):
            found.append((split, Path(e.path)))
        else:
            report.notes.append(f"skipped {e.name!r}: not a split folder ({'/'.join(SPLIT_FOLDERS)})")
    if not found:
        raise ImporterError(
            f"{root}: no split folders ({', '.join(SPLIT_FOLDERS)}) in it; expected <root>/<split>/<class>/<image>"
        )
    return found


def _read_split(split: str, folder: Path, report: ImportReport) -> list[dict[str, Any]]:
    """The rows of one split folder's readable images; a split without any is an error naming the folder."""
    rows = []
    before = dict(report.dropped)
    entries = _scan(folder)
    classes = [e for e in entries if _is_dir(e)]
    stray = [e.name for e in entries if not _is_dir(e)]
    if stray:
        report.drop("not_in_a_class_folder", f"{folder.name}/{shown_names(stray[:1])}", len(stray))
    if not classes:
        raise ImporterError(f"{folder}: no class folders in this split folder; expected {folder}/<class>/<image>")
    for c in classes:
        if not _is_text(c.name):
            raise ImporterError(f"{folder}: class folder name {c.name!r} is not UTF-8 text; rename it")
        n_before = len(rows)
        for e in _scan(Path(c.path)):
            if not _is_text(e.name):
                report.drop("name_not_utf8", f"{folder.name}/{c.name}/{e.name!r}")
                continue
            rel = PurePosixPath(folder.name, c.name, e.name)
            if _is_dir(e):
                report.drop("nested_folder", str(rel))
                continue
            report.n_records += 1
            src = Path(e.path)
            if not usable_image(src, str(rel), report):
                continue
            rows.append({"sample_id": str(rel), "src": src, "rel": rel, "split": split, "label": c.name})
        if len(rows) == n_before:
            report.notes.append(f"class folder {folder.name}/{c.name} holds no readable image")
    if not rows:
        dropped = ", ".join(f"{n - before.get(why, 0)} {why}" for why, n in sorted(report.dropped.items())
                            if n > before.get(why, 0)) or "none"  # fmt: skip
        raise ImporterError(f"{folder}: no readable image in this split folder's class folders (dropped: {dropped})")
    return rows


def import_class_folders(
    sources: Sequence[Path], out: Path, config: ClassFoldersImportConfig = ClassFoldersImportConfig()
) -> ImportReport:
    """Import the class-folder tree ``sources[0]`` (``<root>/<split>/<class>/<image>``) into ``out``."""
    if len(sources) != 1:
        raise ImporterError(f"class-folders: give exactly one root folder, got {len(sources)}")
    root = Path(sources[0])
    if not root.is_dir():
        raise NotFound(f"{root}: no such folder")
    report = ImportReport("class-folders")
    rows: list[dict[str, Any]] = []
    for split, folder in _splits(root, report):
        rows.extend(_read_split(split, folder, report))
    labels = sorted({r["label"] for r in rows})
    grades = folder_grades(labels, config.grade_names, root)
    if grades is not None:
        labels.sort(key=lambda x: (grades[x], x))
    order = {x: k for k, x in enumerate(labels)}
    splits = list(dict.fromkeys(SPLIT_FOLDERS.values()))
    rows.sort(key=lambda r: (splits.index(r["split"]), r["rel"].parts[0], order[r["label"]], r["rel"].name))
    template = config.answer_template or ("Grade {grade}" if grades is not None else "{label}")
    if grades is None and "{grade}" in template:
        raise ImporterError(
            f"{root}: answer_template {template!r} uses {{grade}}, but class folders "
            f"{shown_names(labels[:5])} are not all grades (set grade_names)"
        )
    report.notes.append(f"classes ({'grades' if grades is not None else 'not grades'}): {shown_names(labels)}")
    report.count_rows(rows)

    def build(tmp: Path) -> pl.DataFrame:
        image_paths = ImageSink(tmp, config.image_mode).place_rows(rows)
        row_grades = [grades[r["label"]] if grades is not None else None for r in rows]
        return pl.DataFrame(
            {
                "sample_id": [r["sample_id"] for r in rows],
                "image": image_paths,
                "prompt": [config.prompt] * len(rows),
                "answer": [template.format(label=r["label"], grade=g) for r, g in zip(rows, row_grades, strict=True)],
                "split": [r["split"] for r in rows],
                "answer_type": ["grade" if grades is not None else "class"] * len(rows),
                "label": [r["label"] for r in rows],
                "grade": row_grades,
            },
            schema_overrides={"grade": pl.Int64},
        )

    return write_import(out, config, report, build, sources=sources)
