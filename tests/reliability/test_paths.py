"""Paths in data files cannot reach outside their root: traversal, absolute paths, symlinks.

An annotation or manifest is data someone else wrote. Its image paths must
not make vlmscope read ``/etc/passwd`` or write outside the dataset: every
importer refuses absolute, drive-letter, UNC and ``..`` paths before touching
the filesystem (naming file, record and path), and the manifest reader does
the same for ``image``. Symlinks are the user's own filesystem layout and
are followed (DVC caches and shared image folders use them), but what they
point at is checked like any file: a link to a non-image is an unreadable
image, a dangling or looping link a missing one, and an imported dataset
holds the linked bytes, never the link itself.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from vlmscope.data.importers import IMPORTERS
from vlmscope.data.manifest import read_manifest, write_dataset
from vlmscope.data.reader import image_path, load_image, read_rows
from vlmscope.errors import DatasetError, ImageError, ImporterError

EVIL = [
    "../../etc/passwd",
    "/etc/passwd",
    "C:\\Windows\\win.ini",
    "\\\\server\\share\\x.png",
    "a/../../x.png",
    "..",
    "",
]


def _png(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (4, 3), (9, 9, 9)).save(path, format="PNG")
    return path


def _source(name: str, root: Path, image: str) -> Path:
    """A one-record source in ``name``'s format whose image path is ``image``; returns the SRC argument."""
    if name == "vrd":
        rec = [{"filename": image, "objects": [{"names": ["a"]}, {"names": ["b"]}],
                "relationships": [{"objects": [0, 1], "relationship": "above"},
                                  {"objects": [1, 0], "relationship": "below"}]}]  # fmt: skip
        src = root / "sg_train_annotations.json"
    elif name == "llava":
        rec = [{"id": "r", "image": image, "conversations": [{"from": "human", "value": "<image> what?"},
                                                             {"from": "gpt", "value": "cat"}]}]  # fmt: skip
        src = root / "train.json"
    elif name == "pixmo-count":
        rec = [{"count": 2, "label": "cats", "image_path": image}]
        src = root / "train" / "samples.json"
    else:
        (root / "set").mkdir(parents=True, exist_ok=True)
        (root / "set" / "answers.json").write_text(json.dumps({image: {"red_circles": 2}}))
        rec = {image: {"red_circles": {"count_open": "How many?"}}}
        src = root / "set" / "questions.json"
    src.parent.mkdir(parents=True, exist_ok=True)
    src.write_text(json.dumps(rec))
    return src.parent if name in ("counting-qa", "pixmo-count") else src


def _run(name: str, root: Path, image: str, **config: Any) -> Any:
    spec = IMPORTERS.get(name)
    cfg = spec.config(**({"num_options": 0} if name == "llava" else {}), **config)
    return spec.run([_source(name, root, image)], root / "out", cfg, images=root / "images")


IMPORTER_NAMES = ["vrd", "llava", "pixmo-count", "counting-qa"]


@pytest.mark.parametrize("name", IMPORTER_NAMES)
@pytest.mark.parametrize(
    "image", EVIL, ids=["dotdot", "absolute", "drive", "unc", "inner-dotdot", "bare-dotdot", "empty"]
)
def test_importers_refuse_paths_that_leave_the_images_folder(name: str, image: str, tmp_path: Path) -> None:
    _png(tmp_path / "images" / "ok.png")
    _png(tmp_path / "x.png")  # what a/../../x.png would reach from images/
    with pytest.raises(ImporterError) as info:
        _run(name, tmp_path, image)
    msg = str(info.value)
    assert str(tmp_path) in msg and "\n" not in msg
    assert "image path" in msg or "escapes" in msg or "names no file" in msg
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("name", IMPORTER_NAMES)
def test_a_symlink_to_a_non_image_is_dropped_as_unreadable(name: str, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("password=hunter2\n")
    (tmp_path / "images").mkdir()
    os.symlink(secret, tmp_path / "images" / "cat.png")
    with pytest.raises(ImporterError, match="no rows") as info:
        _run(name, tmp_path, "cat.png")
    assert "unreadable_image" in str(info.value)
    assert "hunter2" not in str(info.value)


@pytest.mark.parametrize("name", IMPORTER_NAMES)
def test_dangling_and_looping_symlinks_are_missing_images(name: str, tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    os.symlink(tmp_path / "nowhere.png", tmp_path / "images" / "gone.png")
    os.symlink(tmp_path / "images" / "loop.png", tmp_path / "images" / "loop.png")
    for image in ("gone.png", "loop.png"):
        with pytest.raises(ImporterError, match="missing_image"):
            _run(name, tmp_path, image)


@pytest.mark.parametrize("name", IMPORTER_NAMES)
@pytest.mark.parametrize("mode", ["link", "copy"])
@pytest.mark.parametrize("target", ["absolute", "relative"])
def test_a_symlinked_image_is_imported_as_its_bytes_not_as_a_link(
    name: str, mode: str, target: str, tmp_path: Path
) -> None:
    outside = _png(tmp_path / "elsewhere" / "real.png")
    (tmp_path / "images").mkdir()
    os.symlink(outside if target == "absolute" else Path("../elsewhere/real.png"), tmp_path / "images" / "cat.png")
    _run(name, tmp_path, "cat.png", image_mode=mode)
    rows = read_rows(tmp_path / "out")
    placed = image_path(tmp_path / "out", rows["image"][0])
    assert not placed.is_symlink() and placed.read_bytes() == outside.read_bytes()


def _dataset(root: Path, image: str = "images/a.png") -> Path:
    def build(tmp: Path):  # noqa: ANN202
        import polars as pl

        _png(tmp / "images" / "a.png")
        return pl.DataFrame({"sample_id": ["s0"], "image": ["images/a.png"], "prompt": ["q"], "answer": ["a"],
                             "split": ["test"]})  # fmt: skip

    write_dataset(root, generator="test", params={}, seed=None, build=build)
    return root


@pytest.mark.parametrize("image", ["../outside.png", "/etc/passwd", "images/../../outside.png", "images/.."])
def test_manifest_image_paths_that_leave_the_dataset_are_refused(image: str, tmp_path: Path) -> None:
    import polars as pl

    ds = _dataset(tmp_path / "ds")
    _png(tmp_path / "outside.png")
    df = pl.read_parquet(ds / "manifest.parquet").with_columns(pl.lit(image).alias("image"))
    df.write_parquet(ds / "manifest.parquet")
    with pytest.raises(DatasetError, match=r"manifest\.parquet: image paths must be relative and stay inside"):
        read_manifest(ds)
    with pytest.raises(DatasetError, match="must be relative and inside"):
        image_path(ds, image)


def test_a_dataset_image_linked_to_a_secret_is_an_unreadable_image(tmp_path: Path) -> None:
    ds = _dataset(tmp_path / "ds")
    (tmp_path / "secret.txt").write_text("password=hunter2\n")
    (ds / "images" / "a.png").unlink()
    os.symlink(tmp_path / "secret.txt", ds / "images" / "a.png")
    with pytest.raises(ImageError, match=r"a\.png: image of sample 's0' \(manifest row 0\) is unreadable") as info:
        load_image(image_path(ds, "images/a.png"), sample_id="s0", row=0)
    assert "hunter2" not in str(info.value) and "\n" not in str(info.value)
    (ds / "images" / "a.png").unlink()
    os.symlink(tmp_path / "nowhere.png", ds / "images" / "a.png")
    with pytest.raises(ImageError, match="does not exist"):
        load_image(image_path(ds, "images/a.png"), sample_id="s0", row=0)
