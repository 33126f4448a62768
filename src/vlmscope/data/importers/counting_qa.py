"""The counting study's synthetic sets (``questions.json`` + ``answers.json``) -> counting rows.

Layout of one dataset folder (``balanced``, ``clustered``,
``distractors_1_small_red_stars``, ``unseen_combinations``, ...)::

    questions.json  {image_id: {"count_closed": {"<color>_<shape>s": "How many ...? Choose from [...]."}}}
                 or {image_id: {"<color>_<shape>s": {"count_closed": "How many ...? Choose from [...]."}}}
    answers.json    {image_id: {"count_closed": {"<color>_<shape>s": 3}}}
                 or {image_id: {"<color>_<shape>s": 3}}   (or {... : {"count_closed": 3}})
    train_ids.json, valid_ids.json, test_ids.json   optional JSON lists of image ids

The first form is the one the study's own loader reads; the second is how
earlier exports nest it. Which key of a question's path names the entity is
detected, not assumed by position: the key whose last word is a plural
shape name (``red_triangles``, ``small_blue_crosses``), else the one key that
is not a known question kind (``count_closed``, ``count_open``, ...); when
neither picks exactly one key the error names the file, image id and keys.
The other key(s), joined by ``_``, are the row's ``query_type``, so both
forms give identical rows. The answer is found by the question's own path,
then entity-first, kind-first or the entity alone.

Every (image, entity, question kind) becomes one row (``question_kinds``
keeps a subset; the others are counted as ``question_kind_not_kept``). The entity key gives ``entity_type`` (``red_triangle``; a
leading size word is kept, ``small_red_triangle``), ``color``, ``shape`` and
``size`` (null when absent). Images are ``<image_id>`` or
``<image_id>.png|.jpg|.jpeg`` under the images directory; rows whose image is
missing are dropped and counted. A split list file assigns those ids to its
split; other ids get ``split``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Any, Literal

import polars as pl
from pydantic import Field

from vlmscope.data.importers.common import (
    ImageSink,
    ImportConfigBase,
    ImportReport,
    check_count,
    find_image,
    load_json,
    safe_relative,
    shown_names,
    usable_image,
    write_import,
)
from vlmscope.errors import ImporterError, NotFound

__all__ = ["CountingQaImportConfig", "import_counting_qa", "parse_entity", "entity_key", "QUESTION_KINDS"]

_SPLIT_FILES = {"train": "train_ids.json", "valid": "valid_ids.json", "test": "test_ids.json"}
_EXTS = ("", ".png", ".jpg", ".jpeg")
_SIZES = {"small", "large", "big", "medium", "tiny"}
_MAX_KEYS = 4
QUESTION_KINDS = frozenset({"count_closed", "count_open", "count", "closed", "open"})
"""Keys that name a question kind, never an entity."""
_SHAPES = ("circle", "square", "rectangle", "triangle", "pentagon", "hexagon", "star", "cross", "diamond", "heart")
_SHAPE_PLURALS = frozenset({f"{s}s" for s in _SHAPES} | {f"{s}es" for s in _SHAPES})


class CountingQaImportConfig(ImportConfigBase):
    """How the counting study's question/answer files become rows."""

    split: Literal["train", "valid", "test"] = "test"
    """Split of images not listed in a ``*_ids.json`` file."""
    question_kinds: list[str] | None = Field(default=None, min_length=1)
    """Question kinds to keep (``count_closed``, ``count_open``, ...); ``None`` keeps all."""
    prompt_prefix: str = ""
    """Text put before every question (the study used "Answer using as few words as possible. ")."""


def parse_entity(key: str) -> dict[str, str | None]:
    """``'small_red_circles' -> {entity_type: 'small_red_circle', size: 'small', color: 'red', shape: 'circle'}``."""
    parts = key.strip().split("_")
    shape = parts[-1]
    if shape.endswith("es") and shape[:-2] in _SHAPES:  # crosses -> cross
        shape = shape[:-2]
    elif shape.endswith("s") and len(shape) > 1:
        shape = shape[:-1]
    size = parts[0] if len(parts) >= 3 and parts[0] in _SIZES else None
    rest = parts[1 if size else 0 : -1]
    color = "_".join(rest) if rest else None
    entity = "_".join(p for p in (size, color, shape) if p)
    return {"entity_type": entity, "size": size, "color": color, "shape": shape}


