"""`vlmscope import FORMAT ...` through the real CLI root."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from typer.testing import CliRunner

from vlmscope.cli.app import app
from vlmscope.data.importers import IMPORTERS, VrdImportConfig
from vlmscope.data.manifest import read_manifest

runner = CliRunner()


def test_import_vrd_prints_the_report(vrd_source: tuple[Path, Path], tmp_path: Path) -> None:
    ann, images = vrd_source
    out = tmp_path / "vrd"
    res = runner.invoke(
        app, ["import", "vrd", str(ann), "--images", str(images), "--out", str(out), "--with-depth", "--copy"]
    )
    assert res.exit_code == 0, res.output
    assert "dropped 1 row(s): missing_image (e.g. b.jpg)" in res.output
    df = read_manifest(out)
    assert "behind" in set(df["answer"]) and df.height == 4
    assert (out / "images" / "a.jpg").stat().st_nlink == 1
    assert json.loads((out / "dataset.json").read_text())["params"]["image_mode"] == "copy"


def test_import_errors_are_one_line_exit_1(tmp_path: Path, write_json: Callable[[Path, Any], Path]) -> None:
    bad = tmp_path / "sg_train_annotations.json"
    bad.write_text("[{]")
    res = runner.invoke(app, ["import", "vrd", str(bad), "--images", str(tmp_path), "--out", str(tmp_path / "o")])
    assert res.exit_code == 1
    assert res.output.strip().count("\n") == 0 and "sg_train_annotations.json:1:3: malformed JSON" in res.output
    src = tmp_path / "cb.parquet"
    pq.write_table(pa.table({"image": [b"x"], "question": ["q"], "number": [1]}), src)
    res = runner.invoke(app, ["import", "countbench", str(src), "--out", str(tmp_path / "o"), "--split", "dev"])
    assert res.exit_code == 1 and "--split" in res.output and "'dev'" in res.output


def test_import_llava_and_counting_qa_commands(
    tmp_path: Path, png: Callable[..., Path], write_json: Callable[[Path, Any], Path]
) -> None:
    png(tmp_path / "img" / "a.png")
    recs = [
        {
            "id": str(i),
            "image": "a.png",
            "conversations": [{"from": "human", "value": "<image>"}, {"from": "gpt", "value": c}],
        }
        for i, c in enumerate(["cat", "dog", "cow"])
    ]
    src = write_json(tmp_path / "test.json", recs)
    res = runner.invoke(
        app,
        [
            "import",
            "llava",
            str(src),
            "--images",
            str(tmp_path / "img"),
            "--out",
            str(tmp_path / "l"),
            "--num-options",
            "3",
        ],
    )
    assert res.exit_code == 0, res.output
    assert read_manifest(tmp_path / "l")["choices"].list.len().to_list() == [3, 3, 3]

    q = write_json(tmp_path / "qa" / "questions.json", {"a": {"red_stars": {"count_closed": "How many red stars?"}}})
    write_json(q.parent / "answers.json", {"a": {"red_stars": 2}})
    res = runner.invoke(
        app,
        [
            "import",
            "counting-qa",
            str(q.parent),
            "--images",
            str(tmp_path / "img"),
            "--out",
            str(tmp_path / "c"),
            "--question-kind",
            "count_closed",
            "--split",
            "train",
        ],
    )
    assert res.exit_code == 0, res.output
    assert read_manifest(tmp_path / "c")["split"].to_list() == ["train"]


def test_registry_runs_an_importer_from_params(vrd_source: tuple[Path, Path], tmp_path: Path) -> None:
    ann, images = vrd_source
    spec = IMPORTERS.get("vrd")
    report = spec.run([ann], tmp_path / "o", VrdImportConfig(**{"relations": ["above", "below"]}), images=images)
    assert report.n_rows == 1
    assert IMPORTERS.names() == ["class-folders", "countbench", "counting-qa", "llava", "pixmo-count", "relations-queries", "vrd"]


def test_import_relations_queries_command(
    tmp_path: Path, png: Callable[..., Path], write_json: Callable[[Path, Any], Path]
) -> None:
    png(tmp_path / "images" / "0.png")
    png(tmp_path / "masked" / "0.png", (0, 0, 0))
    query = "How many shapes are in the image? Here are your options: a) 0 b) 1 Please only reply with the correct option."
    src = write_json(tmp_path / "queries.json", [{"image_id": 0, "image_filename": "0.png", "questions": [
        {"query_type": "count", "query": query, "ground_truth": "b)", "ground_truth_masked": "a)"}]}])  # fmt: skip
    out = tmp_path / "rq"
    res = runner.invoke(app, ["import", "relations-queries", str(src), "--images", str(tmp_path / "images"),
                              "--masked-images", str(tmp_path / "masked"), "--out", str(out), "--split", "valid"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "relations-queries: 1 source records -> 2 rows, 2 images" in res.output
    df = read_manifest(out).sort("variant", descending=True)
    assert df["answer"].to_list() == ["B", "A"] and df["split"].to_list() == ["valid", "valid"]
    assert df["source_id"].n_unique() == 1
    params = json.loads((out / "dataset.json").read_text())["params"]
    assert params["masked_images"] == str(tmp_path / "masked") and params["split"] == "valid"
    res = runner.invoke(app, ["import", "relations-queries", str(src), "--images", str(tmp_path / "images"),
                              "--out", str(tmp_path / "rq2")])  # fmt: skip
    assert res.exit_code == 2 and "--masked-images" in res.output
