"""Shared generator config fields: name checks and the size/margin check every shape kind uses."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ValidationError

from vlmscope.data.generators import ColorConfig, SpatialConfig
from vlmscope.data.generators.fields import ColorNames, ShapeNames, check_shape_sizes


class _Names(BaseModel):
    shapes: ShapeNames = ("circle",)
    colors: ColorNames = ("red",)


def test_names_are_checked_against_the_renderer_and_must_not_repeat() -> None:
    assert _Names(shapes=["star", "circle"]).shapes == ("star", "circle")
    with pytest.raises(ValidationError, match="unknown shape 'hexagon'"):
        _Names(shapes=("hexagon",))
    with pytest.raises(ValidationError, match="unknown colour 'teal'"):
        _Names(colors=("teal",))
    with pytest.raises(ValidationError, match="colours must not repeat; repeated: red"):
        _Names(colors=("red", "blue", "red"))


def test_check_shape_sizes_returns_the_largest_half_extent() -> None:
    assert check_shape_sizes(("circle", "square"), 10, 20, 20) == 20
    assert check_shape_sizes(("rectangle",), 10, 20, 30) == 30  # 1.5 times as tall as wide


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((("circle",), 30, 20, 60), r"size_min \(30\) must be <= size_max \(20\)"),
        ((("rectangle",), 10, 20, 29), r"margin \(29\) must be >= the largest half-extent \(30\)"),
    ],
)
def test_check_shape_sizes_names_the_knob_to_change(args: tuple, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check_shape_sizes(*args)


@pytest.mark.parametrize("config", [ColorConfig, SpatialConfig])
def test_shape_kinds_apply_the_shared_checks(config: type) -> None:
    with pytest.raises(ValidationError, match="unknown shape"):
        config(shapes=("blob",))
    with pytest.raises(ValidationError, match="size_min"):
        config(size_min=50, size_max=40)
    with pytest.raises(ValidationError, match="margin"):
        config(margin=10)
