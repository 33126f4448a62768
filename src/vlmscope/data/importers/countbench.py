"""CountBenchQA parquet -> counting rows with the images written out.

CountBenchQA ships as parquet with columns ``image`` (the encoded image:
raw bytes, or the Hugging Face ``{"bytes", "path"}`` struct), ``text`` (the
caption), ``question`` and ``number`` (the count). ``SRC`` is a parquet
file or a folder of them (read in name order; rows numbered across files).

Each image is decoded with PIL to check it is a real picture, then its
original bytes are written unchanged to ``images/<sample_id>.<ext>`` (the
extension from the decoded format), so no recompression touches the pixels.
Rows whose image is null or does not decode are dropped and counted.

Rows: ``answer`` = str(number), ``answer_type`` = ``count``, columns
``count`` and ``text``; split ``test`` unless set (CountBenchQA is an
evaluation set).
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, Literal

import polars as pl
import pyarrow.parquet as pq
from PIL import Image, UnidentifiedImageError

from vlmscope.data.importers.common import (
    ImageSink,
    ImportConfigBase,
    ImportReport,
    check_count,
    shown_names,
    write_import,
)
from vlmscope.data.reader import MAX_IMAGE_PIXELS
from vlmscope.errors import ImporterError, NotFound
from vlmscope.templates import template_check

__all__ = ["CountBenchImportConfig", "import_countbench", "REQUIRED"]

REQUIRED = ("image", "question", "number")
_EXT = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp", "GIF": "gif", "BMP": "bmp", "TIFF": "tif"}


class CountBenchImportConfig(ImportConfigBase):
    """How CountBenchQA rows become manifest rows (``image_mode`` is unused: images are written)."""

    split: Literal["train", "valid", "test"] = "test"
    prompt_template: Annotated[str, template_check("question")] = "{question}"
    """Question text; ``{question}`` is the row's question (add e.g. an answer-format hint)."""


def _parquet_files(src: Path) -> list[Path]:
    src = Path(src)
    if src.is_file():
        return [src]
    if src.is_dir():
        files = sorted(p for p in src.rglob("*.parquet") if p.is_file())
        if files:
            return files
        raise NotFound(f"{src}: no .parquet files in this folder")
    raise NotFound(f"{src}: no such file or directory")


def _image_bytes(value: Any, where: str) -> bytes | None:
    if value is None:
        return None
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if isinstance(value, dict):
        data = value.get("bytes")
        if data is None or isinstance(data, (bytes, bytearray)):
            return None if data is None else bytes(data)
    raise ImporterError(
        f"{where}: column 'image' must hold image bytes or {{'bytes', 'path'}}, got {type(value).__name__}"
    )


def _decode(data: bytes) -> str | None:
    """The file extension of the decoded format, or ``None`` when PIL cannot decode it."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data))
        with im:
            if im.size[0] * im.size[1] > MAX_IMAGE_PIXELS:  # a decompression bomb: refuse before decoding
                return None
            im.load()
            fmt = im.format
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        return None
    return _EXT.get(fmt or "", (fmt or "img").lower())


def _number(value: Any, where: str) -> int:
    if isinstance(value, bool) or value is None:
        raise ImporterError(f"{where}: column 'number' must be a non-negative integer, got {value!r}")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str) and value.strip().isdecimal() and len(value.strip()) <= 19:
        value = int(value.strip())  # isdecimal, not isdigit: int() refuses '²'; 19 digits bound int64
    if not isinstance(value, int) or value < 0:
        raise ImporterError(f"{where}: column 'number' must be a non-negative integer, got {value!r}")
    return check_count(value, where, "number")


def import_countbench(
    sources: Sequence[Path], out: Path, config: CountBenchImportConfig = CountBenchImportConfig()
) -> ImportReport:
    """Import CountBenchQA parquet file(s) into the dataset directory ``out``."""
    files = [f for s in sources for f in _parquet_files(Path(s))]
    if not files:
        raise ImporterError("countbench: give a parquet file or a folder of parquet files")
    report = ImportReport("countbench")
    rows: list[dict[str, Any]] = []
    for f in files:
        try:
            table = pq.read_table(f)
        except Exception as e:  # pyarrow raises several kinds on a bad file
            raise ImporterError(f"{f}: unreadable parquet: {e}") from None
        missing = [c for c in REQUIRED if c not in table.column_names]
        if missing:
            raise ImporterError(f"{f}: missing column(s) {missing} (columns: {shown_names(table.column_names)})")
        cols = {c: table.column(c).to_pylist() for c in (*REQUIRED, "text") if c in table.column_names}
        for i in range(table.num_rows):
            where = f"{f}: row {i}"
            n = report.n_records
            report.n_records += 1
            sid = f"countbench-{n:04d}"
            question = cols["question"][i]
            if not isinstance(question, str) or not question.strip():
                raise ImporterError(f"{where}: column 'question' must be a non-empty string, got {question!r:.80}")
            number = _number(cols["number"][i], where)
            data = _image_bytes(cols["image"][i], where)
            if data is None:
                report.drop("missing_image", sid)
                continue
            ext = _decode(data)
            if ext is None:
                report.drop("unreadable_image", sid)
                continue
            text = cols.get("text", [None] * table.num_rows)[i]
            rows.append(
                {
                    "sample_id": sid,
                    "data": data,
                    "ext": ext,
                    "question": question.strip(),
                    "count": number,
                    "text": text,
                }
            )
    if not rows:
        raise ImporterError(f"countbench: no rows to write; {report.summary()}")
    report.n_rows = report.n_images = len(rows)

    def build(tmp: Path) -> pl.DataFrame:
        sink = ImageSink(tmp, "copy")
        image_paths = [sink.write(PurePosixPath(f"{r['sample_id']}.{r['ext']}"), r["data"]) for r in rows]
        return pl.DataFrame(
            {
                "sample_id": [r["sample_id"] for r in rows],
                "image": image_paths,
                "prompt": [config.prompt_template.format(question=r["question"]) for r in rows],
                "answer": [str(r["count"]) for r in rows],
                "split": [config.split] * len(rows),
                "answer_type": ["count"] * len(rows),
                "count": [r["count"] for r in rows],
                "text": [r["text"] if isinstance(r["text"], str) else None for r in rows],
            },
            schema_overrides={"count": pl.Int64, "text": pl.String},
        )

    return write_import(out, config, report, build, sources=sources)
