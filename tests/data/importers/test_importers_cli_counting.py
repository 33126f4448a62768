"""`vlmscope import pixmo-count` and `vlmscope import countbench` run to the end through the CLI root.

The importers' rules are pinned in test_importer_counting.py; here each option of the two commands
must reach the importer (split, prompt template, sha256 check, copy vs link) and the printed report
must be the one saved beside the dataset.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image
from typer.testing import CliRunner

from vlmscope.cli.app import app
from vlmscope.data.manifest import read_manifest

runner = CliRunner()


def _record(name: str, count: int, sha: str) -> dict[str, Any]:
    return {"image_url": f"https://example.invalid/{name}", "image_sha256": sha, "count": count,
            "points": [{"x": 2.0 * k, "y": 1.0} for k in range(count)], "label": "boats",
            "image_path": f"pixmo/{name}"}  # fmt: skip


def test_import_pixmo_count_options_reach_the_importer(
    tmp_path: Path, png: Callable[..., Path], write_json: Callable[[Path, Any], Path]
) -> None:
    images = tmp_path / "images"
    good = png(images / "pixmo" / "a.png", (10, 20, 30))
    png(images / "pixmo" / "b.png", (40, 50, 60))
    sha = hashlib.sha256(good.read_bytes()).hexdigest()
    src = write_json(tmp_path / "src" / "samples.json", [_record("a.png", 3, sha), _record("b.png", 1, "0" * 64)])
    out = tmp_path / "ds"
    res = runner.invoke(app, ["import", "pixmo-count", str(src), "--images", str(images), "--out", str(out),
                              "--split", "valid", "--prompt-template", "Count the {label}.", "--verify-sha256",
                              "--copy"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert res.output.rstrip().endswith(f"wrote {out}") and "sha256_mismatch" in res.output
    df = read_manifest(out)
    assert df["sample_id"].to_list() == ["pixmo-valid-00000"] and df["split"].to_list() == ["valid"]
    assert df["prompt"].to_list() == ["Count the boats."] and df["answer"].to_list() == ["3"]
    copied = out / df["image"][0]
    assert copied.read_bytes() == good.read_bytes() and copied.stat().st_ino != good.stat().st_ino
    report = json.loads((out / "import_report.json").read_text())
    assert report["dropped"] == {"sha256_mismatch": 1} and report["n_rows"] == 1

    # defaults: no hash check (both rows kept), images hard-linked
    res = runner.invoke(app, ["import", "pixmo-count", str(src), "--images", str(images), "--out", str(out),
                              "--split", "train"])  # fmt: skip
    assert res.exit_code == 0, res.output
    df = read_manifest(out)
    assert df.height == 2 and set(df["split"]) == {"train"}
    assert (out / "images/train/pixmo/a.png").stat().st_ino == good.stat().st_ino


def _png_bytes(color: tuple[int, int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (6, 5), color).save(buf, format="PNG")
    return buf.getvalue()


def test_import_countbench_options_reach_the_importer(tmp_path: Path) -> None:
    src = tmp_path / "cb.parquet"
    table = pa.table({"image": [_png_bytes((1, 2, 3)), _png_bytes((4, 5, 6))], "text": ["a", "b"],
                      "question": ["How many cups?", "How many dogs?"], "number": [4, 2]})  # fmt: skip
    pq.write_table(table, src)
    out = tmp_path / "ds"
    res = runner.invoke(app, ["import", "countbench", str(src), "--out", str(out), "--split", "valid",
                              "--prompt-template", "{question} One number."])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert res.output.rstrip().endswith(f"wrote {out}")
    df = read_manifest(out).sort("sample_id")
    assert df["split"].to_list() == ["valid", "valid"] and df["answer"].to_list() == ["4", "2"]
    assert df["prompt"].to_list() == ["How many cups? One number.", "How many dogs? One number."]
    assert (out / df["image"][1]).read_bytes() == _png_bytes((4, 5, 6))
    assert json.loads((out / "import_report.json").read_text())["n_rows"] == 2