def entity_key(keys: Sequence[str]) -> str | None:
    """The key of a question's path that names the entity, or ``None`` when not exactly one can be told.

    A key whose last ``_`` word is a plural shape name wins; else the one key
    that is not a known question kind.
    """
    shaped = [k for k in keys if k.strip().rsplit("_", 1)[-1].lower() in _SHAPE_PLURALS]
    if len(shaped) == 1:
        return shaped[0]
    if shaped:
        return None
    others = [k for k in keys if k.strip() and k not in QUESTION_KINDS]
    return others[0] if len(others) == 1 else None


def _leaves(node: Any, keys: tuple[str, ...], where: str) -> list[tuple[tuple[str, ...], str]]:
    """Every ``(key path, question)`` under one image's object; a question sits two to ``_MAX_KEYS`` keys deep."""
    if len(keys) > _MAX_KEYS:
        raise ImporterError(f"{where}{''.join(f'[{k!r}]' for k in keys)}: questions nested deeper than {_MAX_KEYS} keys")
    if isinstance(node, dict) and node:
        return [leaf for k, v in node.items() for leaf in _leaves(v, (*keys, k), where)]
    if isinstance(node, str) and len(keys) >= 2:
        return [(keys, node)]
    at = where + "".join(f"[{k!r}]" for k in keys)
    if len(keys) < 2:
        raise ImporterError(f"{at}: expected an object of question kinds, got {node!r:.80}")
    raise ImporterError(f"{at}: a question must be a string, got {node!r:.80}")


def _split_lists(folder: Path) -> dict[str, str]:
    assigned: dict[str, str] = {}
    for split, name in _SPLIT_FILES.items():
        path = folder / name
        if not path.is_file():
            continue
        ids = load_json(path)
        if not isinstance(ids, list):
            raise ImporterError(f"{path}: expected a JSON list of image ids, got {type(ids).__name__}")
        for k, i in enumerate(ids):
            if not isinstance(i, (str, int)) or isinstance(i, bool):
                raise ImporterError(f"{path}: entry {k} must be an image id (string or integer), got {i!r:.80}")
            if str(i) in assigned and assigned[str(i)] != split:
                raise ImporterError(f"{path}: image id {i!r} is also listed in {_SPLIT_FILES[assigned[str(i)]]}")
            assigned[str(i)] = split
    return assigned


def _answer(answers: Any, image_id: str, path: tuple[str, ...], entity: str, apath: Path) -> int:
    """The count for the question at ``path``: by that path, entity-first, kind-first or the entity alone."""
    per_image = answers.get(image_id)
    if not isinstance(per_image, dict):
        raise ImporterError(f"{apath}: no answers for image {image_id!r} (questions.json asks about it)")
    kinds = tuple(k for k in path if k != entity)
    for keys in (path, (entity, *kinds), (*kinds, entity), (entity,)):
        node: Any = per_image
        for k in keys:
            node = node.get(k) if isinstance(node, dict) else None
        if node is None or isinstance(node, dict):
            continue
        where = f"{apath}: [{image_id!r}]" + "".join(f"[{k!r}]" for k in keys)
        if not isinstance(node, int) or isinstance(node, bool) or node < 0:
            raise ImporterError(f"{where}: answer must be a non-negative integer count, got {node!r:.80}")
        return check_count(node, where, "answer")
    at = "".join(f"[{k!r}]" for k in path)
    raise ImporterError(f"{apath}: [{image_id!r}]{at}: missing answer for the question in questions.json")


def _folder(src: Path) -> Path:
    src = Path(src)
    if src.is_file():
        return src.parent
    if src.is_dir():
        return src
    raise NotFound(f"{src}: no such file or directory")


