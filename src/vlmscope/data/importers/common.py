"""Shared, safe plumbing for the real-data importers.

Every importer reads foreign files (JSON, parquet) that vlmscope did not
write, so every access goes through a helper here that names the file, the
record and the field in its error:

- :func:`load_json` turns a ``JSONDecodeError`` into ``file:line:col``.
- :func:`field` fetches a required record field with a type check.
- :func:`safe_relative` refuses absolute paths and ``..`` escapes *before*
  anything touches the filesystem (a record cannot make the importer read
  ``/etc/passwd`` or write outside the dataset).
- :class:`ImageSink` places source images under ``DATASET/images/``, by hard
  link when source and dataset share a filesystem (instant, no extra disk;
  images are never modified in place, and the dataset fingerprint covers
  their bytes) and by copy otherwise or when ``image_mode="copy"`` (use copy
  when the source tree may be edited or deleted later).
- :class:`ImportReport` counts every dropped row by reason; it is written to
  ``DATASET/import_report.json`` and printed by the CLI, so nothing is
  dropped silently.
- :func:`write_import` writes the dataset with the params and report every
  importer records, so all imports are described alike in ``dataset.json``.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from dataclasses import field as dc_field
from pathlib import Path, PurePosixPath
from typing import Any, Literal

import polars as pl
from PIL import Image, UnidentifiedImageError
from pydantic import BaseModel, ConfigDict

from vlmscope.data.manifest import write_dataset
from vlmscope.data.reader import MAX_IMAGE_PIXELS
from vlmscope.errors import ImporterError, NotFound

__all__ = [
    "ImageMode",
    "ImportConfigBase",
    "ImportReport",
    "ImageSink",
    "MAX_COUNT",
    "check_count",
    "shown_names",
    "REPORT",
    "SPLIT_NAMES",
    "field",
    "find_image",
    "image_readable",
    "usable_image",
    "infer_split",
    "load_json",
    "safe_relative",
    "write_import",
]

ImageMode = Literal["link", "copy"]
REPORT = "import_report.json"
_MAX_EXAMPLES = 5


class ImportConfigBase(BaseModel):
    """Knobs every importer shares."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    image_mode: ImageMode = "link"
    """``link``: hard link source images (copy across filesystems); ``copy``: always copy."""


