"""write_import: how every importer writes its dataset (params, report file, report in dataset.json)."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl

from vlmscope.data.importers.common import ImportConfigBase, ImportReport, write_import
from vlmscope.data.manifest import INFO, REQUIRED_COLUMNS


def _build(tmp: Path) -> pl.DataFrame:
    (tmp / "images" / "a.png").write_bytes(b"x")
    row = dict.fromkeys(REQUIRED_COLUMNS, "a") | {"image": "images/a.png", "split": "test"}
    return pl.DataFrame({k: [v] for k, v in row.items()})


def test_write_import_records_config_sources_params_and_report(tmp_path: Path) -> None:
    report = ImportReport("demo", n_records=2, n_rows=1, n_images=1)
    report.drop("missing_image", "b.png")
    out = tmp_path / "ds"
    got = write_import(out, ImportConfigBase(), report, _build, sources=[Path("s1"), "s2"], seed=3, images="imgs")
    assert got is report
    info = json.loads((out / INFO).read_text())
    assert info["generator"] == "demo"
    assert info["seed"] == 3
    assert info["params"] == {"image_mode": "link", "sources": ["s1", "s2"], "images": "imgs"}
    assert info["extra"]["import_report"] == report.to_dict()
    assert (out / "import_report.json").read_text() == report.to_json()
