"""``annotations.csv`` (data/annotations.py): every dataset's manifest rows, readable as a spreadsheet."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import polars as pl

from vlmscope.data.annotations import ANNOTATIONS, annotations_frame
from vlmscope.data.manifest import read_manifest, write_dataset
from vlmscope.verify.dataset import verify_dataset


def _build(tmp: Path) -> pl.DataFrame:
    from PIL import Image

    for i in range(3):
        Image.new("RGB", (4, 4), (i * 50, 0, 0)).save(tmp / "images" / f"s{i}.png")
    return pl.DataFrame(
        {
            "sample_id": ["s0", "s1", "s2"],
            "image": [f"images/s{i}.png" for i in range(3)],
            "prompt": ["How many?\nA) 1, B) 2", 'say "x"', "q"],
            "answer": ["A", "x", "None"],
            "split": ["train", "valid", "test"],
            "choices": [["1", "2"], None, ["a, b", 'c "d"']],
            "answer_index": [0, None, None],
            "points": [[[1.5, 2.0]], [], None],
            "seen": [True, False, None],
        },
        schema_overrides={"answer_index": pl.Int64, "points": pl.List(pl.List(pl.Float64))},
    )


def test_every_dataset_has_annotations_csv_with_the_manifest_rows(tmp_path: Path) -> None:
    out = tmp_path / "ds"
    write_dataset(out, generator="g", params={}, seed=0, build=_build)
    manifest = read_manifest(out)
    table = pl.read_csv(out / ANNOTATIONS, infer_schema=False)
    assert table.columns == manifest.columns
    assert table["sample_id"].to_list() == manifest["sample_id"].to_list()
    assert table["prompt"].to_list() == manifest["prompt"].to_list()  # newlines and quotes survive
    with open(out / ANNOTATIONS, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == manifest.height
    for row, want in zip(rows, manifest.iter_rows(named=True), strict=True):
        assert row["answer"] == want["answer"] and row["split"] == want["split"]
        # nested columns are JSON text, nulls are empty cells
        assert (json.loads(row["choices"]) if row["choices"] else None) == want["choices"]
        assert (json.loads(row["points"]) if row["points"] else None) == want["points"]
        assert row["answer_index"] == ("" if want["answer_index"] is None else str(want["answer_index"]))
    assert rows[0]["seen"] == "true" and rows[2]["seen"] == ""


def test_verify_accepts_annotations_and_notices_an_edit(tmp_path: Path) -> None:
    out = tmp_path / "ds"
    write_dataset(out, generator="g", params={}, seed=0, build=_build)
    assert verify_dataset(out).problems == []
    path = out / ANNOTATIONS
    path.write_text(path.read_text().replace("valid", "train"))
    assert any("fingerprint" in p for p in verify_dataset(out).problems)


def test_flat_manifest_is_written_unchanged() -> None:
    df = pl.DataFrame({"sample_id": ["a"], "count": [3]})
    assert annotations_frame(df).equals(df)
