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
    assert IMPORTERS.names() == ["class-folders", "countbench", "counting-qa", "llava", "pixmo-count", "vrd"]