def import_counting_qa(
    sources: Sequence[Path],
    images: Path,
    out: Path,
    config: CountingQaImportConfig = CountingQaImportConfig(),
) -> ImportReport:
    """Import one or more counting-study folders into the dataset directory ``out``.

    ``images`` holds the image files of every source folder (ids must not clash).
    """
    if not sources:
        raise ImporterError("counting-qa: give at least one folder with questions.json and answers.json")
    report = ImportReport("counting-qa")
    rows: list[dict[str, Any]] = []
    keep = set(config.question_kinds) if config.question_kinds else None
    found_ids: set[str] = set()
    for src in sources:
        folder = _folder(Path(src))
        qpath, apath = folder / "questions.json", folder / "answers.json"
        questions, answers = load_json(qpath), load_json(apath)
        for name, obj in ((qpath, questions), (apath, answers)):
            if not isinstance(obj, dict):
                raise ImporterError(f"{name}: expected a JSON object keyed by image id, got {type(obj).__name__}")
        splits = _split_lists(folder)
        for image_id, asked in questions.items():
            where = f"{qpath}: [{image_id!r}]"
            report.n_records += 1
            if not isinstance(asked, dict):
                raise ImporterError(f"{where}: expected an object of questions (kind and entity keys), got {asked!r:.80}")
            rel = safe_relative(image_id, where)
            src_img = None
            for ext in _EXTS:
                src_img = find_image(Path(images), rel.with_name(rel.name + ext))
                if src_img is not None:
                    break
            todo = []
            for keys, question in _leaves(asked, (), where):
                entity = entity_key(keys)
                if entity is None:
                    raise ImporterError(
                        f"{where}: cannot tell which of the keys {shown_names(keys)} names the entity "
                        "(expected one '<color>_<shape>s' key beside question kinds such as count_closed)"
                    )
                kind = "_".join(k for k in keys if k != entity)
                if keep is not None and kind not in keep:
                    report.drop("question_kind_not_kept", kind)
                    continue
                todo.append((entity, kind, question, _answer(answers, image_id, keys, entity, apath)))
            if not todo:
                continue
            if not usable_image(src_img, image_id, report, len(todo)):
                continue
            for entity, kind, question, count in todo:
                sid = f"{image_id}-{entity}-{kind}"
                if sid in found_ids:
                    raise ImporterError(
                        f"{where}: the {kind} question about {entity!r} is asked twice "
                        "(nested both ways, or the image id appears in two source folders)"
                    )
                found_ids.add(sid)
                rows.append(
                    {
                        "sample_id": sid,
                        "src": src_img,
                        "rel": PurePosixPath(src_img.relative_to(Path(images)).as_posix()),
                        "prompt": f"{config.prompt_prefix}{question.strip()}",
                        "count": count,
                        "split": splits.get(image_id, config.split),
                        "query_type": kind,
                        "image_id": image_id,
                        **parse_entity(entity),
                    }
                )
    if not rows:
        raise ImporterError(f"counting-qa: no rows to write; {report.summary()}")
    report.count_rows(rows)

    def build(tmp: Path) -> pl.DataFrame:
        image_paths = ImageSink(tmp, config.image_mode).place_rows(rows)
        cols = [
            "sample_id",
            "prompt",
            "split",
            "count",
            "query_type",
            "entity_type",
            "size",
            "color",
            "shape",
            "image_id",
        ]
        data: dict[str, list[Any]] = {c: [r[c] for r in rows] for c in cols}
        data["image"] = image_paths
        data["answer"] = [str(r["count"]) for r in rows]
        data["answer_type"] = ["count"] * len(rows)
        df = pl.DataFrame(data, schema_overrides={"count": pl.Int64, "size": pl.String, "color": pl.String})
        return df.select(
            "sample_id",
            "image",
            "prompt",
            "answer",
            "split",
            "answer_type",
            pl.exclude("sample_id", "image", "prompt", "answer", "split", "answer_type"),
        )

    return write_import(out, config, report, build, sources=sources, images=str(images))
