"""The plumbing every importer shares: image checks, row counts and placement, writing the dataset."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path, PurePosixPath

import polars as pl
import pytest
from pydantic import ValidationError

from vlmscope.data.importers.common import ImageSink, ImportConfigBase, ImportReport, usable_image, write_import
from vlmscope.data.importers.countbench import CountBenchImportConfig
from vlmscope.data.importers.pixmo_count import PixmoCountImportConfig
from vlmscope.data.importers.vrd import VrdImportConfig
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


def test_usable_image_drops_missing_and_unreadable_images_by_reason(tmp_path: Path, png: Callable[..., Path]) -> None:
    report = ImportReport("demo")
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    assert usable_image(png(tmp_path / "ok.png"), "ok", report)
    assert not usable_image(None, "gone.png", report, 3)
    assert not usable_image(bad, "bad.png", report)
    assert report.dropped == {"missing_image": 3, "unreadable_image": 1}
    assert report.examples == {"missing_image": ["gone.png"], "unreadable_image": ["bad.png"]}


def test_rows_are_counted_and_placed_by_their_rel_path(tmp_path: Path, png: Callable[..., Path]) -> None:
    a, b = png(tmp_path / "src" / "a.png"), png(tmp_path / "src" / "b.png")
    rows = [{"src": a, "rel": PurePosixPath("x/a.png")}, {"src": b, "rel": "b.png"}, {"src": a, "rel": "x/a.png"}]
    report = ImportReport("demo")
    report.count_rows(rows)
    assert (report.n_rows, report.n_images) == (3, 2)
    out = tmp_path / "ds"
    assert ImageSink(out, "copy").place_rows(rows) == ["images/x/a.png", "images/b.png", "images/x/a.png"]
    assert (out / "images" / "x" / "a.png").read_bytes() == a.read_bytes()


@pytest.mark.parametrize(
    ("config", "template", "message"),
    [
        (CountBenchImportConfig, "How many?", r"prompt_template must contain \{question\}"),
        (PixmoCountImportConfig, "How many {label} {x}?", r"prompt_template .* has an unknown placeholder: 'x'"),
        (VrdImportConfig, "{subj} and {obj}: {other}", r"has an unknown placeholder: 'other'"),
        (VrdImportConfig, "{subj} only", r"prompt_template must contain \{obj\}"),
    ],
)
def test_importer_prompt_templates_are_checked(config: type, template: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        config(prompt_template=template)
    assert VrdImportConfig(prompt_template="{subj} {obj} [{choices}]").prompt_template == "{subj} {obj} [{choices}]"
