"""Spatial and colour sets (study A): labels re-derived from geometry and from pixels."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from PIL import Image

from vlmscope.data.generators import ColorConfig, SpatialConfig
from vlmscope.data.generators.color import plan_color
from vlmscope.data.generators.draw import PALETTE, half_extent
from vlmscope.data.generators.spatial import plan_spatial
from vlmscope.data.manifest import read_manifest


def _rgb(path: Path) -> np.ndarray:
    """``(H, W, 3)`` uint8 pixels of a PNG, file closed."""
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))



def _relation(row: dict, gap: int = 80, align: int = 30) -> str | None:
    """The relation the coordinates satisfy under study A's rules, or None."""
    dx = row["subject_x"] - row["reference_x"]
    dy = row["subject_y"] - row["reference_y"]
    if abs(dy) <= align and dx <= -gap:
        return "left_of"
    if abs(dy) <= align and dx >= gap:
        return "right_of"
    if abs(dx) <= align and dy <= -gap:
        return "above"
    if abs(dx) <= align and dy >= gap:
        return "below"
    return None


@pytest.fixture(scope="module")
def spatial_plan() -> pl.DataFrame:
    return plan_spatial(SpatialConfig(n=400, seed=5)).manifest


def test_every_label_follows_from_the_coordinates(spatial_plan: pl.DataFrame) -> None:
    for row in spatial_plan.iter_rows(named=True):
        assert _relation(row) == row["relation"], row
        assert row["answer"] == row["relation"].replace("_", " ")
        assert row["choices"] == ["left of", "right of", "above", "below"]


def test_shapes_stay_inside_the_margin_and_never_touch(spatial_plan: pl.DataFrame) -> None:
    for row in spatial_plan.iter_rows(named=True):
        for who in ("subject", "reference"):
            assert 60 <= row[f"{who}_x"] <= 448 - 60
            assert 60 <= row[f"{who}_y"] <= 448 - 60
            assert 20 <= row[f"{who}_size"] <= 40
        hs = half_extent(row["subject_shape"], row["subject_size"])
        hr = half_extent(row["reference_shape"], row["reference_size"])
        sep_x = abs(row["subject_x"] - row["reference_x"]) - hs[0] - hr[0]
        sep_y = abs(row["subject_y"] - row["reference_y"]) - hs[1] - hr[1]
        assert max(sep_x, sep_y) >= 4


def test_relations_and_colours_are_balanced_and_distinct(spatial_plan: pl.DataFrame) -> None:
    assert Counter(spatial_plan["relation"]) == {"left_of": 100, "right_of": 100, "above": 100, "below": 100}
    assert (spatial_plan["subject_color"] != spatial_plan["reference_color"]).all()
    # stratified split: 20 % of every relation
    per = spatial_plan.group_by("relation").agg((pl.col("split") == "test").sum().alias("t"))
    assert per["t"].to_list() == [20, 20, 20, 20]
    # the prompt names both shapes, subject first
    for row in spatial_plan.head(50).iter_rows(named=True):
        s = f"{row['subject_color']} {row['subject_shape']}"
        r = f"{row['reference_color']} {row['reference_shape']}"
        assert row["prompt"].startswith(f"Where is the {s} relative to the {r}?")


def test_other_geometry_params_are_obeyed() -> None:
    cfg = SpatialConfig(n=60, seed=2, min_gap=150, max_misalign=5, relations=("above", "below"), colors=("red", "blue"))
    df = plan_spatial(cfg).manifest
    for row in df.iter_rows(named=True):
        assert _relation(row, gap=150, align=5) == row["relation"]
    assert set(df["relation"]) == {"above", "below"}
    assert df["choices"][0].to_list() == ["above", "below"]
    assert set(df["subject_color"]) | set(df["reference_color"]) == {"red", "blue"}


