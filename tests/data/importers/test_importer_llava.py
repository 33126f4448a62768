"""LLaVA conversation JSON -> MCQA rows with seeded distractors and seen/unseen classes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from vlmscope.data.importers.llava import LlavaImportConfig, import_llava, read_class_list, split_box
from vlmscope.data.manifest import read_manifest
from vlmscope.errors import ImporterError

TRAIN_CLASSES = ["zebra", "giraffe", "car", "tree", "dog"]
TEST_CLASSES = ["okapi", "tapir", "lynx", "yak"]


def _record(i: int, cls: str, image: str | None) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "id": f"vg{i}",
        "conversations": [
            {"from": "human", "value": "<image>\nWhat is in the box?"},
            {"from": "gpt", "value": f"[0.1{i}, 0.2, 0.5, 0.9] {cls}"},
        ],
    }
    if image is not None:
        rec["image"] = image
    return rec


@pytest.fixture
def vg_source(
    tmp_path: Path, png: Callable[..., Path], write_json: Callable[[Path, Any], Path]
) -> tuple[Path, Path, Path]:
    """(train_seen.json, test_unseen.json, images root) in the Visual Genome study's format."""
    images = tmp_path / "vg"
    train = [_record(i, c, f"VG_100K/{i}.jpg") for i, c in enumerate(TRAIN_CLASSES)]
    test = [_record(10 + i, c, f"VG_100K_2/{i}.jpg") for i, c in enumerate(TEST_CLASSES)]
    test.append(_record(99, "yak", "VG_100K_2/missing.jpg"))
    test.append({"id": "text-only", "conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "x"}]})
    for i in range(len(TRAIN_CLASSES)):
        png(images / "VG_100K" / f"{i}.jpg", (i * 40, 0, 0))
    for i in range(len(TEST_CLASSES)):
        png(images / "VG_100K_2" / f"{i}.jpg", (0, i * 40, 0))
    return write_json(tmp_path / "train_seen.json", train), write_json(tmp_path / "test_unseen.json", test), images


def test_split_box() -> None:
    assert split_box("[0.1, 0.2, 0.5, 0.9] zebra") == ("[0.1, 0.2, 0.5, 0.9]", "zebra")
    assert split_box("  The lesion is benign. ") == (None, "The lesion is benign.")
    assert split_box("[unclear]") == (None, "[unclear]")


def test_mcqa_rows_with_derived_seen_classes(vg_source: tuple[Path, Path, Path], tmp_path: Path) -> None:
    train, test, images = vg_source
    out = tmp_path / "ds"
    report = import_llava([train, test], images, out, LlavaImportConfig(num_options=3, seed=7))
    df = read_manifest(out)
    assert df.height == 9
    assert report.dropped == {"missing_image": 1, "no_image": 1}
    assert df.filter(pl.col("split") == "train")["seen"].to_list() == [True] * 5
    assert df.filter(pl.col("split") == "test")["seen"].to_list() == [False] * 4
    for row in df.iter_rows(named=True):
        assert len(row["choices"]) == 3 and len(set(row["choices"])) == 3
        assert row["choices"][row["answer_index"]] == row["class_name"] == row["answer"]
        pool = TRAIN_CLASSES if row["seen"] else TEST_CLASSES
        assert set(row["choices"]) <= set(pool)  # distractors share the split and seen status
        assert row["answer_type"] == "choice"
        assert "<image>" not in row["prompt"]
        assert row["prompt"].startswith("What is in the box?\n[0.1")
        assert row["image"].startswith("images/VG_100K")
    first = df.row(0, named=True)
    assert first["sample_id"] == "vg0" and first["box"] == "[0.10, 0.2, 0.5, 0.9]"

    again = tmp_path / "ds2"
    import_llava([train, test], images, again, LlavaImportConfig(num_options=3, seed=7))
    assert read_manifest(again)["choices"].to_list() == df["choices"].to_list()
    import_llava([train, test], images, tmp_path / "ds3", LlavaImportConfig(num_options=3, seed=8))
    assert read_manifest(tmp_path / "ds3")["choices"].to_list() != df["choices"].to_list()


def test_seen_classes_file_and_open_rows(vg_source: tuple[Path, Path, Path], tmp_path: Path) -> None:
    _train, test, images = vg_source
    seen = tmp_path / "seen.txt"
    seen.write_text("# seen classes\nokapi\nlynx  # a cat\n")
    assert read_class_list(seen) == {"okapi", "lynx"}
    import_llava([test], images, tmp_path / "ds", LlavaImportConfig(num_options=0), seen_classes=seen)
    df = read_manifest(tmp_path / "ds")
    assert "choices" not in df.columns and set(df["answer_type"]) == {"open"}
    assert dict(zip(df["class_name"], df["seen"], strict=True)) == {
        "okapi": True,
        "tapir": False,
        "lynx": True,
        "yak": False,
    }
    assert set(df["split"]) == {"test"}


def test_seen_classes_from_a_llava_json(vg_source: tuple[Path, Path, Path], tmp_path: Path) -> None:
    train, test, images = vg_source
    assert read_class_list(train) == set(TRAIN_CLASSES)
    report = import_llava([test], images, tmp_path / "ds", LlavaImportConfig(num_options=2), seen_classes=train)
    assert set(read_manifest(tmp_path / "ds")["seen"]) == {False}
    assert report.notes == []


def test_unknown_seen_status_is_null_and_noted(vg_source: tuple[Path, Path, Path], tmp_path: Path) -> None:
    _train, test, images = vg_source
    report = import_llava([test], images, tmp_path / "ds", LlavaImportConfig(num_options=2))
    assert read_manifest(tmp_path / "ds")["seen"].null_count() == 4
    assert "unknown" in report.notes[0]


def test_too_few_classes_for_the_options(vg_source: tuple[Path, Path, Path], tmp_path: Path) -> None:
    _train, test, images = vg_source
    with pytest.raises(ImporterError, match="at least 5 classes .* has 4"):
        import_llava([test], images, tmp_path / "ds", LlavaImportConfig(num_options=5))


def test_bad_records_name_the_record(
    tmp_path: Path, write_json: Callable[[Path, Any], Path], png: Callable[..., Path]
) -> None:
    png(tmp_path / "a.jpg")
    bad_turn = _record(0, "cat", "a.jpg")
    bad_turn["conversations"][1]["from"] = "assistant"
    path = write_json(tmp_path / "test.json", [_record(1, "dog", "a.jpg"), bad_turn])
    with pytest.raises(ImporterError, match=r"record 1 conversations\[1\]: field 'from' must be 'human' or 'gpt'"):
        import_llava([path], tmp_path, tmp_path / "ds")
    no_conv = {"id": "x", "image": "a.jpg"}
    path = write_json(tmp_path / "test.json", [no_conv])
    with pytest.raises(ImporterError, match=r"record 0: missing field 'conversations'"):
        import_llava([path], tmp_path, tmp_path / "ds")
    escape = _record(2, "cat", "/abs/a.jpg")
    path = write_json(tmp_path / "test.json", [escape])
    with pytest.raises(ImporterError, match=r"test.json: record 0: image path '/abs/a.jpg'"):
        import_llava([path], tmp_path, tmp_path / "ds")
    dup = write_json(tmp_path / "test.json", [_record(3, "cat", "a.jpg"), _record(3, "dog", "a.jpg")])
    with pytest.raises(ImporterError, match="id 'vg3' repeats"):
        import_llava([dup], tmp_path, tmp_path / "ds", LlavaImportConfig(num_options=0))
    assert not (tmp_path / "ds").exists()


def test_num_options_one_is_refused() -> None:
    with pytest.raises(ValueError, match="0 .* or at least 2"):
        LlavaImportConfig(num_options=1)


def test_data_wrapped_files_and_synsets(
    tmp_path: Path, write_json: Callable[[Path, Any], Path], png: Callable[..., Path]
) -> None:
    """The unseen-class study's prompt files: ``{"data": [...]}`` records carrying the class's ``synset``."""
    src = tmp_path / "src"
    png(src / "VG_100K" / "1.jpg")
    records = [_record(i, c, "VG_100K/1.jpg") | {"synset": f"{c}.n.01"} for i, c in enumerate(TEST_CLASSES)]
    wrapped = write_json(src / "test_unseen.json", {"data": records})
    import_llava([wrapped], src, tmp_path / "ds", LlavaImportConfig(num_options=0))
    df = read_manifest(tmp_path / "ds")
    assert df["synset"].to_list() == [f"{c}.n.01" for c in TEST_CLASSES]
    assert df["class_name"].to_list() == TEST_CLASSES
    # without synsets the manifest has no such column (files of other studies import as before)
    plain = write_json(src / "test.json", [_record(0, "cat", "VG_100K/1.jpg")])
    import_llava([plain], src, tmp_path / "ds2", LlavaImportConfig(num_options=0))
    assert "synset" not in read_manifest(tmp_path / "ds2").columns
    bad = write_json(src / "test.json", [_record(0, "cat", "VG_100K/1.jpg") | {"synset": 3}])
    with pytest.raises(ImporterError, match=r"test.json: record 0: field 'synset' must be a string, got 3"):
        import_llava([bad], src, tmp_path / "ds3")
    other = write_json(src / "test.json", {"rows": records})
    with pytest.raises(ImporterError, match=r"expected a JSON list of conversation records \(or \{\"data\""):
        import_llava([other], src, tmp_path / "ds4")
