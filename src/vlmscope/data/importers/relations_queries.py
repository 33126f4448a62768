"""The relational study's released prompts (``prompts/queries.json``) -> paired choice rows.

``queries.json`` is a JSON list of images::

    {"image_id": ..., "image_filename": "3.png",
     "questions": [{"query_type": "count",
                    "query": "How many shapes are in the image? Here are your options: a) 0 b) 3 c) 1 d) 2
                              Please only reply with the correct option.",
                    "ground_truth": "d)", "ground_truth_masked": "None"}, ...]}

The options are inline in ``query``: a choice is the text after ``x)`` up to
the next option letter (``a)``, ``b)``, ... in order), cut at the first
sentence end, line break or ``Please`` so the closing instruction does not
end up in the last choice. Answers are option letters (``d``, ``d)``, ``D)``) or ``None``
when no option is right (the masked image lost what the question asks about).

Every question is asked of the original image (``<images>/<image_filename>``)
and of its masked copy (``<masked_images>/<image_filename>``), one row each,
with the columns the relations generator writes where they apply:
``prompt`` = the query as given, ``answer`` = the option's capital letter
(``"None"`` for no option, with ``answer_index`` and ``answer_text`` null),
``answer_type`` ``choice``, ``choices``, ``query_type``, ``variant``
(``original`` / ``masked``), ``source_id`` (the same for both rows of a
question: the evaluation's masked-vs-original stats pair on it) and
``image_id`` (the record's id; ``<id>-masked`` for the masked image). Images
land at ``images/original/<file>`` and ``images/masked/<file>``.

A missing or unreadable masked image drops that image's masked rows (counted
as ``missing_masked_image`` / ``unreadable_masked_image``) and keeps the
originals; a missing original drops both variants (``missing_image``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Any, Literal

import polars as pl

from vlmscope.data.importers.common import (
    ImageSink,
    ImportConfigBase,
    ImportReport,
    field,
    find_image,
    load_json,
    safe_relative,
    usable_image,
    write_import,
)
from vlmscope.errors import ImporterError

__all__ = ["RelationsQueriesImportConfig", "import_relations_queries", "parse_options", "parse_letter", "NONE"]

NONE = "None"
"""The ground truth (and manifest ``answer``) when no option is right."""
_MARKER = re.compile(r"(?:^|(?<=[\s:;,]))([A-Za-z])\)")
_END = re.compile(r"[.?!](?=\s|$)|\n|\bplease\b", re.IGNORECASE)


class RelationsQueriesImportConfig(ImportConfigBase):
    """How the released relational-reasoning prompts become rows."""

    split: Literal["train", "valid", "test"] = "test"
    """Split of every row (the released prompts are an evaluation set)."""


def parse_options(query: str) -> list[str]:
    """The inline options of ``query`` in letter order (``a) 0 b) 3 ...`` -> ``["0", "3", ...]``).

    Markers must run ``a)``, ``b)``, ``c)`` ... in order (either case); a
    marker out of sequence is part of the option text. Each option ends at the
    next marker, or at the first sentence end, line break or ``Please``. Fewer than two
    options, or an empty one, is an error (``ValueError`` with the reason).
    """
    starts: list[tuple[int, int]] = []  # (marker start, text start)
    for m in _MARKER.finditer(query):
        if m.group(1).lower() == chr(ord("a") + len(starts)):
            starts.append((m.start(), m.end()))
    if len(starts) < 2:
        raise ValueError(f"found {len(starts)} inline option(s) 'a) ... b) ...'; need at least 2")
    options = []
    for k, (_, begin) in enumerate(starts):
        end = starts[k + 1][0] if k + 1 < len(starts) else len(query)
        text = query[begin:end]
        cut = _END.search(text)
        text = (text[: cut.start()] if cut else text).strip().rstrip(",;").strip()
        if not text:
            raise ValueError(f"option {chr(ord('a') + k)}) is empty")
        options.append(text)
    return options


def parse_letter(value: Any, n_options: int) -> int | None:
    """Option index of a ground truth (``"d)"``, ``"d"``, ``"D)"``); ``None`` for ``"None"`` (or JSON null).

    Raises ``ValueError`` for anything else, a letter past the options included.
    """
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"must be an option letter such as 'd)' or 'None', got {value!r:.80}")
    t = value.strip().rstrip(".").rstrip(")").strip().lstrip("(")
    if t.lower() == NONE.lower():
        return None
    if len(t) == 1 and t.isascii() and t.isalpha():
        k = ord(t.lower()) - ord("a")
        if k < n_options:
            return k
        raise ValueError(f"names option {value!r} but the query has only {n_options} options")
    raise ValueError(f"must be an option letter such as 'd)' or 'None', got {value!r:.80}")


def _records(path: Path) -> list[Any]:
    data = load_json(path)
    if not isinstance(data, list):
        raise ImporterError(f"{path}: expected a JSON list of images with questions, got {type(data).__name__}")
    return data


def _question(q: Any, where: str) -> dict[str, Any]:
    """One question's fields, its options and both truths; errors name ``where`` and the field."""
    query = field(q, "query", str, where)
    try:
        options = parse_options(query)
    except ValueError as e:
        raise ImporterError(f"{where}: field 'query': {e}") from None
    truths = {}
    for name in ("ground_truth", "ground_truth_masked"):
        if name not in q:
            field(q, name, str, where)  # the missing-field error
        try:
            truths[name] = parse_letter(q[name], len(options))
        except ValueError as e:
            raise ImporterError(f"{where}: field {name!r} {e}") from None
    return {
        "query": query,
        "query_type": field(q, "query_type", str, where).strip(),
        "options": options,
        "truths": truths,
    }


