"""The one dataset reader (data/reader.py): rows of splits, one image loader, one image error."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from PIL import Image

from vlmscope.data.manifest import write_dataset
from vlmscope.data.reader import ImageCache, image_path, load_image, read_rows
from vlmscope.errors import DatasetError, ImageError


def _dataset(root: Path) -> Path:
    def build(tmp: Path) -> pl.DataFrame:
        (tmp / "images").mkdir(exist_ok=True)
        for i, colour in enumerate([(255, 0, 0), (0, 255, 0), (0, 0, 255)]):
            Image.new("RGB", (4, 4), colour).save(tmp / "images" / f"s{i}.png")
        Image.new("L", (4, 4), 7).save(tmp / "images" / "grey.png")
        return pl.DataFrame(
            {
                "sample_id": ["s0", "s1", "s2", "s3"],
                "image": ["images/s0.png", "images/s1.png", "images/s2.png", "images/grey.png"],
                "prompt": ["q"] * 4,
                "answer": ["a"] * 4,
                "split": ["train", "test", "train", "valid"],
            }
        )

    out = root / "ds"
    write_dataset(out, generator="g", params={}, seed=0, build=build)
    return out


def test_read_rows_filters_splits_in_manifest_order_and_limits(tmp_path: Path) -> None:
    ds = _dataset(tmp_path)
    assert read_rows(ds)["sample_id"].to_list() == ["s0", "s1", "s2", "s3"]
    assert read_rows(ds, ["train"])["sample_id"].to_list() == ["s0", "s2"]
    assert read_rows(ds, ["valid", "train"], limit=2)["sample_id"].to_list() == ["s0", "s2"]
    assert read_rows(ds, ["nope"], allow_empty=True).height == 0
    with pytest.raises(DatasetError, match=r"manifest.parquet: no rows in split\(s\) \['nope'\]; the manifest has "
                       r"splits \['test', 'train', 'valid'\]; pass --split"):
        read_rows(ds, ["nope"], hint="; pass --split")


def test_load_image_decodes_rgb(tmp_path: Path) -> None:
    ds = _dataset(tmp_path)
    im = load_image(image_path(ds, "images/s1.png"))
    assert im.mode == "RGB" and im.getpixel((0, 0)) == (0, 255, 0)
    grey = load_image(image_path(ds, "images/grey.png"), sample_id="s3", row=3)
    assert grey.mode == "RGB" and grey.getpixel((1, 1)) == (7, 7, 7)


def test_one_error_names_file_sample_and_row(tmp_path: Path) -> None:
    ds = _dataset(tmp_path)
    missing = ds / "images" / "gone.png"
    with pytest.raises(ImageError, match=rf"^{missing}: image of sample 's9' \(manifest row 9\) does not exist$"):
        load_image(missing, sample_id="s9", row=9)
    broken = ds / "images" / "s0.png"
    broken.write_bytes(b"not a png")
    with pytest.raises(ImageError, match=rf"^{broken}: image of sample 's0' \(manifest row 0\) is unreadable \("):
        load_image(broken, sample_id="s0", row=0)
    with pytest.raises(DatasetError, match=rf"^{missing}: image does not exist$"):  # ImageError is a DatasetError
        load_image(missing)


def test_image_cache_decodes_each_file_once_unless_told_not_to(tmp_path: Path) -> None:
    ds = _dataset(tmp_path)
    path = image_path(ds, "images/s2.png")
    kept = ImageCache()
    first = kept.get(path)
    assert kept.get(path) is first and first.getpixel((0, 0)) == (0, 0, 255)
    fresh = ImageCache(keep=False)
    assert fresh.get(path) is not fresh.get(path)
    assert [im.getpixel((0, 0)) for im in kept.many([path, image_path(ds, "images/s0.png")])] == [(0, 0, 255), (255, 0, 0)]
    with pytest.raises(ImageError, match=r"image of sample 'x' does not exist"):
        kept.get(ds / "images" / "none.png", sample_id="x")
