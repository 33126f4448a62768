"""The shared helpers: seeded streams, balanced sequences, stratified splits, placement, shapes."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from vlmscope.data.generators.counting_layout import clustered_cells, random_cells, scattered_cells
from vlmscope.data.generators.draw import SHAPES, arrow_geometry, half_extent, shape_vertices
from vlmscope.data.generators.placement import boxes_clear, place_boxes
from vlmscope.data.generators.sampling import balanced_cycle, balanced_pairs, rng_stream, stratified_split


def test_streams_are_reproducible_and_independent() -> None:
    a = rng_stream(1, "x").random(4)
    assert np.array_equal(a, rng_stream(1, "x").random(4))
    assert not np.array_equal(a, rng_stream(1, "y").random(4))
    assert not np.array_equal(a, rng_stream(2, "x").random(4))


@pytest.mark.parametrize("n", [1, 7, 40, 41])
def test_balanced_cycle(n: int) -> None:
    seq = balanced_cycle(["a", "b", "c", "d"], n, rng_stream(0, "t"))
    counts = Counter(seq)
    assert len(seq) == n
    assert max(counts.values()) - min(counts.get(k, 0) for k in "abcd") <= 1


@pytest.mark.parametrize(("ka", "kb"), [(9, 24), (4, 6), (3, 5), (1, 7)])
def test_balanced_pairs_cover_every_pair_once_per_block(ka: int, kb: int) -> None:
    pairs = balanced_pairs(2 * ka * kb, ka, kb, rng_stream(0, "p"))
    assert set(Counter(pairs).values()) == {2}
    prefix = balanced_pairs(ka * kb // 2 + 1, ka, kb, rng_stream(1, "p"))
    for axis, k in ((0, ka), (1, kb)):
        c = Counter(p[axis] for p in prefix)
        assert max(c.values()) - min(c.get(i, 0) for i in range(k)) <= 1


def test_stratified_split_is_exact_and_proportional() -> None:
    strata = ["a"] * 13 + ["b"] * 7 + ["c"] * 30
    split = stratified_split(strata, test_fraction=0.2, rng=rng_stream(0, "s"))
    assert split.count("test") == 10
    per = Counter(s for s, sp in zip(strata, split) if sp == "test")
    assert abs(per["a"] - 2.6) < 1 and abs(per["b"] - 1.4) < 1 and per["c"] == 6
    assert stratified_split(strata, test_fraction=0.0, rng=rng_stream(0, "s")) == ["train"] * 50


def test_place_boxes_keeps_clearance_and_margin() -> None:
    rng = rng_stream(0, "b")
    extents = [(10.0, 15.0), (20.0, 20.0), (5.0, 5.0)]
    for _ in range(50):
        centres = place_boxes(extents, width=200, height=150, margin=4, clearance=6, rng=rng)
        assert centres is not None
        boxes = [(x, y, hx, hy) for (x, y), (hx, hy) in zip(centres, extents)]
        for i, b in enumerate(boxes):
            assert b[0] - b[2] >= 4 and b[0] + b[2] <= 199 - 4
            assert b[1] - b[3] >= 4 and b[1] + b[3] <= 149 - 4
            for o in boxes[i + 1:]:
                assert boxes_clear(b, o, 6)
    assert place_boxes([(60.0, 60.0)] * 3, width=100, height=100, margin=0, clearance=0, rng=rng) is None


@pytest.mark.parametrize("shape", SHAPES)
def test_every_shape_fits_its_box(shape: str) -> None:
    hx, hy = half_extent(shape, 10)
    pts = np.array(shape_vertices(shape, 50, 40, 10))
    assert (np.abs(pts[:, 0] - 50) <= hx + 1e-9).all() and (np.abs(pts[:, 1] - 40) <= hy + 1e-9).all()


def test_arrow_tip_is_the_end_point() -> None:
    s, e, head = arrow_geometry((0, 0), (30, 0), head_length=8, head_width=6)
    assert s == (0, 0) and e == (22, 0)
    assert head[0] == (30, 0) and sorted(p[1] for p in head[1:]) == [-3, 3]


def test_layouts() -> None:
    rng = rng_stream(0, "l")
    cells = random_cells(10, 4, 4, rng, taken=[(0, 0)])
    assert len(set(cells)) == 10 and (0, 0) not in cells
    with pytest.raises(ValueError, match="need 20 free cells"):
        random_cells(20, 4, 4, rng)
    assert len(set(clustered_cells(16, 4, 4, rng))) == 16
    with pytest.raises(ValueError, match="could not scatter"):
        scattered_cells(5, 3, 3, rng, tries=5)
