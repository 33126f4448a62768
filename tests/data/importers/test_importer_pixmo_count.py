"""Balanced Pixmo-Count in its released layout: per-split image folders whose names restart at 0.jpg."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from vlmscope.data.importers.pixmo_count import import_pixmo_count
from vlmscope.data.manifest import read_manifest
from vlmscope.errors import ImporterError

_SPLITS = {"train": [2, 0], "valid": [3], "test": [1, 4]}


def _record(i: int, count: int, sha: str) -> dict[str, Any]:
    """One record exactly as the released samples.json has it (points as two coordinate lists)."""
    return {
        "image_url": f"https://example.invalid/{i}.jpg",
        "image_sha256": sha,
        "count": count,
        "points": {"x": [10.0 + k for k in range(count)], "y": [20.5] * count},
        "label": "boats",
        "image_path": f"{i}.jpg",
    }


@pytest.fixture
def released(tmp_path: Path, png: Callable[..., Path], write_json: Callable[[Path, Any], Path]) -> Path:
    """``<root>/<split>/{samples.json, images/<k>.jpg}``; every split starts at 0.jpg, all pictures differ."""
    root = tmp_path / "pixmo-count"
    shade = 0
    for split, counts in _SPLITS.items():
        records = []
        for i, count in enumerate(counts):
            shade += 40
            img = png(root / split / "images" / f"{i}.jpg", (shade, 10, 10))
            records.append(_record(i, count, hashlib.sha256(img.read_bytes()).hexdigest()))
        write_json(root / split / "samples.json", records)
    return root


def test_per_split_image_folders_give_each_row_its_own_picture(released: Path, tmp_path: Path) -> None:
    out = tmp_path / "ds"
    report = import_pixmo_count([released], released, out)
    df = read_manifest(out)
    assert df.height == 5 and report.n_records == 5 and report.n_rows == 5
    assert report.n_images == 5 and report.dropped == {}
    for row in df.iter_rows(named=True):
        split, i = row["split"], int(row["sample_id"].rsplit("-", 1)[1])
        assert row["image"] == f"images/{split}/{i}.jpg"
        assert (out / row["image"]).read_bytes() == (released / split / "images" / f"{i}.jpg").read_bytes()
        assert hashlib.sha256((out / row["image"]).read_bytes()).hexdigest() == row["image_sha256"]
    row = df.filter(pl.col("sample_id") == "pixmo-valid-00000").row(0, named=True)
    assert row["points"] == [[10.0, 20.5], [11.0, 20.5], [12.0, 20.5]] and row["count"] == 3
    saved = json.loads((out / "import_report.json").read_text())
    assert (saved["n_records"], saved["n_rows"], saved["n_images"], saved["dropped"]) == (5, 5, 5, {})


def test_one_flat_folder_for_all_splits_is_refused_naming_both_records(released: Path, tmp_path: Path) -> None:
    flat = tmp_path / "flat"
    flat.mkdir()
    for i in range(2):  # the train pictures, as if every split's files had been downloaded into one folder
        (flat / f"{i}.jpg").write_bytes((released / "train" / "images" / f"{i}.jpg").read_bytes())
    with pytest.raises(ImporterError) as e:
        import_pixmo_count([released], flat, tmp_path / "ds")
    msg = str(e.value)
    assert "\n" not in msg
    assert f"{released / 'train' / 'samples.json'}: record 0" in msg
    assert f"{released / 'valid' / 'samples.json'}: record 0" in msg
    assert "different image_sha256" in msg and "<split>/images/" in msg
    assert not (tmp_path / "ds").exists()


def test_same_sha_on_one_file_is_the_same_picture(
    tmp_path: Path, png: Callable[..., Path], write_json: Callable[[Path, Any], Path]
) -> None:
    img = png(tmp_path / "imgs" / "0.jpg")
    sha = hashlib.sha256(img.read_bytes()).hexdigest()
    write_json(tmp_path / "src" / "train" / "samples.json", [_record(0, 2, sha)])
    write_json(tmp_path / "src" / "test" / "samples.json", [_record(0, 2, sha.upper())])
    report = import_pixmo_count([tmp_path / "src"], tmp_path / "imgs", tmp_path / "ds")
    df = read_manifest(tmp_path / "ds")
    assert sorted(df["image"].to_list()) == ["images/test/0.jpg", "images/train/0.jpg"]
    assert report.n_rows == 2 and report.n_images == 2


def test_flat_images_folder_of_one_split_still_works(released: Path, tmp_path: Path) -> None:
    report = import_pixmo_count([released / "test"], released / "test" / "images", tmp_path / "ds")
    assert report.n_rows == 2
    assert read_manifest(tmp_path / "ds")["image"].to_list() == ["images/test/0.jpg", "images/test/1.jpg"]


def test_missing_images_are_dropped_and_counted(released: Path, tmp_path: Path) -> None:
    (released / "test" / "images" / "1.jpg").unlink()
    report = import_pixmo_count([released], released, tmp_path / "ds")
    assert (report.n_records, report.n_rows, report.n_images) == (5, 4, 4)
    assert report.dropped == {"missing_image": 1} and report.examples["missing_image"] == ["test/1.jpg"]


@pytest.mark.parametrize(
    ("points", "want"),
    [
        ({"x": [1, 2.5], "y": [3, 4]}, [[1.0, 3.0], [2.5, 4.0]]),
        ([[1, 3], [2.5, 4]], [[1.0, 3.0], [2.5, 4.0]]),
        ([{"x": 1, "y": 3}], [[1.0, 3.0]]),
        ({"x": [], "y": []}, []),
    ],
)
def test_points_forms(
    points: Any, want: list[list[float]], tmp_path: Path, png: Callable[..., Path], write_json: Callable[..., Path]
) -> None:
    png(tmp_path / "src" / "test" / "images" / "0.jpg")
    write_json(tmp_path / "src" / "test" / "samples.json", [_record(0, 2, "ab") | {"points": points}])
    import_pixmo_count([tmp_path / "src" / "test"], tmp_path / "src", tmp_path / "ds")
    assert read_manifest(tmp_path / "ds")["points"].to_list() == [want]


@pytest.mark.parametrize(
    ("points", "match"),
    [
        ({"x": [1, 2], "y": [3]}, r"record 0: field 'points' has 2 x but 1 y coordinates"),
        ({"x": [1]}, r"record 0: field 'points': missing field 'y'"),
        ({"x": [1], "y": ["a"]}, r"record 0: points\[0\] coordinates must be numbers"),
        ("1,2", r"record 0: field 'points' must be"),
    ],
)
def test_bad_points_name_file_record_and_field(
    points: Any, match: str, tmp_path: Path, png: Callable[..., Path], write_json: Callable[..., Path]
) -> None:
    png(tmp_path / "test" / "images" / "0.jpg")
    path = write_json(tmp_path / "test" / "samples.json", [_record(0, 2, "ab") | {"points": points}])
    with pytest.raises(ImporterError, match=match) as e:
        import_pixmo_count([path], tmp_path, tmp_path / "ds")
    assert str(e.value).startswith(str(path))
