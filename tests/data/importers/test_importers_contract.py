"""What every registered importer promises, checked on each: report counts, one-line errors, no escapes.

Each importer gets a small valid source in its real format with one row
that must be dropped (its image is missing). Every importer then must:
write ``import_report.json`` whose counts match the dataset (rows in the
manifest, distinct images, drops by reason) and equal ``dataset.json``'s
copy; carry ``annotations.csv``; name the file, the record and the field in
a one-line error when a required field is missing; and refuse image paths
outside the image root. A newly registered importer without a source here
fails ``test_every_importer_is_covered``.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from vlmscope.data.annotations import ANNOTATIONS
from vlmscope.data.importers import IMPORTERS
from vlmscope.data.manifest import read_manifest
from vlmscope.errors import ImporterError


def _png(path: Path, shade: int = 100) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (6, 5), (shade, 20, 20)).save(path, format="PNG")
    return path


def _write(path: Path, data: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


@dataclass
class Source:
    """A valid source of one format, and where in its JSON the tests poke."""

    sources: list[Path]
    file: Path
    """The JSON file errors must name."""
    data: Any
    images: Path | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    required: tuple[Any, ...] = ()
    """Path into ``data`` to a required field: deleting it is an error naming that field."""
    image_path: tuple[Any, ...] = ()
    """Path into ``data`` to an image path (empty: the format carries none)."""
    where: str = "record 0"
    """How the error names the record the ``required`` field belongs to."""
    n_rows: int = 0
    dropped: dict[str, int] = field(default_factory=dict)


def _vrd(root: Path) -> Source:
    box = {"xmin": 0, "ymin": 0, "xmax": 4, "ymax": 4}
    data = [
        {"filename": f, "objects": [{"names": ["cat"], "bbox": box}, {"names": ["sofa"], "bbox": box}],
         "relationships": [{"objects": [0, 1], "relationship": "left of"}]}
        for f in ("a.png", "gone.png")
    ]  # fmt: skip
    _png(root / "img" / "a.png")
    ann = _write(root / "sg_train_annotations.json", data)
    return Source([ann], ann, data, root / "img", required=(0, "objects"), image_path=(0, "filename"),
                  n_rows=1, dropped={"missing_image": 1})  # fmt: skip


def _llava(root: Path) -> Source:
    data = [
        {"id": str(i), "image": f, "conversations": [{"from": "human", "value": "<image>\nWhat is it?"},
                                                     {"from": "gpt", "value": c}]}
        for i, (f, c) in enumerate([("a.png", "cat"), ("b.png", "dog"), ("gone.png", "cow")])
    ]  # fmt: skip
    _png(root / "img" / "a.png")
    _png(root / "img" / "b.png", 200)
    src = _write(root / "train.json", data)
    return Source([src], src, data, root / "img", params={"num_options": 2}, required=(0, "conversations"),
                  image_path=(0, "image"), n_rows=2, dropped={"missing_image": 1})  # fmt: skip


def _pixmo(root: Path) -> Source:
    data = [
        {"image_url": "http://x/0.jpg", "image_sha256": "ab", "count": n, "points": {"x": [1.0] * n, "y": [2.0] * n},
         "label": "boats", "image_path": f"{i}.jpg"}
        for i, n in enumerate((2, 3))
    ]  # fmt: skip
    _png(root / "pixmo" / "train" / "images" / "0.jpg")
    src = _write(root / "pixmo" / "train" / "samples.json", data)
    return Source([root / "pixmo"], src, data, root / "pixmo", required=(0, "count"), image_path=(0, "image_path"),
                  n_rows=1, dropped={"missing_image": 1})  # fmt: skip


def _countbench(root: Path) -> Source:
    buf = io.BytesIO()
    Image.new("RGB", (6, 5)).save(buf, format="PNG")
    src = root / "cb.parquet"
    root.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"image": [buf.getvalue(), None], "question": ["How many?", "How many?"],
                             "number": [2, 3]}), src)  # fmt: skip
    return Source([src], src, None, n_rows=1, dropped={"missing_image": 1})


def _counting_qa(root: Path) -> Source:
    data = {i: {"count_closed": {"red_stars": "How many red stars? Choose from [1, 2, 3]."}} for i in ("0", "1")}
    _write(root / "set" / "answers.json", {i: {"count_closed": {"red_stars": 2}} for i in ("0", "1")})
    _png(root / "img" / "0.png")
    src = _write(root / "set" / "questions.json", data)
    return Source([root / "set"], src, data, root / "img", n_rows=1, dropped={"missing_image": 1})


def _relations_queries(root: Path) -> Source:
    q = "How many shapes are there? Here are your options: a) 1 b) 2 Please only reply with the correct option."
    question = {"query_type": "count", "query": q, "ground_truth": "b)", "ground_truth_masked": "a)"}
    data = [{"image_id": i, "image_filename": f"{i}.png", "questions": [question]} for i in (0, 1, 2)]
    _png(root / "img" / "0.png")
    _png(root / "img" / "1.png")
    _png(root / "masked" / "0.png", 0)
    src = _write(root / "queries.json", data)
    return Source([src], src, data, root / "img", kwargs={"masked_images": root / "masked"},
                  required=(0, "questions", 0, "ground_truth"), image_path=(1, "image_filename"),
                  where="record 0: questions[0]", n_rows=3,
                  dropped={"missing_image": 2, "missing_masked_image": 1})  # fmt: skip


def _class_folders(root: Path) -> Source:
    _png(root / "knee" / "train" / "0" / "a.png")
    _png(root / "knee" / "train" / "1" / "b.png", 200)
    (root / "knee" / "test" / "1").mkdir(parents=True)
    (root / "knee" / "test" / "1" / "broken.png").write_bytes(b"not an image")
    _png(root / "knee" / "test" / "0" / "c.png", 50)
    return Source([root / "knee"], root / "knee", None, n_rows=3, dropped={"unreadable_image": 1})


SOURCES: dict[str, Callable[[Path], Source]] = {
    "vrd": _vrd,
    "llava": _llava,
    "pixmo-count": _pixmo,
    "countbench": _countbench,
    "counting-qa": _counting_qa,
    "relations-queries": _relations_queries,
    "class-folders": _class_folders,
}


def _run(name: str, src: Source, out: Path) -> Any:
    spec = IMPORTERS.get(name)
    return spec.run(src.sources, out, spec.config(**src.params), images=src.images, **src.kwargs)


def _edit(data: Any, path: tuple[Any, ...], value: Any = None, *, delete: bool = False) -> Any:
    data = json.loads(json.dumps(data))
    node = data
    for p in path[:-1]:
        node = node[p]
    if delete:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return data


def test_every_importer_is_covered() -> None:
    assert sorted(SOURCES) == IMPORTERS.names()


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_report_counts_match_the_dataset(name: str, tmp_path: Path) -> None:
    src = SOURCES[name](tmp_path / "src")
    out = tmp_path / "ds"
    report = _run(name, src, out)
    df = read_manifest(out)
    saved = json.loads((out / "import_report.json").read_text())
    assert saved == json.loads((out / "dataset.json").read_text())["extra"]["import_report"] == report.to_dict()
    assert saved["importer"] == name
    assert saved["n_rows"] == df.height == src.n_rows
    assert saved["n_images"] == df["image"].n_unique()
    assert saved["dropped"] == src.dropped
    assert saved["n_records"] >= 1 and all(saved["examples"][r] for r in src.dropped)
    assert pl.read_csv(out / ANNOTATIONS, infer_schema=False)["sample_id"].to_list() == df["sample_id"].to_list()


@pytest.mark.parametrize("name", sorted(n for n in SOURCES if n not in ("countbench", "counting-qa", "class-folders")))
def test_missing_field_is_one_line_naming_file_record_and_field(name: str, tmp_path: Path) -> None:
    src = SOURCES[name](tmp_path / "src")
    _write(src.file, _edit(src.data, src.required, delete=True))
    with pytest.raises(ImporterError) as e:
        _run(name, src, tmp_path / "ds")
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(f"{src.file}: {src.where}")
    assert repr(src.required[-1]) in msg
    assert not (tmp_path / "ds").exists()


@pytest.mark.parametrize("name", ["llava", "pixmo-count", "relations-queries", "vrd"])
@pytest.mark.parametrize("bad", ["../outside.png", "ABSOLUTE"])
def test_image_paths_outside_the_image_root_are_refused(name: str, bad: str, tmp_path: Path) -> None:
    src = SOURCES[name](tmp_path / "src")
    outside = _png(tmp_path / "src" / "outside.png")  # exists: refused for where it is, not for being absent
    value = str(outside) if bad == "ABSOLUTE" else "../" * 4 + "outside.png"
    _write(src.file, _edit(src.data, src.image_path, value))
    with pytest.raises(ImporterError, match=r"escapes the images directory|must be relative") as e:
        _run(name, src, tmp_path / "ds")
    assert str(e.value).startswith(str(src.file)) and "\n" not in str(e.value)
    assert not (tmp_path / "ds").exists()


def test_counting_qa_escape_and_missing_answer_name_the_file_and_image(tmp_path: Path) -> None:
    src = _counting_qa(tmp_path / "src")
    _write(src.file, {"../../x": src.data["0"]})
    with pytest.raises(ImporterError, match=r"questions.json: \['../../x'\]: image path '../../x' escapes"):
        _run("counting-qa", src, tmp_path / "ds")
    _write(src.file, src.data)
    _write(src.file.parent / "answers.json", {"0": {"count_closed": {"red_stars": 2}}, "1": {"count_closed": {}}})
    with pytest.raises(ImporterError) as e:
        _run("counting-qa", src, tmp_path / "ds")
    assert str(e.value).startswith(f"{src.file.parent / 'answers.json'}: ['1']['count_closed']['red_stars']")


def test_countbench_missing_column_names_the_file_and_column(tmp_path: Path) -> None:
    src = tmp_path / "cb.parquet"
    pq.write_table(pa.table({"image": [b"x"], "number": [1]}), src)
    with pytest.raises(ImporterError, match=r"cb.parquet: missing column\(s\) \['question'\]"):
        IMPORTERS.get("countbench").run([src], tmp_path / "ds")
