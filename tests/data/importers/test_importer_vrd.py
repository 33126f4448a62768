"""VRD scene graphs -> relationship rows: filters, report, CSV, safety."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from vlmscope.data.importers.vrd import VrdImportConfig, base_label, import_vrd
from vlmscope.data.manifest import load_dataset_info, read_manifest, resolve_image
from vlmscope.errors import ImporterError, NotFound


def test_default_import_keeps_spatial_pairs_and_counts_every_drop(
    vrd_source: tuple[Path, Path], tmp_path: Path
) -> None:
    ann, images = vrd_source
    out = tmp_path / "vrd"
    report = import_vrd([ann], images, out)

    df = read_manifest(out).sort("sample_id")
    assert df["sample_id"].to_list() == ["vrd-train-00000-000", "vrd-train-00000-001", "vrd-train-00002-000"]
    assert df["answer"].to_list() == ["left of", "right of", "above"]
    assert df["subj"].to_list() == ["person", "dog", "lamp"]
    assert df["obj"].to_list() == ["dog", "person", "table"]
    assert set(df["split"]) == {"train"}
    assert df["choices"].to_list()[0] == ["left of", "right of", "above", "below"]
    assert df["answer_index"].to_list() == [0, 1, 2]
    assert df["prompt"][0] == (
        "What is the spatial relation of the person to the dog? Choose one of [left of, right of, above, below]."
    )
    # one image gives several rows, sharing the image path
    assert df["image"].to_list() == ["images/a.jpg", "images/a.jpg", "images/c.png"]
    assert resolve_image(out, "images/c.png").read_bytes() == (images / "sg_train_images" / "c.png").read_bytes()

    assert report.dropped == {"same_family": 1, "relation_not_kept": 2, "duplicate": 1, "missing_image": 1}
    assert report.n_records == 3 and report.n_rows == 3 and report.n_images == 2
    assert json.loads((out / "import_report.json").read_text())["dropped"]["missing_image"] == 1
    assert "b.jpg" in report.summary()
    assert load_dataset_info(out).extra["import_report"]["n_rows"] == 3

    csv = pl.read_csv(out / "relationships.csv")
    assert csv.columns == ["img_path", "subj", "obj", "relationship"]
    assert csv.row(2) == ("images/c.png", "lamp", "table", "above")


def test_depth_relations_same_family_and_duplicates_are_options(vrd_source: tuple[Path, Path], tmp_path: Path) -> None:
    ann, images = vrd_source
    cfg = VrdImportConfig(
        relations=["left of", "right of", "above", "below", "in front of", "behind"],
        drop_same_family=False,
        deduplicate=False,
    )
    report = import_vrd([ann], images, tmp_path / "out", cfg)
    df = read_manifest(tmp_path / "out")
    assert df.height == 6
    assert "behind" in df["answer"].to_list()
    assert df.filter(pl.col("answer") == "behind")["answer_index"].item() == 5
    assert report.dropped == {"relation_not_kept": 1, "missing_image": 1}


def test_balance_downsamples_to_rarest_relation(
    tmp_path: Path, png: Callable[..., Path], write_json: Callable[[Path, Any], Path]
) -> None:
    objs = [{"names": [f"o{k}"]} for k in range(6)]
    rels = [{"objects": [0, k], "relationship": "left of"} for k in range(1, 6)]
    rels += [{"objects": [k, 0], "relationship": "above"} for k in range(1, 3)]
    ann = write_json(
        tmp_path / "sg_test_annotations.json", [{"filename": "x.png", "objects": objs, "relationships": rels}]
    )
    png(tmp_path / "imgs" / "x.png")
    cfg = VrdImportConfig(relations=["left of", "above"], balance=True, seed=1)
    report = import_vrd([ann], tmp_path / "imgs", tmp_path / "out", cfg)
    df = read_manifest(tmp_path / "out")
    assert df["answer"].value_counts().sort("answer")["count"].to_list() == [2, 2]
    assert set(df["split"]) == {"test"}
    assert report.dropped == {"balanced_away": 3}
    again = import_vrd([ann], tmp_path / "imgs", tmp_path / "out2", cfg)
    assert read_manifest(tmp_path / "out2")["sample_id"].to_list() == df["sample_id"].to_list()
    assert again.dropped == report.dropped


def test_base_label_strips_only_a_trailing_instance_number() -> None:
    assert base_label("truck 2") == "truck"
    assert base_label(" truck ") == "truck"
    assert base_label("7 up") == "7 up"
    assert base_label("person") == "person"


@pytest.mark.parametrize(
    ("filename", "needle"),
    [("/etc/passwd", "absolute"), ("../outside.png", "'..'"), ("imgs/../../x.png", "'..'"), ("C:\\x.png", "absolute")],
)
def test_escaping_image_paths_are_refused_naming_the_record(
    tmp_path: Path,
    write_json: Callable[[Path, Any], Path],
    vrd_records: Callable[[], list[dict[str, Any]]],
    filename: str,
    needle: str,
) -> None:
    recs = vrd_records()
    recs[1]["filename"] = filename
    ann = write_json(tmp_path / "sg_train_annotations.json", recs)
    with pytest.raises(ImporterError, match=rf"record 1: image path .*{re.escape(needle)}") as e:
        import_vrd([ann], tmp_path, tmp_path / "out")
    assert str(ann) in str(e.value)
    assert not (tmp_path / "out").exists()


def test_malformed_json_names_file_line_and_column(tmp_path: Path) -> None:
    ann = tmp_path / "sg_train_annotations.json"
    ann.write_text('[\n  {"filename": "a.jpg",\n   "objects": [}\n]')
    with pytest.raises(ImporterError, match=r"sg_train_annotations.json:3:16: malformed JSON"):
        import_vrd([ann], tmp_path, tmp_path / "out")


def test_missing_field_names_record_and_field(
    tmp_path: Path, write_json: Callable[[Path, Any], Path], vrd_records: Callable[[], list[dict[str, Any]]]
) -> None:
    recs = vrd_records()
    del recs[2]["relationships"][0]["relationship"]
    ann = write_json(tmp_path / "sg_train_annotations.json", recs)
    with pytest.raises(ImporterError, match=r"record 2 relationships\[0\]: missing field 'relationship'"):
        import_vrd([ann], tmp_path, tmp_path / "out")


def test_out_of_range_object_index_is_an_error(
    tmp_path: Path, write_json: Callable[[Path, Any], Path], vrd_records: Callable[[], list[dict[str, Any]]]
) -> None:
    recs = vrd_records()
    recs[0]["relationships"][0]["objects"] = [0, 9]
    ann = write_json(tmp_path / "sg_train_annotations.json", recs)
    with pytest.raises(ImporterError, match=r"record 0 relationships\[0\]: object index 9 is out of range"):
        import_vrd([ann], tmp_path, tmp_path / "out")


def test_failed_import_leaves_existing_dataset_untouched(
    vrd_source: tuple[Path, Path],
    tmp_path: Path,
    write_json: Callable[[Path, Any], Path],
    vrd_records: Callable[[], list[dict[str, Any]]],
) -> None:
    ann, images = vrd_source
    out = tmp_path / "vrd"
    import_vrd([ann], images, out)
    before = sorted(p.relative_to(out) for p in out.rglob("*"))
    recs = vrd_records()
    recs.append({"filename": "z.png", "objects": [], "relationships": [{"objects": [0, 1]}]})
    bad = write_json(tmp_path / "bad" / "sg_train_annotations.json", recs)
    with pytest.raises(ImporterError):
        import_vrd([bad], images, out)
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".vrd.tmp")]


def test_split_must_be_given_when_the_name_does_not_say(
    tmp_path: Path,
    write_json: Callable[[Path, Any], Path],
    png: Callable[..., Path],
    vrd_records: Callable[[], list[dict[str, Any]]],
) -> None:
    ann = write_json(tmp_path / "scenes.json", vrd_records()[2:])
    png(tmp_path / "img" / "c.png")  # not the folder --out goes in: an output never lies inside an input
    with pytest.raises(ImporterError, match="pass --split"):
        import_vrd([ann], tmp_path / "img", tmp_path / "out")
    import_vrd([ann], tmp_path / "img", tmp_path / "out", VrdImportConfig(split="valid"))
    assert read_manifest(tmp_path / "out")["split"].to_list() == ["valid"]


def test_missing_annotation_file_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="no such file"):
        import_vrd([tmp_path / "sg_train_annotations.json"], tmp_path, tmp_path / "out")


def test_config_refuses_bad_relations_and_templates() -> None:
    with pytest.raises(ValueError, match="distinct"):
        VrdImportConfig(relations=["left of", "left of"])
    with pytest.raises(ValueError, match=r"\{obj\}"):
        VrdImportConfig(prompt_template="Where is the {subj}?")
    with pytest.raises(ValueError, match="extra"):
        VrdImportConfig(relation=["x"])  # type: ignore[call-arg]
