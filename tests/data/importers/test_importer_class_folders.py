"""The class-folders importer: <root>/<split>/<class>/<image> trees -> grade or class rows."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest

from vlmscope.data.importers import IMPORTERS, ClassFoldersImportConfig, import_class_folders
from vlmscope.data.reader import read_rows
from vlmscope.errors import ImporterError, NotFound
from vlmscope.evaluation.scoring import prepare_rows


def _tree(root: Path, png: Callable[..., Path], layout: dict[str, dict[str, int]]) -> Path:
    """``{split folder: {class folder: n images}}`` of distinct tiny PNGs under ``root``."""
    k = 0
    for split, classes in layout.items():
        for cls, n in classes.items():
            for i in range(n):
                k += 1
                png(root / split / cls / f"img{i}.png", (k * 7 % 256, k * 13 % 256, 40))
    return root


def test_grade_folders_become_ordinal_rows(tmp_path: Path, png: Callable[..., Path]) -> None:
    root = _tree(tmp_path / "kneeKL224", png, {"train": {"0": 2, "1": 1, "2": 1}, "val": {"0": 1, "2": 1},
                                               "test": {"1": 1, "2": 1}})  # fmt: skip
    (root / "train" / "0" / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (root / "train" / ".ipynb_checkpoints").mkdir()
    (root / "train" / "1" / "notes.txt").write_text("not an image")
    (root / "train" / "2" / "sub").mkdir()
    (root / "auto_test" / "0").mkdir(parents=True)
    (root / "README.txt").write_text("x")
    out = tmp_path / "ds"
    report = import_class_folders([root], out)

    df = read_rows(out, None)
    assert df.columns == ["sample_id", "image", "prompt", "answer", "split", "answer_type", "label", "grade"]
    assert df.schema["grade"] == pl.Int64
    # ordered by split (train, valid, test), then grade, then file
    assert df["sample_id"].to_list() == [
        "train/0/img0.png", "train/0/img1.png", "train/1/img0.png", "train/2/img0.png",
        "val/0/img0.png", "val/2/img0.png", "test/1/img0.png", "test/2/img0.png",
    ]  # fmt: skip
    assert df["split"].to_list() == ["train"] * 4 + ["valid"] * 2 + ["test"] * 2
    assert df["image"][4] == "images/val/0/img0.png"  # the source layout kept
    assert set(df["answer_type"]) == {"grade"} and df["answer"][3] == "Grade 2" and df["grade"][3] == 2
    assert df["label"][3] == "2"
    assert df["prompt"][0] == "What is the KL grade of this knee X-ray? Answer with 'Grade N'."
    src = root / "train" / "2" / "img0.png"
    assert (out / df["image"][3]).read_bytes() == src.read_bytes()
    assert (out / df["image"][3]).stat().st_ino == src.stat().st_ino  # hard-linked by default

    assert report.n_rows == 8 and report.n_records == 9  # the .txt was read, the hidden file never
    saved = json.loads((out / "import_report.json").read_text())
    assert saved["dropped"] == {"nested_folder": 1, "unreadable_image": 1}
    assert saved["examples"]["unreadable_image"] == ["train/1/notes.txt"]
    assert any("'auto_test'" in n for n in saved["notes"]) and any("README.txt" in n for n in saved["notes"])
    assert "classes (grades): 0, 1, 2" in saved["notes"]
    # the evaluation reads these rows as grades
    assert prepare_rows(df, "ds")["gt_class"].to_list() == [str(g) for g in df["grade"]]


def test_grades_sort_numerically_and_names_may_spell_the_grade(tmp_path: Path, png: Callable[..., Path]) -> None:
    root = _tree(tmp_path / "r", png, {"train": {"grade_10": 1, "Grade 2": 1, "KL1": 1}, "valid": {"grade_10": 1}})
    out = tmp_path / "ds"
    import_class_folders([root], out, ClassFoldersImportConfig(answer_template="KL grade {grade} ({label})"))
    df = read_rows(out, None)
    assert df["label"].to_list() == ["KL1", "Grade 2", "grade_10", "grade_10"]
    assert df["grade"].to_list() == [1, 2, 10, 10]
    assert df["answer"].to_list()[:2] == ["KL grade 1 (KL1)", "KL grade 2 (Grade 2)"]


def test_other_folder_names_are_classes(tmp_path: Path, png: Callable[..., Path]) -> None:
    root = _tree(tmp_path / "r", png, {"train": {"severe": 1, "doubtful": 2}, "test": {"severe": 1}})
    out = tmp_path / "ds"
    import_class_folders([root], out, ClassFoldersImportConfig(prompt="Which class {is} it?"))
    df = read_rows(out, None)
    assert df["label"].to_list() == ["doubtful", "doubtful", "severe", "severe"]  # sorted by name
    assert df["answer"].to_list() == df["label"].to_list() and set(df["answer_type"]) == {"class"}
    assert df["grade"].null_count() == 4 and df.schema["grade"] == pl.Int64
    assert df["prompt"][0] == "Which class {is} it?"  # used as is
    assert prepare_rows(df, "ds")["gt_class"].to_list() == ["doubtful", "doubtful", "severe", "severe"]

    with pytest.raises(ImporterError, match=r"uses \{grade\}, but class folders doubtful, severe are not all grades"):
        import_class_folders([root], tmp_path / "x", ClassFoldersImportConfig(answer_template="Grade {grade}"))
    # grade_names turns named folders into grades
    cfg = ClassFoldersImportConfig(grade_names={"doubtful": 1, "severe": 4})
    import_class_folders([root], out, cfg)
    df = read_rows(out, None)
    assert df["grade"].to_list() == [1, 1, 4, 4] and df["answer"][2] == "Grade 4" and set(df["answer_type"]) == {"grade"}
    with pytest.raises(ImporterError, match=r"class folder 'severe' is not in grade_names \(names: doubtful\)"):
        import_class_folders([root], tmp_path / "x", ClassFoldersImportConfig(grade_names={"doubtful": 1}))
    with pytest.raises(ImporterError, match=r"'doubtful' and 'severe' both have grade 1"):
        import_class_folders([root], tmp_path / "x", ClassFoldersImportConfig(grade_names={"doubtful": 1, "severe": 1}))
    assert not (tmp_path / "x").exists()


def test_config_checks_the_answer_template_and_grade_names() -> None:
    with pytest.raises(ValueError, match=r"must contain \{label\} or \{grade\}"):
        ClassFoldersImportConfig(answer_template="Grade")
    with pytest.raises(ValueError, match="unknown placeholder"):
        ClassFoldersImportConfig(answer_template="{label} {count}")
    with pytest.raises(ValueError, match="greater than or equal to 0"):
        ClassFoldersImportConfig(grade_names={"Normal": -1})
    with pytest.raises(ValueError, match="less than or equal to 9223372036854775807"):  # an Int64 column holds it
        ClassFoldersImportConfig(grade_names={"Normal": 2**63})


def test_errors_name_the_folder(tmp_path: Path, png: Callable[..., Path]) -> None:
    out = tmp_path / "ds"
    with pytest.raises(NotFound, match="no such folder"):
        import_class_folders([tmp_path / "nope"], out)
    (tmp_path / "flat" / "0").mkdir(parents=True)
    with pytest.raises(ImporterError, match=rf"{tmp_path / 'flat'}: no split folders \(train, valid, val, test\)"):
        import_class_folders([tmp_path / "flat"], out)
    (tmp_path / "r" / "train").mkdir(parents=True)
    png(tmp_path / "r" / "train" / "loose.png")
    with pytest.raises(ImporterError, match=rf"{tmp_path / 'r' / 'train'}: no class folders in this split folder"):
        import_class_folders([tmp_path / "r"], out)
    (tmp_path / "e" / "test" / "0").mkdir(parents=True)
    (tmp_path / "e" / "test" / "0" / "x.png").write_text("not a png")
    with pytest.raises(ImporterError, match=rf"{tmp_path / 'e' / 'test'}: no readable image .*1 unreadable_image"):
        import_class_folders([tmp_path / "e"], out)
    (tmp_path / "e" / "train" / "1").mkdir(parents=True)
    png(tmp_path / "e" / "train" / "1" / "ok.png")
    with pytest.raises(ImporterError, match=rf"{tmp_path / 'e' / 'test'}: no readable image"):  # an empty split
        import_class_folders([tmp_path / "e"], out)
    with pytest.raises(ImporterError, match="exactly one root folder, got 2"):
        import_class_folders([tmp_path / "e", tmp_path / "r"], out)
    assert not out.exists()


def test_unreadable_names_and_symlinks(tmp_path: Path, png: Callable[..., Path]) -> None:
    root = _tree(tmp_path / "r", png, {"train": {"0": 1, "1": 1}})
    secret = tmp_path / "secret.txt"
    secret.write_text("password=hunter2\n")
    os.symlink(secret, root / "train" / "0" / "cat.png")
    bad = os.fsencode(root / "train" / "1") + b"/caf\xe9.png"
    with open(bad, "wb") as fh:
        fh.write((root / "train" / "1" / "img0.png").read_bytes())
    out = tmp_path / "ds"
    report = import_class_folders([root], out)
    assert report.n_rows == 2
    assert report.dropped == {"name_not_utf8": 1, "unreadable_image": 1}
    assert "hunter2" not in (out / "import_report.json").read_text()


def test_registry_runs_it_without_an_images_folder(tmp_path: Path, png: Callable[..., Path]) -> None:
    root = _tree(tmp_path / "r", png, {"test": {"3": 1, "4": 1}})
    spec = IMPORTERS.get("class-folders")
    assert not spec.needs_images
    report = spec.run([root], tmp_path / "ds", spec.config(image_mode="copy"))
    assert report.n_rows == 2
    img = tmp_path / "ds" / "images" / "test" / "4" / "img0.png"
    assert img.stat().st_ino != (root / "test" / "4" / "img0.png").stat().st_ino
