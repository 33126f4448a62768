"""Counting sources: balanced Pixmo-Count, CountBenchQA parquet, the counting study's QA folders."""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from vlmscope.data.importers.countbench import CountBenchImportConfig, import_countbench
from vlmscope.data.importers.counting_qa import CountingQaImportConfig, import_counting_qa, parse_entity
from vlmscope.data.importers.pixmo_count import PixmoCountImportConfig, import_pixmo_count
from vlmscope.data.manifest import read_manifest
from vlmscope.errors import ImporterError, NotFound

# -- Pixmo-Count ---------------------------------------------------------------


def _pixmo_record(name: str, count: int, sha: str) -> dict[str, Any]:
    return {
        "image_url": f"https://example.invalid/{name}",
        "image_sha256": sha,
        "count": count,
        "points": [{"x": 10.5 * k, "y": 3.0} for k in range(count)],
        "label": "boats",
        "image_path": f"pixmo/{name}",
    }


@pytest.fixture
def pixmo_source(
    tmp_path: Path, png: Callable[..., Path], write_json: Callable[[Path, Any], Path]
) -> tuple[Path, Path]:
    """(root with train/valid/test folders, images root); one test image is missing, one has a wrong hash."""
    images = tmp_path / "images"
    shas = {}
    for k, name in enumerate(["t0.png", "t1.png", "v0.png", "s0.png", "s1.png"]):
        p = png(images / "pixmo" / name, (k * 30, 5, 5))
        shas[name] = hashlib.sha256(p.read_bytes()).hexdigest()
    root = tmp_path / "pixmo-count"
    write_json(
        root / "train" / "samples.json",
        [_pixmo_record("t0.png", 2, shas["t0.png"]), _pixmo_record("t1.png", 0, shas["t1.png"])],
    )
    write_json(root / "val" / "samples.json", [_pixmo_record("v0.png", 3, shas["v0.png"])])
    write_json(
        root / "test" / "samples.json",
        [
            _pixmo_record("s0.png", 5, shas["s0.png"]),
            _pixmo_record("s1.png", 1, "0" * 64),
            _pixmo_record("gone.png", 4, "1" * 64),
        ],
    )
    return root, images


def test_pixmo_splits_from_folders(pixmo_source: tuple[Path, Path], tmp_path: Path) -> None:
    root, images = pixmo_source
    report = import_pixmo_count([root], images, tmp_path / "ds")
    df = read_manifest(tmp_path / "ds").sort("sample_id")
    assert df["split"].value_counts().sort("split").rows() == [("test", 2), ("train", 2), ("valid", 1)]
    assert report.dropped == {"missing_image": 1}
    row = df.filter(pl.col("sample_id") == "pixmo-train-00000").row(0, named=True)
    assert row["answer"] == "2" and row["count"] == 2 and row["answer_type"] == "count"
    assert row["prompt"] == "How many boats are there? Answer using as few words as possible."
    assert row["points"] == [[0.0, 3.0], [10.5, 3.0]]
    assert row["image"] == "images/train/pixmo/t0.png"
    assert (tmp_path / "ds" / row["image"]).read_bytes() == (images / "pixmo" / "t0.png").read_bytes()


def test_pixmo_verify_sha256_drops_mismatches(pixmo_source: tuple[Path, Path], tmp_path: Path) -> None:
    root, images = pixmo_source
    cfg = PixmoCountImportConfig(verify_sha256=True, image_mode="copy")
    report = import_pixmo_count([root / "test"], images, tmp_path / "ds", cfg)
    assert report.dropped == {"missing_image": 1, "sha256_mismatch": 1}
    df = read_manifest(tmp_path / "ds")
    assert df["sample_id"].to_list() == ["pixmo-test-00000"]
    assert (tmp_path / "ds" / "images/test/pixmo/s0.png").stat().st_nlink == 1  # copied, not linked


def test_pixmo_hard_links_by_default(pixmo_source: tuple[Path, Path], tmp_path: Path) -> None:
    root, images = pixmo_source
    import_pixmo_count([root / "train" / "samples.json"], images, tmp_path / "ds")
    assert (tmp_path / "ds" / "images/train/pixmo/t0.png").stat().st_ino == (images / "pixmo/t0.png").stat().st_ino