def _colours(img: np.ndarray) -> set[tuple[int, int, int]]:
    """Distinct RGB values of an ``(H, W, 3)`` uint8 image."""
    packed = np.unique((img[..., 0].astype(np.int64) << 16) | (img[..., 1].astype(np.int64) << 8) | img[..., 2])
    return {(int(v >> 16), int((v >> 8) & 255), int(v & 255)) for v in packed}


def _pixel(img: np.ndarray, x: int, y: int) -> tuple[int, ...]:
    return tuple(int(v) for v in img[y, x])


def test_pixels_show_the_stored_shapes(rendered: Callable[..., Path]) -> None:
    d = rendered("spatial")
    df = read_manifest(d)
    for row in df.iter_rows(named=True):
        img = _rgb(d / row["image"])
        assert img.shape == (448, 448, 3)
        for who in ("subject", "reference"):
            assert _pixel(img, row[f"{who}_x"], row[f"{who}_y"]) == PALETTE[row[f"{who}_color"]]
        # exactly the two colours (plus white) appear
        assert _colours(img) == {(255, 255, 255), PALETTE[row["subject_color"]], PALETTE[row["reference_color"]]}


# ---- colour sanity set ----------------------------------------------------


def test_colour_labels_balance_and_uniqueness() -> None:
    df = plan_color(ColorConfig(n=200, seed=4)).manifest
    assert set(Counter(df["color"]).values()) == {20}
    assert set(df["n_shapes"]) == {1, 2, 3}
    for row in df.iter_rows(named=True):
        shapes = json.loads(row["scene"])
        target = shapes[0]
        assert (target["color"], target["shape"]) == (row["color"], row["shape"]) == (row["answer"], row["shape"])
        assert row["prompt"].startswith(f"What color is the {row['shape']}?")
        # the named shape is unique, and no other shape has the target colour
        assert [s["shape"] for s in shapes].count(row["shape"]) == 1
        assert [s["color"] for s in shapes].count(row["color"]) == 1
        for i, a in enumerate(shapes):
            for b in shapes[i + 1:]:
                ha, hb = half_extent(a["shape"], a["size"]), half_extent(b["shape"], b["size"])
                gap = max(abs(a["x"] - b["x"]) - ha[0] - hb[0], abs(a["y"] - b["y"]) - ha[1] - hb[1])
                assert gap >= 10


def test_shape_question_mirrors_the_colour_one() -> None:
    """ask=shape: target shape balanced, named by a colour no other shape has; the pixels agree."""
    df = plan_color(ColorConfig(n=100, seed=4, ask="shape")).manifest
    assert set(Counter(df["answer"]).values()) == {20}
    assert set(df["n_shapes"]) == {1, 2, 3}
    assert df["choices"][0].to_list() == list(ColorConfig().shapes)
    for row in df.iter_rows(named=True):
        shapes = json.loads(row["scene"])
        assert (shapes[0]["shape"], shapes[0]["color"]) == (row["answer"], row["color"])
        assert row["answer"] == row["shape"] == row["choices"][row["answer_index"]]
        assert row["prompt"].startswith(f"What shape is the {row['color']} one?")
        assert [s["color"] for s in shapes].count(row["color"]) == 1
        assert [s["shape"] for s in shapes].count(row["shape"]) == 1


def test_shape_question_pixels(rendered: Callable[..., Path]) -> None:
    d = rendered("color", n=10, seed=1, ask="shape")
    df = read_manifest(d)
    assert json.loads((d / "dataset.json").read_text())["params"]["ask"] == "shape"
    for row in df.iter_rows(named=True):
        img = _rgb(d / row["image"])
        target = json.loads(row["scene"])[0]
        assert _pixel(img, target["x"], target["y"]) == PALETTE[row["color"]]


def test_colour_pixels(rendered: Callable[..., Path]) -> None:
    d = rendered("color")
    df = read_manifest(d)
    for row in df.iter_rows(named=True):
        img = _rgb(d / row["image"])
        for s in json.loads(row["scene"]):
            assert _pixel(img, s["x"], s["y"]) == PALETTE[s["color"]]