def _row(
    rid: str, j: int, q: dict[str, Any], variant: str, src: Path, rel: PurePosixPath, split: str
) -> dict[str, Any]:
    k = q["truths"]["ground_truth" if variant == "original" else "ground_truth_masked"]
    image_id = rid if variant == "original" else f"{rid}-masked"
    return {
        "sample_id": f"{image_id}-q{j:03d}",
        "src": src,
        "rel": PurePosixPath(variant) / rel,
        "prompt": q["query"],
        "answer": NONE if k is None else chr(ord("A") + k),
        "split": split,
        "choices": q["options"],
        "answer_index": k,
        "answer_text": None if k is None else q["options"][k],
        "query_type": q["query_type"],
        "variant": variant,
        "source_id": f"{rid}-q{j:03d}",
        "image_id": image_id,
    }


def import_relations_queries(
    sources: Sequence[Path],
    images: Path,
    out: Path,
    config: RelationsQueriesImportConfig = RelationsQueriesImportConfig(),
    *,
    masked_images: Path | None = None,
) -> ImportReport:
    """Import ``queries.json`` file(s) into the dataset directory ``out``.

    ``images`` holds the original images, ``masked_images`` their masked
    copies under the same names (``None``: original rows only, noted in the
    report).
    """
    if not sources:
        raise ImporterError("relations-queries: give the queries.json file")
    report = ImportReport("relations-queries")
    if masked_images is None:
        report.notes.append("no masked images folder given: original rows only")
    rows: list[dict[str, Any]] = []
    seen: dict[str, str] = {}
    for path in map(Path, sources):
        for i, rec in enumerate(_records(path)):
            where = f"{path}: record {i}"
            report.n_records += 1
            raw_id = field(rec, "image_id", (str, int), where)
            rid = str(raw_id).strip()
            if not rid:
                raise ImporterError(f"{where}: field 'image_id' is empty")
            if rid in seen:
                raise ImporterError(f"{where}: image_id {rid!r} already used by {seen[rid]}")
            seen[rid] = where
            rel = safe_relative(field(rec, "image_filename", str, where), where)
            questions = [
                _question(q, f"{where}: questions[{j}]")
                for j, q in enumerate(field(rec, "questions", list, where))
            ]
            if not questions:
                continue
            n = len(questions)
            src = find_image(Path(images), rel)
            masked = find_image(Path(masked_images), rel) if masked_images is not None else None
            if not usable_image(src, str(rel), report, n * (1 if masked_images is None else 2)):
                continue
            rows.extend(_row(rid, j, q, "original", src, rel, config.split) for j, q in enumerate(questions))
            if masked_images is not None and usable_image(masked, str(rel), report, n, what="masked_image"):
                rows.extend(_row(rid, j, q, "masked", masked, rel, config.split) for j, q in enumerate(questions))
    if not rows:
        raise ImporterError(f"relations-queries: no rows to write; {report.summary()}")
    report.count_rows(rows)

    def build(tmp: Path) -> pl.DataFrame:
        image_paths = ImageSink(tmp, config.image_mode).place_rows(rows)
        cols = ["sample_id", "prompt", "answer", "split", "choices", "answer_index", "answer_text",
                "query_type", "variant", "source_id", "image_id"]  # fmt: skip
        data: dict[str, list[Any]] = {c: [r[c] for r in rows] for c in cols}
        data["answer_type"] = ["choice"] * len(rows)
        df = pl.DataFrame(
            {**data, "image": image_paths},
            schema_overrides={"choices": pl.List(pl.String), "answer_index": pl.Int64, "answer_text": pl.String},
        )
        first = ["sample_id", "image", "prompt", "answer", "split", "answer_type", "choices", "answer_index"]
        return df.select(*first, *(c for c in cols if c not in first))

    params: dict[str, Any] = {"images": str(images)}
    if masked_images is not None:
        params["masked_images"] = str(masked_images)
    return write_import(out, config, report, build, sources=sources, **params)