def test_pixmo_record_errors(tmp_path: Path, write_json: Callable[[Path, Any], Path], png: Callable[..., Path]) -> None:
    png(tmp_path / "pixmo" / "a.png")
    rec = _pixmo_record("a.png", 2, "x")
    del rec["count"]
    path = write_json(tmp_path / "test" / "samples.json", [_pixmo_record("a.png", 1, "x"), rec])
    with pytest.raises(ImporterError, match=r"samples.json: record 1: missing field 'count'"):
        import_pixmo_count([path], tmp_path, tmp_path / "ds")
    rec = _pixmo_record("a.png", 2, "x") | {"count": True}
    write_json(path, [rec])
    with pytest.raises(ImporterError, match=r"record 0: field 'count' must be an integer, got True"):
        import_pixmo_count([path], tmp_path, tmp_path / "ds")
    rec = _pixmo_record("a.png", 2, "x") | {"image_path": "../../etc/x.png"}
    write_json(path, [rec])
    with pytest.raises(ImporterError, match=r"record 0: image path '../../etc/x.png' escapes"):
        import_pixmo_count([path], tmp_path, tmp_path / "ds")
    rec = _pixmo_record("a.png", 1, "x") | {"points": [[1, 2, 3]]}
    write_json(path, [rec])
    with pytest.raises(ImporterError, match=r"record 0: points\[0\]"):
        import_pixmo_count([path], tmp_path, tmp_path / "ds")
    with pytest.raises(NotFound, match="no samples.json"):
        import_pixmo_count([tmp_path / "pixmo"], tmp_path, tmp_path / "ds")
    assert not (tmp_path / "ds").exists()


# -- CountBenchQA ----------------------------------------------------------------


