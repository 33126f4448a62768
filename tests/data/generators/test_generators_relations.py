"""Relational set (study B): answers re-derived from the scene JSON, masks checked in pixels."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from PIL import Image

from vlmscope.data.generators import RelationsConfig
from vlmscope.data.generators.draw import PALETTE
from vlmscope.data.generators.relations import plan_relations
from vlmscope.data.manifest import read_manifest

REL_TEXT = {"left_of": "left of", "right_of": "right of", "above": "above", "below": "below"}

def _rgb(path: Path) -> np.ndarray:
    """``(H, W, 3)`` uint8 pixels of a PNG, file closed."""
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))



def _dominant(a: dict, b: dict) -> str:
    dx, dy = a["x"] - b["x"], a["y"] - b["y"]
    if abs(dx) >= abs(dy):
        return "left_of" if dx < 0 else "right_of"
    return "above" if dy < 0 else "below"


def _truth(qtype: str, spec: dict, scene: dict, names: dict[int, str]) -> str:
    """The correct option text, computed from the scene alone (independent of the generator)."""
    ents = {e["id"]: e for e in scene["entities"]}
    if qtype == "count":
        return str(len(ents))
    if qtype == "recognition_shape":
        return "yes" if any(e["shape"] == spec["shape"] for e in ents.values()) else "no"
    if qtype == "recognition_color":
        return "yes" if any(e["color"] == spec["color"] for e in ents.values()) else "no"
    if qtype == "recognition_shape_and_color":
        hit = any(e["shape"] == spec["shape"] and e["color"] == spec["color"] for e in ents.values())
        return "yes" if hit else "no"
    a, b = spec["a"], spec["b"]
    arrows = [r for r in scene["relations"] if r["arrow"] and {r["subject"], r["object"]} == {a, b}]
    if qtype == "implicit_spatial":
        if a not in ents or b not in ents:
            return "none of these"
        return REL_TEXT[_dominant(ents[a], ents[b])]
    if qtype == "explicit_connection":
        return "yes" if arrows else "no"
    if qtype == "explicit_arrow_direction":
        if not arrows:
            return "none of these"
        src, dst = arrows[0]["subject"], arrows[0]["object"]
        return f"from the {names[src]} to the {names[dst]}"
    raise AssertionError(qtype)


@pytest.fixture(scope="module")
def plan_df() -> pl.DataFrame:
    return plan_relations(RelationsConfig(n=150, seed=11)).manifest


def test_answers_follow_from_the_scene(plan_df: pl.DataFrame) -> None:
    originals = {r["sample_id"]: r for r in plan_df.filter(pl.col("variant") == "original").iter_rows(named=True)}
    checked = Counter()
    for row in plan_df.iter_rows(named=True):
        scene = json.loads(row["scene"])
        source_scene = json.loads(originals[row["source_id"]]["scene"])
        names = {e["id"]: f"{e['color']} {e['shape']}" for e in source_scene["entities"]}
        expected = _truth(row["query_type"], json.loads(row["query"]), scene, names)
        assert row["answer_text"] == expected, row
        assert row["choices"][row["answer_index"]] == expected
        assert row["answer"] == "ABCDE"[row["answer_index"]]
        assert row["prompt"].endswith("Reply with only the letter of the correct option.")
        for i, opt in enumerate(row["choices"]):
            assert f"\n{'ABCDE'[i]}) {opt}\n" in row["prompt"]
        checked[(row["query_type"], row["variant"])] += 1
    kinds = {k for k, _ in checked}
    assert kinds == {
        "count", "recognition_shape", "recognition_color", "recognition_shape_and_color",
        "implicit_spatial", "explicit_connection", "explicit_arrow_direction",
    }


def test_scene_relations_follow_the_dominant_axis(plan_df: pl.DataFrame) -> None:
    for text in plan_df.filter(pl.col("variant") == "original")["scene"].unique():
        scene = json.loads(text)
        ents = {e["id"]: e for e in scene["entities"]}
        n = len(ents)
        assert 2 <= n <= 5
        assert len(scene["relations"]) == n * (n - 1) // 2
        assert len({(e["color"], e["shape"]) for e in ents.values()}) == n
        for r in scene["relations"]:
            assert r["relation"] == _dominant(ents[r["subject"]], ents[r["object"]])


def test_masked_rows_mirror_the_originals(plan_df: pl.DataFrame) -> None:
    orig = plan_df.filter(pl.col("variant") == "original")
    masked = plan_df.filter(pl.col("variant") == "masked")
    assert len(orig) == len(masked)
    assert (orig["sample_id"] == orig["source_id"]).all()
    joined = masked.join(orig, left_on="source_id", right_on="sample_id", suffix="_o")
    assert len(joined) == len(masked)
    assert (joined["prompt"] == joined["prompt_o"]).all()
    assert (joined["split"] == joined["split_o"]).all()
    assert (joined["image_id"] == joined["image_id_o"] + "-masked").all()
    # masking changes some truths: count, recognition and arrow answers must differ somewhere
    changed = joined.filter(pl.col("answer") != pl.col("answer_o"))["query_type"].unique().to_list()
    assert {"count", "explicit_arrow_direction", "recognition_shape_and_color"} <= set(changed)
    # both mask kinds occur, about half each
    per_image = orig.unique("image_id")
    kinds = Counter(per_image["mask_type"])
    assert set(kinds) == {"remove_entity", "hide_arrow"}
    assert kinds["remove_entity"] >= kinds["hide_arrow"]  # removal also covers arrow-less scenes


def test_masked_scene_is_the_original_minus_the_mask(plan_df: pl.DataFrame) -> None:
    for row in plan_df.filter(pl.col("variant") == "masked").unique("image_id").iter_rows(named=True):
        orig = json.loads(plan_df.filter(pl.col("sample_id") == row["source_id"])["scene"][0])
        new = json.loads(row["scene"])
        mask = json.loads(row["mask"])
        names = {e["id"]: f"{e['color']} {e['shape']}" for e in orig["entities"]}
        if mask["kind"] == "remove_entity":
            gone = mask["entity"]
            assert row["masked_entity"] == names[gone] and row["masked_arrow"] is None
            assert [e for e in orig["entities"] if e["id"] != gone] == new["entities"]
            assert [r for r in orig["relations"] if gone not in (r["subject"], r["object"])] == new["relations"]
        else:
            s, o = mask["arrow"]
            assert row["masked_arrow"] == f"{names[s]} -> {names[o]}" and row["masked_entity"] is None
            assert orig["entities"] == new["entities"]
            diff = [(a, b) for a, b in zip(orig["relations"], new["relations"]) if a != b]
            assert len(diff) == 1
            a, b = diff[0]
            assert (a["subject"], a["object"], a["arrow"], b["arrow"]) == (s, o, True, False)


def _box(e: dict, pad: float) -> tuple[float, float, float, float]:
    hx = e["size"] / 2
    hy = 1.5 * hx if e["shape"] == "rectangle" else hx
    return e["x"] - hx - pad, e["y"] - hy - pad, e["x"] + hx + pad, e["y"] + hy + pad


def test_images_differ_exactly_where_the_mask_says(rendered: Callable[..., Path]) -> None:
    d = rendered("relations")
    df = read_manifest(d).filter(pl.col("variant") == "masked").unique("image_id", keep="first")
    for row in df.iter_rows(named=True):
        src = read_manifest(d).filter(pl.col("sample_id") == row["source_id"]).row(0, named=True)
        a = _rgb(d / src["image"]).astype(int)
        b = _rgb(d / row["image"]).astype(int)
        scene = json.loads(src["scene"])
        ents = {e["id"]: e for e in scene["entities"]}
        for e in ents.values():  # every entity's centre shows its colour in the original
            assert tuple(a[e["y"], e["x"]]) == PALETTE[e["color"]]
        mask = json.loads(row["mask"])
        allowed = np.zeros(a.shape[:2], dtype=bool)
        yy, xx = np.mgrid[: a.shape[0], : a.shape[1]]

        def allow(box: tuple[float, float, float, float]) -> None:
            nonlocal allowed
            allowed |= (xx >= box[0]) & (xx <= box[2]) & (yy >= box[1]) & (yy <= box[3])  # noqa: B023 (called in this iteration only)

        if mask["kind"] == "remove_entity":
            gone = ents[mask["entity"]]
            assert tuple(b[gone["y"], gone["x"]]) == (255, 255, 255)
            allow(_box(gone, 2))
            pairs = [r for r in scene["relations"] if r["arrow"] and gone["id"] in (r["subject"], r["object"])]
        else:
            pairs = [r for r in scene["relations"] if [r["subject"], r["object"]] == mask["arrow"]]
        for r in pairs:  # an arrow lies within the box spanned by its two entities
            s, o = _box(ents[r["subject"]], 6), _box(ents[r["object"]], 6)
            allow((min(s[0], o[0]), min(s[1], o[1]), max(s[2], o[2]), max(s[3], o[3])))
        changed = (a != b).any(axis=2)
        assert changed.any(), row["image_id"]
        assert not (changed & ~allowed).any(), row["image_id"]


def test_arrows_are_drawn_in_black(rendered: Callable[..., Path]) -> None:
    d = rendered("relations")
    df = read_manifest(d).filter(pl.col("variant") == "original").unique("image_id", keep="first")
    seen = 0
    for row in df.iter_rows(named=True):
        img = _rgb(d / row["image"]).astype(int)
        n_black = int((img.sum(axis=2) == 0).sum())
        if row["n_arrows"] == 0:
            # only 1 px outlines are black then: far fewer black pixels than with arrows
            assert n_black < sum(4 * e["size"] * 2.5 for e in json.loads(row["scene"])["entities"])
        else:
            seen += 1
            assert n_black > 0
    assert seen > 0


def test_no_arrow_runs_over_a_third_shape(plan_df: pl.DataFrame) -> None:
    from vlmscope.data.generators.relations_scene import Entity, arrow_endpoints

    for text in plan_df.filter(pl.col("variant") == "original")["scene"].unique():
        scene = json.loads(text)
        ents = {e["id"]: Entity(**e) for e in scene["entities"]}
        for r in scene["relations"]:
            if not r["arrow"]:
                continue
            p, q = arrow_endpoints(ents[r["subject"]], ents[r["object"]])
            for t in np.linspace(0, 1, 50):
                x, y = p[0] + t * (q[0] - p[0]), p[1] + t * (q[1] - p[1])
                for e in ents.values():
                    if e.id in (r["subject"], r["object"]):
                        continue
                    x0, y0, x1, y1 = _box(e.__dict__, 0)
                    assert not (x0 <= x <= x1 and y0 <= y <= y1)


def test_yes_no_items_are_balanced(plan_df: pl.DataFrame) -> None:
    orig = plan_df.filter(pl.col("variant") == "original")
    for qtype in ("recognition_color", "recognition_shape_and_color"):
        sub = orig.filter(pl.col("query_type") == qtype)
        assert Counter(sub["answer_text"]) == {"yes": 150, "no": 150}
    conn = orig.filter(pl.col("query_type") == "explicit_connection")
    share = (conn["answer_text"] == "yes").mean()
    assert 0.3 < share < 0.7


def test_implicit_spatial_asks_only_about_clear_unconnected_pairs(plan_df: pl.DataFrame) -> None:
    rows = plan_df.filter((pl.col("variant") == "original") & (pl.col("query_type") == "implicit_spatial"))
    assert len(rows) > 50
    for row in rows.iter_rows(named=True):
        scene, spec = json.loads(row["scene"]), json.loads(row["query"])
        ents = {e["id"]: e for e in scene["entities"]}
        dx = abs(ents[spec["a"]]["x"] - ents[spec["b"]]["x"])
        dy = abs(ents[spec["a"]]["y"] - ents[spec["b"]]["y"])
        assert max(dx, dy) >= 1.5 * min(dx, dy)
        rel = next(r for r in scene["relations"] if {r["subject"], r["object"]} == {spec["a"], spec["b"]})
        assert not rel["arrow"]
    # ratio 1.0 (the original study) asks about any unconnected pair: at least as many questions
    loose = plan_relations(RelationsConfig(n=150, seed=11, spatial_min_ratio=1.0)).manifest
    n_loose = loose.filter((pl.col("variant") == "original") & (pl.col("query_type") == "implicit_spatial")).height
    assert n_loose >= len(rows)
