"""Study A's colour sanity set: 1-3 shapes, "what colour is the <shape>?" (or its mirror, shape).

The target colour is dealt in balanced rounds over the colour list. The target
is named by its shape alone, so every shape in an image is different; the
other shapes get colours different from the target's (and from each other),
so the answer is unambiguous both in words and in pixels.

``ask="shape"`` asks the mirror question on the same kind of scene, "what
shape is the <colour> one?": the target *shape* is balanced and the target is
named by its colour. Study A only asks about colour; the shape question is
what shows whether a model reads shape from the image at all (the yes/no
recognition questions of the relations set can be answered at the majority
rate without it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal

import numpy as np
import polars as pl
from PIL import Image
from pydantic import Field, model_validator

from vlmscope.data.generators.base import GENERATORS, MAX_N, GeneratorConfig, GeneratorSpec, ImageJob, Plan
from vlmscope.data.generators.draw import PlacedShape, half_extent, render_shapes
from vlmscope.data.generators.fields import ColorNames, ShapeNames, check_shape_sizes
from vlmscope.data.generators.placement import place_boxes
from vlmscope.data.generators.sampling import balanced_cycle, rng_stream, stratified_split
from vlmscope.data.generators.spatial import SPATIAL_COLORS, SPATIAL_SHAPES
from vlmscope.errors import ConfigError

__all__ = ["ColorConfig", "ColorScene", "sample_color_scene", "plan_color", "render_color"]

_SCENE_TRIES = 100


class ColorConfig(GeneratorConfig):
    """Knobs of the colour sanity set (defaults: study A)."""

    kind = "color"

    n: int = Field(1000, gt=0, le=MAX_N)
    """Number of images (one question each)."""
    ask: Literal["color", "shape"] = "color"
    """What is asked: the target's colour (named by its shape; study A) or its shape (named by its colour)."""
    canvas: int = Field(448, ge=64, le=4096)
    """Width = height of the white canvas, px."""
    shapes: ShapeNames = Field(SPATIAL_SHAPES, min_length=1)
    """Shapes to draw from (all different within one image)."""
    colors: ColorNames = Field(SPATIAL_COLORS, min_length=2)
    """Colours; the target colour is balanced over them; also the answer options, in order."""
    min_shapes: int = Field(1, ge=1, le=64)
    """Fewest shapes per image (the target included)."""
    max_shapes: int = Field(3, ge=1, le=64)
    """Most shapes per image (uniform between min and max)."""
    size_min: int = Field(20, ge=2, le=1024)
    """Smallest half-extent (radius / half-side), px."""
    size_max: int = Field(40, ge=2, le=1024)
    """Largest half-extent, px."""
    margin: int = Field(60, ge=0, le=2048)
    """Centres stay at least this far from every edge, px (as in the spatial set)."""
    clearance: int = Field(10, ge=0, le=1024)
    """Least white space between two shapes' boxes, px."""

    @model_validator(mode="after")
    def _consistent(self) -> ColorConfig:
        check_shape_sizes(self.shapes, self.size_min, self.size_max, self.margin)
        if self.min_shapes > self.max_shapes:
            raise ValueError(f"min_shapes ({self.min_shapes}) must be <= max_shapes ({self.max_shapes})")
        if self.max_shapes > len(self.shapes):
            raise ValueError(
                f"max_shapes ({self.max_shapes}) needs as many distinct shapes; shapes has {len(self.shapes)}"
            )
        if self.max_shapes > len(self.colors):
            raise ValueError(
                f"max_shapes ({self.max_shapes}) needs as many distinct colours; colors has {len(self.colors)}"
            )
        return self


@dataclass(frozen=True)
class ColorScene:
    """``shapes[0]`` is the target; the others are distractors."""

    shapes: tuple[PlacedShape, ...]

    @property
    def target(self) -> PlacedShape:
        return self.shapes[0]


