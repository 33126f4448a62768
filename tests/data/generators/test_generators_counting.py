"""Counting grid world (study C): counts re-derived from the drawn entities and pixels."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from PIL import Image

from vlmscope.data.generators import CountingConfig
from vlmscope.data.generators.counting import plan_counting
from vlmscope.data.generators.draw import PALETTE
from vlmscope.data.manifest import read_manifest


def _rgb(path: Path) -> np.ndarray:
    """``(H, W, 3)`` uint8 pixels of a PNG, file closed."""
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))



def _plan(**kw: object) -> pl.DataFrame:
    return plan_counting(CountingConfig(**kw)).manifest  # type: ignore[arg-type]


def _matches(e: dict, row: dict, with_size: bool) -> bool:
    same = e["color"] == row["color"] and e["shape"] == row["shape"]
    return same and (e["size"] == row["size"] or not with_size)


@pytest.mark.parametrize("variant", ["balanced", "distractors", "clustered", "scattered", "unseen-combinations"])
def test_count_is_the_number_of_drawn_targets(variant: str) -> None:
    df = _plan(n=120, seed=2, variant=variant)
    for row in df.iter_rows(named=True):
        ents = json.loads(row["entities"])
        assert len({(e["row"], e["col"]) for e in ents}) == len(ents)  # one entity per cell
        assert all(0 <= e["row"] < 9 and 0 <= e["col"] < 9 for e in ents)
        asked = [e for e in ents if _matches(e, row, with_size=False)]
        assert len(asked) == row["count"] == int(row["answer"]), row
        noun = f"{row['color']} {row['shape']}s"
        assert row["prompt"] == (
            f"Answer using as few words as possible. How many {noun} are there? "
            "Choose from [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]."
        )
        assert row["entity_type"] == f"{row['color']}_{row['shape']}"


def test_balanced_set_covers_every_type_and_count_equally() -> None:
    df = _plan(n=216 * 2, seed=1)
    joint = Counter(zip(df["entity_type"], df["count"]))
    assert len(joint) == 24 * 9 and set(joint.values()) == {2}
    assert set(df["n_entities"] - df["count"]) == {0}  # only targets
    small = _plan(n=50, seed=1)  # a partial block keeps both marginals within one
    assert max(Counter(small["count"]).values()) - min(Counter(small["count"]).values()) <= 1
    assert max(Counter(small["entity_type"]).values()) - min(Counter(small["entity_type"]).values()) <= 1


def test_distractors_are_of_the_named_type_and_never_asked_about() -> None:
    df = _plan(n=80, seed=3, variant="distractors", n_distractors=5, distractor_type="small_red_star")
    for row in df.iter_rows(named=True):
        ents = json.loads(row["entities"])
        d = [e for e in ents if e["role"] == "distractor"]
        assert len(d) == 5 == row["n_distractors"]
        assert all((e["size"], e["color"], e["shape"]) == ("small", "red", "star") for e in d)
        assert row["entity_type"] != "red_star"
    assert set(df["distractor_type"]) == {"small_red_star"}


def test_size_color_shape_questions_count_only_that_size() -> None:
    df = _plan(n=60, seed=4, variant="distractors", n_distractors=9, distractor_type="small_red_star",
               entity_type_format="size_color_shape")
    assert "large_red_star" in set(_plan(n=480, seed=4, variant="distractors", n_distractors=9,
                                         distractor_type="small_red_star",
                                         entity_type_format="size_color_shape")["entity_type"])
    for row in df.iter_rows(named=True):
        ents = json.loads(row["entities"])
        assert row["entity_type"] == f"{row['size']}_{row['color']}_{row['shape']}"
        assert f"How many {row['size']} {row['color']} {row['shape']}s are there?" in row["prompt"]
        assert sum(_matches(e, row, with_size=True) for e in ents) == row["count"]


def _king_connected(cells: list[tuple[int, int]]) -> bool:
    if not cells:
        return True
    todo, seen = [cells[0]], {cells[0]}
    rest = set(cells)
    while todo:
        r, c = todo.pop()
        for nb in rest:
            if nb not in seen and max(abs(nb[0] - r), abs(nb[1] - c)) == 1:
                seen.add(nb)
                todo.append(nb)
    return seen == rest


def test_clustered_targets_touch_and_scattered_ones_do_not() -> None:
    for row in _plan(n=90, seed=5, variant="clustered").iter_rows(named=True):
        cells = [(e["row"], e["col"]) for e in json.loads(row["entities"])]
        assert _king_connected(cells)
        if len(cells) >= 4:  # compact: fits a box of side ceil(sqrt(k)) + 1
            rs, cs = [r for r, _ in cells], [c for _, c in cells]
            side = int(np.ceil(np.sqrt(len(cells)))) + 1
            assert max(rs) - min(rs) < side and max(cs) - min(cs) < side
    for row in _plan(n=90, seed=5, variant="scattered").iter_rows(named=True):
        cells = [(e["row"], e["col"]) for e in json.loads(row["entities"])]
        for i, a in enumerate(cells):
            for b in cells[i + 1:]:
                assert max(abs(a[0] - b[0]), abs(a[1] - b[1])) >= 2


def test_unseen_combinations_never_reach_train() -> None:
    cfg = CountingConfig(n=300, seed=6, variant="unseen-combinations")
    plan = plan_counting(cfg)
    df = plan.manifest
    valid = set(plan.extra["valid_combinations"])
    assert len(valid) == 6
    train = df.filter(pl.col("split") == "train")
    assert set(df["split"]) == {"train", "valid"}
    assert not set(train["combination"]) & valid
    assert set(df.filter(pl.col("split") == "valid")["combination"]) == valid
    # every colour and shape still occurs in train
    assert set(train["color"]) == set(cfg.colors) and set(train["shape"]) == set(cfg.shapes)
    # entities drawn in train images never show a held-out combination either
    for text in train["entities"]:
        assert not {f"{e['color']}_{e['shape']}" for e in json.loads(text)} & valid


def test_explicit_valid_combinations_and_test_split() -> None:
    df = _plan(n=100, seed=7, variant="unseen-combinations", valid_combinations=["red_star", "blue_circle"],
               test_fraction=0.25)
    assert set(df.filter(pl.col("split") == "valid")["combination"]) == {"red_star", "blue_circle"}
    assert set(df["split"]) == {"train", "test", "valid"}
    assert not set(df.filter(pl.col("split") != "valid")["combination"]) & {"red_star", "blue_circle"}


def test_open_question_and_custom_grid() -> None:
    df = _plan(n=10, seed=8, question="open", rows=4, cols=5, counts=(0, 2, 4))
    assert set(df["count"]) <= {0, 2, 4}
    assert all(p.endswith("are there?") for p in df["prompt"])
    for text in df["entities"]:
        assert all(e["row"] < 4 and e["col"] < 5 for e in json.loads(text))


@pytest.mark.parametrize("variant", ["balanced", "distractors"])
def test_pixels_show_every_entity_and_nothing_else(rendered: Callable[..., Path], variant: str) -> None:
    d = rendered("counting", variant=variant)
    for row in read_manifest(d).iter_rows(named=True):
        img = _rgb(d / row["image"])
        assert img.shape == (288, 288, 3)
        ents = {(e["row"], e["col"]): e for e in json.loads(row["entities"])}
        centres = img[15::32, 15::32]  # (9, 9, 3) pixel at each cell centre
        for r in range(9):
            for c in range(9):
                want = PALETTE[ents[(r, c)]["color"]] if (r, c) in ents else (255, 255, 255)
                assert tuple(int(v) for v in centres[r, c]) == want
        # recount from pixels: cells whose centre has the asked colour
        asked = PALETTE[row["color"]]
        by_colour = int((centres == np.array(asked, dtype=np.uint8)).all(axis=2).sum())
        distractor_same_colour = sum(
            e["role"] == "distractor" and e["color"] == row["color"] for e in ents.values()
        )
        assert by_colour - distractor_same_colour == row["count"]
