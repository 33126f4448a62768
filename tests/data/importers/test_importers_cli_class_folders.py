"""`vlmscope import class-folders ROOT --out DS` runs to the end through the CLI root, options reaching the importer."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from typer.testing import CliRunner

from vlmscope.cli.app import app
from vlmscope.data.manifest import read_manifest

runner = CliRunner()


def test_import_class_folders_options_reach_the_importer(tmp_path: Path, png: Callable[..., Path]) -> None:
    root = tmp_path / "knee"
    src = png(root / "train" / "3" / "a.png", (1, 2, 3))
    png(root / "test" / "Normal" / "b.png", (4, 5, 6))
    out = tmp_path / "ds"
    res = runner.invoke(app, ["import", "class-folders", str(root), "--out", str(out), "--prompt", "KL grade?",
                              "--answer-template", "KL {grade}", "--copy",
                              "--set", "grade_names={'3': 3, Normal: 0}"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert res.output.rstrip().endswith(f"wrote {out}") and "classes (grades): Normal, 3" in res.output
    df = read_manifest(out).sort("sample_id")
    assert df["sample_id"].to_list() == ["test/Normal/b.png", "train/3/a.png"]
    assert df["prompt"].to_list() == ["KL grade?"] * 2 and df["answer"].to_list() == ["KL 0", "KL 3"]
    copied = out / "images" / "train" / "3" / "a.png"
    assert copied.read_bytes() == src.read_bytes() and copied.stat().st_ino != src.stat().st_ino
    assert json.loads((out / "import_report.json").read_text())["n_rows"] == 2
    info = json.loads((out / "dataset.json").read_text())
    assert info["generator"] == "class-folders" and info["params"]["grade_names"] == {"3": 3, "Normal": 0}

    # defaults: names that are no grades give class rows, images hard-linked
    res = runner.invoke(app, ["import", "class-folders", str(root), "--out", str(out)])
    assert res.exit_code == 0, res.output
    df = read_manifest(out).sort("sample_id")
    assert df["answer"].to_list() == ["Normal", "3"] and set(df["answer_type"]) == {"class"}
    assert (out / "images" / "train" / "3" / "a.png").stat().st_ino == src.stat().st_ino

    res = runner.invoke(app, ["import", "class-folders", str(tmp_path / "nope"), "--out", str(out)])
    assert res.exit_code == 1 and "no such folder" in res.output