@dataclass
class ImportReport:
    """What an import kept and what it dropped (by reason, with a few examples)."""

    importer: str
    n_records: int = 0
    """Source records read (images for VRD, conversations for LLaVA, ...)."""
    n_rows: int = 0
    """Manifest rows written."""
    n_images: int = 0
    """Distinct images placed under ``images/``."""
    dropped: dict[str, int] = dc_field(default_factory=dict)
    """Rows dropped per reason (``missing_image``, ``same_family``, ``duplicate``, ...)."""
    examples: dict[str, list[str]] = dc_field(default_factory=dict)
    notes: list[str] = dc_field(default_factory=list)

    def drop(self, reason: str, example: str, n: int = 1) -> None:
        self.dropped[reason] = self.dropped.get(reason, 0) + n
        ex = self.examples.setdefault(reason, [])
        if len(ex) < _MAX_EXAMPLES and example not in ex:
            ex.append(example)

    def count_rows(self, rows: list[dict[str, Any]]) -> None:
        """Record the rows to write and their distinct images (rows carry the image's ``rel`` path)."""
        self.n_rows, self.n_images = len(rows), len({str(r["rel"]) for r in rows})

    def to_dict(self) -> dict[str, Any]:
        return {
            "importer": self.importer,
            "n_records": self.n_records,
            "n_rows": self.n_rows,
            "n_images": self.n_images,
            "dropped": dict(sorted(self.dropped.items())),
            "examples": dict(sorted(self.examples.items())),
            "notes": list(self.notes),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    def summary(self) -> str:
        """One paragraph for the terminal."""
        lines = [f"{self.importer}: {self.n_records} source records -> {self.n_rows} rows, {self.n_images} images"]
        for reason, n in sorted(self.dropped.items()):
            ex = ", ".join(self.examples.get(reason, []))
            lines.append(f"  dropped {n} row(s): {reason}" + (f" (e.g. {ex})" if ex else ""))
        lines.extend(f"  note: {n}" for n in self.notes)
        return "\n".join(lines)


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


def load_json(path: str | os.PathLike[str]) -> Any:
    """Parse a JSON file; malformed JSON names the file, line and column.

    Two things Python's parser accepts are refused too, because they crash
    later far from the file: nesting deeper than the interpreter's recursion
    limit, and ``\\udXXX`` escapes of lone UTF-16 surrogates (not text: no
    UTF-8 writer, parquet included, can store them).
    """
    path = Path(path)
    if not path.is_file():
        raise NotFound(f"{path}: no such file")
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ImporterError(f"{path}:{e.lineno}:{e.colno}: malformed JSON: {e.msg}") from None
    except UnicodeDecodeError as e:
        raise ImporterError(f"{path}: not UTF-8 text (byte {e.start}): is this the right file?") from None
    except RecursionError:
        raise ImporterError(f"{path}: JSON nested too deeply to read") from None
    if "\\u" in text:
        try:
            json.dumps(data, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            m = _SURROGATE_ESCAPE.search(text)
            at = f":{text.count(chr(10), 0, m.start()) + 1}" if m else ""
            got = f" ({m.group(0)})" if m else ""
            raise ImporterError(f"{path}{at}: a \\u escape encodes a lone UTF-16 surrogate{got}, not text") from None
    return data


MAX_COUNT = 2**63 - 1
"""Largest count a manifest's ``Int64`` column holds; a larger one is an error, not an overflow."""


def check_count(value: int, where: str, name: str) -> int:
    """``value`` if ``0 <= value <= MAX_COUNT``; else an error naming ``where`` and the field."""
    if not 0 <= value <= MAX_COUNT:
        raise ImporterError(f"{where}: field {name!r} must be a count in 0..{MAX_COUNT}, got {value!r:.80}")
    return value


def shown_names(names: Any) -> str:
    """Comma-joined names, each ``repr``-quoted when it is not printable (a key ``"\\n"`` must not break the line)."""
    return ", ".join(s if s.isprintable() else repr(s) for s in map(str, names))


_TYPE_NAMES = {str: "a string", int: "an integer", list: "a list", dict: "an object", float: "a number"}


def field(record: Any, name: str, types: type | tuple[type, ...], where: str) -> Any:
    """``record[name]``, checked to be of ``types``; errors name ``where`` and the field.

    ``bool`` is never accepted where an integer is expected (JSON ``true`` is
    not a count).
    """
    if not isinstance(record, Mapping):
        raise ImporterError(f"{where}: expected an object with field {name!r}, got {type(record).__name__}")
    if name not in record:
        raise ImporterError(f"{where}: missing field {name!r} (fields: {shown_names(record)})")
    value = record[name]
    tt = types if isinstance(types, tuple) else (types,)
    if not isinstance(value, tt) or (isinstance(value, bool) and bool not in tt):
        want = " or ".join(_TYPE_NAMES.get(t, t.__name__) for t in tt)
        raise ImporterError(f"{where}: field {name!r} must be {want}, got {value!r:.80}")
    return value


_DRIVE = re.compile(r"^[A-Za-z]:[\\/]")


def safe_relative(value: str, where: str) -> PurePosixPath:
    """``value`` as a relative POSIX path that cannot leave its root.

    Refuses absolute paths (``/x``, ``C:\\x``, ``\\\\server``), ``..``
    components and empty paths; the error names ``where`` and the value.
    Backslashes are read as separators so Windows-made annotations work.
    """
    raw = value.replace("\\", "/")
    p = PurePosixPath(raw)
    if not raw.strip() or p.is_absolute() or _DRIVE.match(value) or value.startswith("\\\\"):
        raise ImporterError(
            f"{where}: image path {value!r} must be relative to the images directory (absolute paths are refused)"
        )
    if ".." in p.parts:
        raise ImporterError(f"{where}: image path {value!r} escapes the images directory with '..'")
    parts = [x for x in p.parts if x not in (".", "")]
    if not parts:
        raise ImporterError(f"{where}: image path {value!r} names no file")
    return PurePosixPath(*parts)


def find_image(root: Path, rel: PurePosixPath, alternatives: tuple[str, ...] = ()) -> Path | None:
    """The first existing file among ``root/rel`` and ``root/<alt>/rel``; ``None`` if none."""
    for prefix in ("", *alternatives):
        p = root / prefix / rel if prefix else root / rel
        try:
            if p.is_file():
                return p
        except OSError:  # a name too long for the filesystem (ENAMETOOLONG) names no file
            continue
    return None


def image_readable(path: Path, max_pixels: int = MAX_IMAGE_PIXELS) -> bool:
    """Whether PIL recognises the file's header and it declares at most ``max_pixels`` (cheap: no pixel decode).

    A decompression bomb (a tiny file declaring 30000x30000 pixels) is an
    unreadable image here, as it is to :func:`vlmscope.data.reader.load_image`
    later, rather than a crash of the whole import.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                w, h = im.size
        return w * h <= max_pixels
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError):
        return False


def usable_image(src: Path | None, example: str, report: ImportReport, n: int = 1, *, what: str = "image") -> bool:
    """Whether ``src`` was found and opens as an image; if not, its ``n`` rows are dropped as such.

    The reasons (``missing_image``, ``unreadable_image``) are the same in every
    importer, so the report reads alike whatever the source; ``what`` names a
    second kind of image a source has (``masked_image``: ``missing_masked_image``).
    """
    if src is None:
        report.drop(f"missing_{what}", example, n)
        return False
    if not image_readable(src):
        report.drop(f"unreadable_{what}", example, n)
        return False
    return True


SPLIT_NAMES = {"train": "train", "valid": "valid", "val": "valid", "test": "test"}
"""A split's name in a source's file or folder names -> the manifest's split (``val`` is read as ``valid``)."""


def infer_split(path: Path, given: str | None) -> str:
    """``given`` if set, else the split the file name says (``sg_train_...`` -> train) or its folder is named."""
    if given is not None:
        return given
    tokens = re.split(r"[^a-z]+", path.stem.lower())
    for word, split in SPLIT_NAMES.items():
        if word in tokens:
            return split
    for word, split in SPLIT_NAMES.items():
        if path.parent.name.lower() == word:
            return split
    raise ImporterError(f"{path}: cannot tell the split from the file or folder name; pass --split train|valid|test")


class ImageSink:
    """Places source images under ``<dataset>/images/`` once each; returns manifest paths.

    Two different source files may not land on one destination name; the
    error names both, so a flattening mistake never overwrites an image.
    """

    def __init__(self, dataset_dir: Path, mode: ImageMode) -> None:
        self.root = dataset_dir
        self.mode = mode
        self._placed: dict[str, Path] = {}

    def __len__(self) -> int:
        return len(self._placed)

    def place(self, src: Path, rel: PurePosixPath) -> str:
        """Put ``src`` at ``images/<rel>`` and return that manifest path (``images/...``)."""
        dest_rel = str(PurePosixPath("images") / rel)
        prev = self._placed.get(dest_rel)
        if prev is not None:
            if prev != src and not os.path.samefile(prev, src):
                raise ImporterError(f"two source images map to {dest_rel}: {prev} and {src}")
            return dest_rel
        dest = self.root / dest_rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        self._link_or_copy(src, dest)
        self._placed[dest_rel] = src
        return dest_rel

    def place_rows(self, rows: list[dict[str, Any]]) -> list[str]:
        """:meth:`place` each row's ``src`` at its ``rel``; the manifest paths in row order."""
        return [self.place(r["src"], PurePosixPath(r["rel"])) for r in rows]

    def write(self, rel: PurePosixPath, data: bytes) -> str:
        """Write image bytes to ``images/<rel>`` (importers whose images live inside the source)."""
        dest_rel = str(PurePosixPath("images") / rel)
        if dest_rel in self._placed:
            raise ImporterError(f"two images map to {dest_rel}")
        dest = self.root / dest_rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(data)
        self._placed[dest_rel] = dest
        return dest_rel

    def _link_or_copy(self, src: Path, dest: Path) -> None:
        if self.mode == "link":
            try:
                # the link's target, not the link: Linux link(2) would copy a symlink as a symlink, and a
                # relative one dangles (or points elsewhere) once inside the dataset
                os.link(os.path.realpath(src), dest)
                return
            except OSError as e:
                if e.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EACCES):
                    raise
        shutil.copyfile(src, dest)


_INPUT_PARAMS = ("images", "masked_images", "image_root", "image_dir", "seen_classes")
"""``params`` that name an input folder the output must not replace or sit in."""


def write_import(
    out: str | os.PathLike[str],
    config: BaseModel,
    report: ImportReport,
    build: Callable[[Path], pl.DataFrame],
    *,
    sources: Any,
    seed: int | None = None,
    **params: Any,
) -> ImportReport:
    """Write the dataset ``out`` atomically, as every importer does; returns ``report``.

    ``build(tmp)`` places the images and returns the manifest; the report is
    then written beside it as ``import_report.json``. ``dataset.json`` names the
    importer (``report.importer``) and records the config, the ``sources`` and
    any further ``params`` (in that order), and the report under ``extra``.
    """

    def build_and_report(tmp: Path) -> pl.DataFrame:
        df = build(tmp)
        (tmp / REPORT).write_text(report.to_json())
        return df

    write_dataset(
        out,
        generator=report.importer,
        params={**config.model_dump(), "sources": [str(s) for s in sources], **params},
        seed=seed,
        build=build_and_report,
        extra={"import_report": report.to_dict()},
        inputs=[*sources, *(v for k, v in params.items() if k in _INPUT_PARAMS)],
    )
    return report