def _encoded(fmt: str, color: tuple[int, int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (9, 7), color).save(buf, format=fmt)
    return buf.getvalue()


def test_countbench_parquet_with_struct_images(tmp_path: Path) -> None:
    jpeg, png_bytes = _encoded("JPEG", (255, 0, 0)), _encoded("PNG", (0, 0, 255))
    images = [
        {"bytes": jpeg, "path": "a.jpg"},
        {"bytes": png_bytes, "path": None},
        None,
        {"bytes": b"not an image", "path": None},
    ]
    table = pa.table(
        {
            "image": pa.array(images, type=pa.struct([("bytes", pa.binary()), ("path", pa.string())])),
            "text": ["three red apples", "two blue cups", "x", "y"],
            "question": ["How many apples are there?", "How many cups are there?", "q", "q"],
            "number": [3, 2, 4, 5],
        }
    )
    src = tmp_path / "data" / "train-00000-of-00001.parquet"
    src.parent.mkdir()
    pq.write_table(table, src)
    cfg = CountBenchImportConfig(prompt_template="{question} Answer with a number.")
    report = import_countbench([src.parent], tmp_path / "ds", cfg)
    assert report.dropped == {"missing_image": 1, "unreadable_image": 1}
    df = read_manifest(tmp_path / "ds")
    assert df["image"].to_list() == ["images/countbench-0000.jpg", "images/countbench-0001.png"]
    assert (tmp_path / "ds" / df["image"][0]).read_bytes() == jpeg  # original bytes, no recompression
    assert df["answer"].to_list() == ["3", "2"] and df["count"].to_list() == [3, 2]
    assert df["prompt"][1] == "How many cups are there? Answer with a number."
    assert df["text"][0] == "three red apples" and set(df["split"]) == {"test"}


def test_countbench_plain_binary_column_and_errors(tmp_path: Path) -> None:
    src = tmp_path / "cb.parquet"
    pq.write_table(pa.table({"image": [_encoded("PNG", (1, 2, 3))], "question": ["How many?"], "number": [7]}), src)
    import_countbench([src], tmp_path / "ds", CountBenchImportConfig(split="valid"))
    df = read_manifest(tmp_path / "ds")
    assert df["count"].to_list() == [7] and df["split"].to_list() == ["valid"] and df["text"].to_list() == [None]

    pq.write_table(pa.table({"image": [_encoded("PNG", (1, 2, 3))], "question": ["How many?"]}), src)
    with pytest.raises(ImporterError, match=r"cb.parquet: missing column\(s\) \['number'\]"):
        import_countbench([src], tmp_path / "ds2")
    pq.write_table(pa.table({"image": [_encoded("PNG", (1, 2, 3))], "question": ["q"], "number": [-1]}), src)
    with pytest.raises(ImporterError, match=r"cb.parquet: row 0: column 'number' must be a non-negative integer"):
        import_countbench([src], tmp_path / "ds2")
    src.write_bytes(b"PAR1 garbage")
    with pytest.raises(ImporterError, match="unreadable parquet"):
        import_countbench([src], tmp_path / "ds2")
    assert not (tmp_path / "ds2").exists()


# -- counting study QA folders -----------------------------------------------------


def test_parse_entity() -> None:
    assert parse_entity("red_triangles") == {
        "entity_type": "red_triangle",
        "size": None,
        "color": "red",
        "shape": "triangle",
    }
    assert parse_entity("small_red_circles") == {
        "entity_type": "small_red_circle",
        "size": "small",
        "color": "red",
        "shape": "circle",
    }


@pytest.fixture
def counting_source(
    tmp_path: Path, png: Callable[..., Path], write_json: Callable[[Path, Any], Path]
) -> tuple[Path, Path]:
    folder = tmp_path / "unseen_combinations"
    q = "How many {} are there? Choose from [1, 2, 3, 4, 5, 6, 7, 8, 9]."
    write_json(
        folder / "questions.json",
        {
            "img_0": {
                "red_triangles": {"count_closed": q.format("red triangles"), "count_open": "How many red triangles?"}
            },
            "img_1": {
                "blue_stars": {"count_closed": q.format("blue stars")},
                "green_squares": {"count_closed": q.format("green squares")},
            },
            "img_2": {"cyan_circles": {"count_closed": q.format("cyan circles")}},
            "img_3": {"red_stars": {"count_closed": q.format("red stars")}},
        },
    )
    write_json(
        folder / "answers.json",
        {
            "img_0": {"red_triangles": 3},
            "img_1": {"blue_stars": {"count_closed": 9}, "green_squares": 1},
            "img_2": {"cyan_circles": 4},
            "img_3": {"red_stars": 2},
        },
    )
    write_json(folder / "train_ids.json", ["img_0", "img_1"])
    write_json(folder / "valid_ids.json", ["img_2"])
    images = tmp_path / "images"
    png(images / "img_0.png")
    png(images / "img_1.png")
    png(images / "img_2.jpg")
    return folder, images


def test_counting_qa_rows_splits_and_drops(counting_source: tuple[Path, Path], tmp_path: Path) -> None:
    folder, images = counting_source
    cfg = CountingQaImportConfig(prompt_prefix="Answer using as few words as possible. ")
    report = import_counting_qa([folder], images, tmp_path / "ds", cfg)
    df = read_manifest(tmp_path / "ds").sort("sample_id")
    assert df["sample_id"].to_list() == [
        "img_0-red_triangles-count_closed",
        "img_0-red_triangles-count_open",
        "img_1-blue_stars-count_closed",
        "img_1-green_squares-count_closed",
        "img_2-cyan_circles-count_closed",
    ]
    assert df["answer"].to_list() == ["3", "3", "9", "1", "4"]
    assert df["split"].to_list() == ["train", "train", "train", "train", "valid"]
    assert df["query_type"].to_list()[:2] == ["count_closed", "count_open"]
    assert df["entity_type"][2] == "blue_star" and df["color"][2] == "blue" and df["shape"][2] == "star"
    assert df["image"][4] == "images/img_2.jpg"
    assert df["prompt"][0].startswith("Answer using as few words as possible. How many red triangles")
    assert report.dropped == {"missing_image": 1}

    only = CountingQaImportConfig(question_kinds=["count_open"])
    report = import_counting_qa([folder / "questions.json"], images, tmp_path / "ds2", only)
    assert read_manifest(tmp_path / "ds2")["sample_id"].to_list() == ["img_0-red_triangles-count_open"]
    assert report.dropped == {"question_kind_not_kept": 5}  # filtered out, counted


def test_counting_qa_errors(
    counting_source: tuple[Path, Path], tmp_path: Path, write_json: Callable[[Path, Any], Path]
) -> None:
    folder, images = counting_source
    write_json(folder / "answers.json", {"img_0": {"red_triangles": 3}})
    with pytest.raises(ImporterError, match=r"answers.json: no answers for image 'img_1'"):
        import_counting_qa([folder], images, tmp_path / "ds")
    write_json(folder / "answers.json", {"img_0": {"red_triangles": "three"}})
    with pytest.raises(ImporterError, match=r"\['img_0'\]\['red_triangles'\]: answer must be a non-negative integer"):
        import_counting_qa([folder], images, tmp_path / "ds")
    (folder / "questions.json").write_text('{"img_0": {"red_triangles": {"count_closed": "How many?",}}}')
    with pytest.raises(ImporterError, match=r"questions.json:1:\d+: malformed JSON"):
        import_counting_qa([folder], images, tmp_path / "ds")
    write_json(folder / "questions.json", {"../img_0": {"red_triangles": {"count_closed": "How many?"}}})
    with pytest.raises(ImporterError, match=r"\['../img_0'\]: image path '../img_0' escapes"):
        import_counting_qa([folder], images, tmp_path / "ds")
    assert not (tmp_path / "ds").exists()


def _nested(questions: dict[str, Any]) -> dict[str, Any]:
    """``{image: {entity: {kind: q}}}`` -> the study loader's ``{image: {kind: {entity: q}}}``."""
    out: dict[str, Any] = {}
    for image_id, entities in questions.items():
        for entity, kinds in entities.items():
            for kind, value in kinds.items():
                out.setdefault(image_id, {}).setdefault(kind, {})[entity] = value
    return out


@pytest.mark.parametrize("answers_form", ["kind_first", "entity_only"])
def test_counting_qa_kind_first_form_gives_identical_rows(
    answers_form: str,
    counting_source: tuple[Path, Path],
    tmp_path: Path,
    write_json: Callable[[Path, Any], Path],
) -> None:
    folder, images = counting_source
    import_counting_qa([folder], images, tmp_path / "entity_first")
    want = read_manifest(tmp_path / "entity_first")

    questions = json.loads((folder / "questions.json").read_text())
    counts = {"img_0": {"red_triangles": 3}, "img_1": {"blue_stars": 9, "green_squares": 1},
              "img_2": {"cyan_circles": 4}, "img_3": {"red_stars": 2}}  # fmt: skip
    nested = tmp_path / "kind_first"
    for name in ("train_ids.json", "valid_ids.json"):
        (nested / name).parent.mkdir(parents=True, exist_ok=True)
        (nested / name).write_text((folder / name).read_text())
    write_json(nested / "questions.json", _nested(questions))
    if answers_form == "kind_first":
        answers = _nested({i: {e: {k: counts[i][e] for k in ks} for e, ks in q.items()} for i, q in questions.items()})
    else:
        answers = counts
    write_json(nested / "answers.json", answers)
    assert "count_closed" in json.loads((nested / "questions.json").read_text())["img_1"]
    report = import_counting_qa([nested], images, tmp_path / "ds")
    got = read_manifest(tmp_path / "ds")
    assert got.sort("sample_id").equals(want.sort("sample_id"))
    assert report.n_rows == want.height and report.dropped == {"missing_image": 1}


def test_counting_qa_entity_is_found_by_shape_or_by_not_being_a_kind(
    tmp_path: Path, png: Callable[..., Path], write_json: Callable[[Path, Any], Path]
) -> None:
    png(tmp_path / "images" / "0.png")
    folder = tmp_path / "set"
    write_json(folder / "questions.json", {"0": {
        "count_closed": {"small_red_crosses": "How many small red crosses?"},
        "exists": {"blue_stars": "Are there blue stars?"},  # unknown kind: the shape plural names the entity
        "count_open": {"purple_blobs": "How many purple blobs?"},  # not a shape: the one non-kind key
    }})  # fmt: skip
    write_json(folder / "answers.json", {"0": {"small_red_crosses": 2, "blue_stars": 1, "purple_blobs": 5}})
    import_counting_qa([folder], tmp_path / "images", tmp_path / "ds")
    df = read_manifest(tmp_path / "ds").sort("sample_id")
    assert df.select("sample_id", "query_type", "entity_type", "shape", "answer").rows() == [
        ("0-blue_stars-exists", "exists", "blue_star", "star", "1"),
        ("0-purple_blobs-count_open", "count_open", "purple_blob", "blob", "5"),
        ("0-small_red_crosses-count_closed", "count_closed", "small_red_cross", "cross", "2"),
    ]


def test_counting_qa_unidentifiable_entity_names_file_image_and_keys(
    tmp_path: Path, png: Callable[..., Path], write_json: Callable[[Path, Any], Path]
) -> None:
    png(tmp_path / "images" / "0.png")
    folder = tmp_path / "set"
    write_json(folder / "questions.json", {"0": {"exists": {"purple_blobs": "Are there purple blobs?"}}})
    write_json(folder / "answers.json", {"0": {"purple_blobs": 1}})
    with pytest.raises(ImporterError) as e:
        import_counting_qa([folder], tmp_path / "images", tmp_path / "ds")
    msg = str(e.value)
    assert msg.startswith(f"{folder / 'questions.json'}: ['0']: cannot tell which of the keys exists, purple_blobs")
    write_json(folder / "questions.json", {"0": {"count_closed": {"red_stars": 7}}})
    with pytest.raises(ImporterError, match=r"\['0'\]\['count_closed'\]\['red_stars'\]: a question must be a string"):
        import_counting_qa([folder], tmp_path / "images", tmp_path / "ds")
    write_json(folder / "questions.json", {"0": {"count_closed": {"red_stars": "How many?"}}})
    write_json(folder / "answers.json", {"0": {"count_closed": {"blue_stars": 1}}})
    with pytest.raises(ImporterError, match=r"answers.json: \['0'\]\['count_closed'\]\['red_stars'\]: missing answer"):
        import_counting_qa([folder], tmp_path / "images", tmp_path / "ds")
    write_json(folder / "answers.json", {"0": {"count_closed": {"red_stars": -1}}})
    with pytest.raises(ImporterError, match=r"\['0'\]\['count_closed'\]\['red_stars'\]: answer must be a non-negative"):
        import_counting_qa([folder], tmp_path / "images", tmp_path / "ds")
    assert not (tmp_path / "ds").exists()
