"""Study A's spatial set: two shapes, one relation of subject to reference.

Geometry (448x448 white canvas by default): each centre lies in
``[margin, canvas - margin]``; along the axis that decides the relation the
centres are at least ``max(min_gap, extents + clearance)`` px apart, along the
other axis within ``max_misalign`` px. Relations are dealt in balanced rounds.
The stored coordinates let tests re-derive every label from geometry alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import polars as pl
from PIL import Image
from pydantic import Field, field_validator, model_validator

from vlmscope.data.generators.base import GENERATORS, MAX_N, GeneratorConfig, GeneratorSpec, ImageJob, Plan
from vlmscope.data.generators.draw import PlacedShape, check_names, half_extent, render_shapes
from vlmscope.data.generators.fields import ColorNames, ShapeNames, check_shape_sizes
from vlmscope.data.generators.sampling import balanced_cycle, rng_stream, stratified_split

__all__ = [
    "RELATIONS",
    "RELATION_TEXT",
    "SPATIAL_SHAPES",
    "SPATIAL_COLORS",
    "SpatialConfig",
    "SpatialScene",
    "sample_spatial_scene",
    "plan_spatial",
    "render_spatial",
]

Relation = Literal["left_of", "right_of", "above", "below"]
RELATIONS: tuple[str, ...] = ("left_of", "right_of", "above", "below")
RELATION_TEXT: dict[str, str] = {"left_of": "left of", "right_of": "right of", "above": "above", "below": "below"}
SPATIAL_SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "pentagon", "star")
SPATIAL_COLORS: tuple[str, ...] = (
    "red", "green", "blue", "yellow", "orange", "purple", "pink", "brown", "gray", "black",
)


class SpatialConfig(GeneratorConfig):
    """Knobs of the spatial set (defaults: study A)."""

    kind = "spatial"

    n: int = Field(3000, gt=0, le=MAX_N)
    """Number of images (one question each)."""
    canvas: int = Field(448, ge=64, le=4096)
    """Width = height of the white canvas, px."""
    shapes: ShapeNames = Field(SPATIAL_SHAPES, min_length=1)
    """Shapes to draw from (with replacement: subject and reference may share a shape)."""
    colors: ColorNames = Field(SPATIAL_COLORS, min_length=2)
    """Colours to draw from; subject and reference always get two different ones."""
    relations: tuple[Relation, ...] = Field(RELATIONS, min_length=1)
    """Relations to deal out (balanced); also the answer options, in this order."""
    size_min: int = Field(20, ge=2, le=1024)
    """Smallest half-extent (radius / half-side), px."""
    size_max: int = Field(40, ge=2, le=1024)
    """Largest half-extent, px (sizes are uniform integers in [size_min, size_max])."""
    margin: int = Field(60, ge=0, le=2048)
    """Centres stay at least this far from every edge, px."""
    min_gap: int = Field(80, ge=1, le=4096)
    """Least centre distance along the deciding axis, px."""
    max_misalign: int = Field(30, ge=0, le=4096)
    """Largest centre offset along the other axis, px."""
    clearance: int = Field(4, ge=0, le=1024)
    """Least white space between the two shapes' boxes along the deciding axis, px."""

    @field_validator("relations")
    @classmethod
    def _relations(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return check_names(v, RELATIONS, "relation")

    @model_validator(mode="after")
    def _fits(self) -> SpatialConfig:
        ext = check_shape_sizes(self.shapes, self.size_min, self.size_max, self.margin)
        span = self.canvas - 2 * self.margin
        need = max(self.min_gap, 2 * ext + self.clearance)
        if span < need:
            raise ValueError(
                f"canvas - 2*margin = {span} px cannot fit a gap of {need:g} px "
                f"(min_gap {self.min_gap}, 2*size + clearance {2 * ext + self.clearance:g}); "
                "enlarge canvas or reduce margin/min_gap/size_max"
            )
        return self


@dataclass(frozen=True)
class SpatialScene:
    """Subject and reference; ``relation`` is where the subject is relative to the reference."""

    subject: PlacedShape
    reference: PlacedShape
    relation: str


def sample_spatial_scene(config: SpatialConfig, relation: str, rng: np.random.Generator) -> SpatialScene:
    """Draw shapes, colours, sizes and centres that satisfy ``relation`` exactly."""
    s_shape, r_shape = (str(x) for x in rng.choice(config.shapes, 2))
    s_color, r_color = (str(x) for x in rng.choice(config.colors, 2, replace=False))
    s_size, r_size = (int(x) for x in rng.integers(config.size_min, config.size_max + 1, 2))
    horizontal = relation in ("left_of", "right_of")
    axis = 0 if horizontal else 1
    ext = half_extent(s_shape, s_size)[axis] + half_extent(r_shape, r_size)[axis]
    need = max(config.min_gap, math.ceil(ext + config.clearance))
    lo, hi = config.margin, config.canvas - config.margin
    delta = int(rng.integers(need, hi - lo + 1))
    low = int(rng.integers(lo, hi - delta + 1))
    a = int(rng.integers(lo, hi + 1))
    b = min(max(a + int(rng.integers(-config.max_misalign, config.max_misalign + 1)), lo), hi)
    first, second = (low, low + delta) if relation in ("left_of", "above") else (low + delta, low)
    if horizontal:
        (sx, sy), (rx, ry) = (first, a), (second, b)
    else:
        (sx, sy), (rx, ry) = (a, first), (b, second)
    return SpatialScene(
        subject=PlacedShape(s_shape, s_color, sx, sy, s_size),
        reference=PlacedShape(r_shape, r_color, rx, ry, r_size),
        relation=relation,
    )


def plan_spatial(config: SpatialConfig) -> Plan:
    """Scenes, prompts and splits for ``config.n`` images (no I/O)."""
    rng = rng_stream(config.seed, "spatial/scenes")
    relations = balanced_cycle(config.relations, config.n, rng)
    scenes = [sample_spatial_scene(config, rel, rng) for rel in relations]
    splits = stratified_split(
        relations, test_fraction=config.test_fraction, rng=rng_stream(config.seed, "spatial/split")
    )
    choices = [RELATION_TEXT[r] for r in config.relations]
    ids = [f"spatial-{i:06d}" for i in range(config.n)]
    rows = {
        "sample_id": ids,
        "image": [f"images/{i}.png" for i in ids],
        "prompt": [
            f"Where is the {s.subject.name} relative to the {s.reference.name}? "
            f"Answer with one of: {', '.join(choices)}."
            for s in scenes
        ],
        "answer": [RELATION_TEXT[s.relation] for s in scenes],
        "split": splits,
        "answer_type": ["choice"] * config.n,
        "choices": [choices] * config.n,
        "answer_index": [config.relations.index(s.relation) for s in scenes],
        "relation": [s.relation for s in scenes],
        "subject_shape": [s.subject.shape for s in scenes],
        "subject_color": [s.subject.color for s in scenes],
        "subject_x": [s.subject.x for s in scenes],
        "subject_y": [s.subject.y for s in scenes],
        "subject_size": [s.subject.size for s in scenes],
        "reference_shape": [s.reference.shape for s in scenes],
        "reference_color": [s.reference.color for s in scenes],
        "reference_x": [s.reference.x for s in scenes],
        "reference_y": [s.reference.y for s in scenes],
        "reference_size": [s.reference.size for s in scenes],
    }
    schema = {k: pl.Int64 for k in rows if k.endswith(("_x", "_y", "_size", "_index"))}
    schema["choices"] = pl.List(pl.String)
    df = pl.DataFrame(rows, schema_overrides=schema)
    jobs = tuple(ImageJob(path, scene) for path, scene in zip(rows["image"], scenes))
    return Plan(manifest=df, images=jobs)


def render_spatial(scene: SpatialScene, config: SpatialConfig) -> Image.Image:
    return render_shapes(config.canvas, config.canvas, [scene.subject, scene.reference])


GENERATORS.register("spatial")(
    GeneratorSpec(
        name="spatial",
        config=SpatialConfig,
        plan=plan_spatial,
        render=render_spatial,
        summary="Two shapes, 'where is X relative to Y' (left of / right of / above / below).",
    )
)