def sample_color_scene(
    config: ColorConfig, color: str | None, rng: np.random.Generator, *, shape: str | None = None
) -> ColorScene:
    """One scene whose target has ``color`` and/or ``shape`` (None: drawn); ConfigError if shapes never fit.

    The other shapes always differ from the target in both shape and colour, so
    the target is named unambiguously by either property.
    """
    for _ in range(_SCENE_TRIES):
        k = int(rng.integers(config.min_shapes, config.max_shapes + 1))
        if shape is None:
            shapes = [str(s) for s in rng.choice(config.shapes, k, replace=False)]
        else:
            rest = [s for s in config.shapes if s != shape]
            shapes = [shape] + [str(s) for s in rng.choice(rest, k - 1, replace=False)]
        target = str(rng.choice(config.colors)) if color is None else color
        others = [c for c in config.colors if c != target]
        colors = [target] + [str(c) for c in rng.choice(others, k - 1, replace=False)]
        sizes = [int(s) for s in rng.integers(config.size_min, config.size_max + 1, k)]
        centres = place_boxes(
            [half_extent(s, r) for s, r in zip(shapes, sizes)],
            width=config.canvas,
            height=config.canvas,
            margin=config.margin,
            clearance=config.clearance,
            rng=rng,
            margin_from="centre",
        )
        if centres is not None:
            return ColorScene(
                tuple(PlacedShape(s, c, x, y, r) for s, c, r, (x, y) in zip(shapes, colors, sizes, centres))
            )
    raise ConfigError(
        f"could not place {config.max_shapes} shapes of size up to {config.size_max} px on a "
        f"{config.canvas} px canvas (margin {config.margin}, clearance {config.clearance}) "
        f"in {_SCENE_TRIES} tries; enlarge canvas or reduce max_shapes/size_max/margin"
    )


def plan_color(config: ColorConfig) -> Plan:
    """Scenes, prompts and splits for ``config.n`` images (no I/O)."""
    rng = rng_stream(config.seed, "color/scenes")
    if config.ask == "color":
        targets = balanced_cycle(config.colors, config.n, rng)
        scenes = [sample_color_scene(config, c, rng) for c in targets]
        choices = list(config.colors)
        prompts = [f"What color is the {s.target.shape}? Answer with one of: {', '.join(choices)}." for s in scenes]
        answers = [s.target.color for s in scenes]
    else:
        targets = balanced_cycle(config.shapes, config.n, rng)
        scenes = [sample_color_scene(config, None, rng, shape=t) for t in targets]
        choices = list(config.shapes)
        prompts = [f"What shape is the {s.target.color} one? Answer with one of: {', '.join(choices)}." for s in scenes]
        answers = [s.target.shape for s in scenes]
    splits = stratified_split(targets, test_fraction=config.test_fraction, rng=rng_stream(config.seed, "color/split"))
    ids = [f"{config.ask}-{i:06d}" for i in range(config.n)]
    rows = {
        "sample_id": ids,
        "image": [f"images/{i}.png" for i in ids],
        "prompt": prompts,
        "answer": answers,
        "split": splits,
        "answer_type": ["choice"] * config.n,
        "choices": [choices] * config.n,
        "answer_index": [choices.index(a) for a in answers],
        "color": [s.target.color for s in scenes],
        "shape": [s.target.shape for s in scenes],
        "n_shapes": [len(s.shapes) for s in scenes],
        "target_x": [s.target.x for s in scenes],
        "target_y": [s.target.y for s in scenes],
        "target_size": [s.target.size for s in scenes],
        "scene": [
            json.dumps([p.to_dict() for p in s.shapes], sort_keys=True, separators=(",", ":")) for s in scenes
        ],
    }
    schema = {k: pl.Int64 for k in ("answer_index", "n_shapes", "target_x", "target_y", "target_size")}
    schema["choices"] = pl.List(pl.String)
    df = pl.DataFrame(rows, schema_overrides=schema)
    jobs = tuple(ImageJob(path, scene) for path, scene in zip(rows["image"], scenes))
    return Plan(manifest=df, images=jobs)


def render_color(scene: ColorScene, config: ColorConfig) -> Image.Image:
    return render_shapes(config.canvas, config.canvas, scene.shapes)


GENERATORS.register("color")(
    GeneratorSpec(
        name="color",
        config=ColorConfig,
        plan=plan_color,
        render=render_color,
        summary="Colour sanity set: 1-3 shapes, 'what color is the <shape>?' (target colour balanced); "
        "ask=shape: 'what shape is the <color> one?'",
    )
)
