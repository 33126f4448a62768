"""Study B's relational set: shapes joined by arrows, masked copies, seven query kinds.

Per source image: 2-5 entities with distinct (colour, shape), 1 px black
outline, widths from ``sizes``, placed without overlap by seeded rejection
sampling; every pair gets a relation by the dominant axis of the offset, drawn
as an arrow with probability ``arrow_probability``. Layouts where an arrow
would pass over a third entity are re-drawn, so an arrow never seems to touch
a shape it does not join. The masked copy removes one entity (probability
``mask_remove_probability``, or always when there is no arrow to hide) or
hides one arrow. Every question is asked of both images with the same prompt;
masked rows carry the masked truth and point at their original by
``source_id``. Both images of a source share its split. Unlike the original
generator, everything is seeded.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass

import numpy as np
import polars as pl
from PIL import Image
from pydantic import Field, field_validator, model_validator

from vlmscope.data.generators.base import GENERATORS, MAX_N, GeneratorConfig, GeneratorSpec, ImageJob, Plan
from vlmscope.data.generators.draw import draw_arrow, draw_shape, half_extent, new_canvas
from vlmscope.data.generators.fields import ColorNames, ShapeNames
from vlmscope.data.generators.placement import place_boxes
from vlmscope.data.generators.relations_queries import LETTERS, Query, answer_index, make_queries
from vlmscope.data.generators.relations_scene import (
    Entity,
    Mask,
    Relation,
    RelScene,
    apply_mask,
    arrow_endpoints,
    relation_of,
    scene_to_json,
)
from vlmscope.data.generators.sampling import rng_stream, stratified_split
from vlmscope.errors import ConfigError

__all__ = [
    "RELATIONS_SHAPES",
    "RELATIONS_COLORS",
    "RelationsConfig",
    "RelationsItem",
    "sample_relations_scene",
    "sample_mask",
    "plan_relations",
    "render_relations",
]

RELATIONS_SHAPES: tuple[str, ...] = ("circle", "square", "rectangle", "triangle")
RELATIONS_COLORS: tuple[str, ...] = ("red", "green", "blue", "yellow", "magenta", "cyan", "purple", "orange")
_SCENE_TRIES = 200
_ARROW_GAP = 2.0  # px between a shape's box and the arrow's start / tip


class RelationsConfig(GeneratorConfig):
    """Knobs of the relational set (defaults: study B)."""

    kind = "relations"

    n: int = Field(500, gt=0, le=MAX_N)
    """Number of source images (each also gets a masked copy and ~10 questions per image)."""
    canvas: int = Field(224, ge=64, le=4096)
    """Width = height of the white canvas, px."""
    min_entities: int = Field(2, ge=2, le=64)
    """Fewest entities per image."""
    max_entities: int = Field(5, ge=2, le=64)
    """Most entities per image (uniform between min and max)."""
    shapes: ShapeNames = Field(RELATIONS_SHAPES, min_length=1)
    """Entity shapes (``rectangle`` is 1.5 times as tall as wide)."""
    colors: ColorNames = Field(RELATIONS_COLORS, min_length=1)
    """Entity colours."""
    sizes: tuple[int, ...] = Field((20, 30, 40), min_length=1)
    """Entity widths in px, drawn uniformly."""
    arrow_probability: float = Field(0.5, ge=0.0, le=1.0)
    """Chance that a pair's relation is drawn as an arrow (explicit) rather than left implicit."""
    mask_remove_probability: float = Field(0.5, ge=0.0, le=1.0)
    """Chance that the masked copy removes an entity rather than hides an arrow."""
    margin: int = Field(4, ge=0, le=2048)
    """Shapes stay at least this far inside every edge, px."""
    clearance: int = Field(16, ge=0, le=1024)
    """Least white space between two shapes' boxes, px (room for arrows)."""
    outline_width: int = Field(1, ge=0, le=16)
    """Black outline of every shape, px (0: none)."""
    arrow_width: int = Field(2, ge=1, le=16)
    """Arrow shaft width, px."""
    arrow_head: int = Field(7, ge=2, le=64)
    """Arrowhead length and width, px."""
    spatial_min_ratio: float = Field(1.5, ge=1.0, le=100.0)
    """implicit_spatial asks only about pairs whose dominant offset is >= this times the other (1.0: any pair)."""
    count_max: int = Field(8, ge=1, le=64)
    """Count options are drawn from 0..count_max."""
    count_options: int = Field(4, ge=2, le=len(LETTERS))
    """Number of options of a count question."""

    @field_validator("sizes")
    @classmethod
    def _sizes(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        for s in v:
            if not 4 <= s <= 1024:
                raise ValueError(f"every size must be in [4, 1024] px; got {s}")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> RelationsConfig:
        if self.min_entities > self.max_entities:
            raise ValueError(f"min_entities ({self.min_entities}) must be <= max_entities ({self.max_entities})")
        combos = len(self.shapes) * len(self.colors)
        if self.max_entities > combos:
            raise ValueError(
                f"max_entities ({self.max_entities}) exceeds the {combos} distinct colour-shape pairs "
                "(entities are named by colour and shape, so each pair is used once per image)"
            )
        if self.count_max < self.max_entities:
            raise ValueError(f"count_max ({self.count_max}) must be >= max_entities ({self.max_entities})")
        if self.count_options > self.count_max + 1:
            raise ValueError(f"count_options ({self.count_options}) must be <= count_max + 1 ({self.count_max + 1})")
        return self


@dataclass(frozen=True)
class RelationsItem:
    """One source image: its scene, its mask, the masked scene and its questions."""

    scene: RelScene
    mask: Mask
    masked: RelScene
    queries: tuple[Query, ...]


def _segment_hits_box(p: tuple[float, float], q: tuple[float, float], e: Entity, pad: float) -> bool:
    hx, hy = half_extent(e.shape, e.size / 2)
    steps = max(2, int(math.ceil(math.hypot(q[0] - p[0], q[1] - p[1]))))
    for k in range(steps + 1):
        t = k / steps
        x, y = p[0] + t * (q[0] - p[0]), p[1] + t * (q[1] - p[1])
        if abs(x - e.x) <= hx + pad and abs(y - e.y) <= hy + pad:
            return True
    return False


def _arrows_clear(entities: tuple[Entity, ...], relations: tuple[Relation, ...]) -> bool:
    by_id = {e.id: e for e in entities}
    for r in relations:
        if not r.arrow:
            continue
        start, tip = arrow_endpoints(by_id[r.subject], by_id[r.object], gap=_ARROW_GAP)
        for e in entities:
            if e.id not in (r.subject, r.object) and _segment_hits_box(start, tip, e, pad=2.0):
                return False
    return True


def sample_relations_scene(config: RelationsConfig, rng: np.random.Generator) -> RelScene:
    """Entities, relations and arrow flags for one image; ConfigError if it never fits."""
    combos = [(s, c) for s in config.shapes for c in config.colors]
    for _ in range(_SCENE_TRIES):
        k = int(rng.integers(config.min_entities, config.max_entities + 1))
        picked = [combos[int(i)] for i in rng.choice(len(combos), k, replace=False)]
        sizes = [int(s) for s in rng.choice(config.sizes, k)]
        centres = place_boxes(
            [half_extent(s, w / 2) for (s, _), w in zip(picked, sizes)],
            width=config.canvas,
            height=config.canvas,
            margin=config.margin,
            clearance=config.clearance,
            rng=rng,
        )
        if centres is None:
            continue
        entities = tuple(
            Entity(i, s, c, w, x, y) for i, ((s, c), w, (x, y)) in enumerate(zip(picked, sizes, centres))
        )
        relations = []
        for i in range(k):
            for j in range(i + 1, k):
                a, b = (entities[i], entities[j]) if rng.random() < 0.5 else (entities[j], entities[i])
                arrow = bool(rng.random() < config.arrow_probability)
                relations.append(Relation(a.id, b.id, relation_of(a, b), arrow))
        if _arrows_clear(entities, tuple(relations)):
            return RelScene(config.canvas, config.canvas, entities, tuple(relations))
    raise ConfigError(
        f"could not lay out {config.max_entities} entities of width up to {max(config.sizes)} px "
        f"on a {config.canvas} px canvas (margin {config.margin}, clearance {config.clearance}) "
        f"in {_SCENE_TRIES} tries; enlarge canvas or reduce max_entities/sizes/clearance"
    )


def sample_mask(scene: RelScene, config: RelationsConfig, rng: np.random.Generator) -> Mask:
    """Remove an entity (p = mask_remove_probability, or when no arrow exists) else hide an arrow."""
    arrows = [r for r in scene.relations if r.arrow]
    if not arrows or rng.random() < config.mask_remove_probability:
        return Mask("remove_entity", entity=scene.entities[int(rng.integers(len(scene.entities)))].id)
    r = arrows[int(rng.integers(len(arrows)))]
    return Mask("hide_arrow", arrow=(r.subject, r.object))


def _mask_texts(scene: RelScene, mask: Mask) -> tuple[str | None, str | None]:
    """``(masked_entity, masked_arrow)`` as prompts name them: ``"red circle"``, ``"red circle -> blue square"``."""
    by_id = {e.id: e for e in scene.entities}
    if mask.entity is not None:
        return by_id[mask.entity].name, None
    if mask.arrow is not None:
        s, o = mask.arrow
        return None, f"{by_id[s].name} -> {by_id[o].name}"
    raise ValueError(f"mask {mask} names neither an entity nor an arrow")


def plan_relations(config: RelationsConfig) -> Plan:
    """Scenes, masks, questions and truths for ``config.n`` source images (no I/O)."""
    scene_rng = rng_stream(config.seed, "relations/scenes")
    mask_rng = rng_stream(config.seed, "relations/masks")
    query_rng = rng_stream(config.seed, "relations/queries")
    items: list[RelationsItem] = []
    for _ in range(config.n):
        scene = sample_relations_scene(config, scene_rng)
        mask = sample_mask(scene, config, mask_rng)
        masked = apply_mask(scene, mask)
        queries = make_queries(
            scene,
            masked,
            query_rng,
            shapes=config.shapes,
            colors=config.colors,
            count_max=config.count_max,
            count_options=config.count_options,
            spatial_min_ratio=config.spatial_min_ratio,
        )
        items.append(RelationsItem(scene, mask, masked, tuple(queries)))
    splits = stratified_split(
        [len(it.scene.entities) for it in items],
        test_fraction=config.test_fraction,
        rng=rng_stream(config.seed, "relations/split"),
    )

    cols: dict[str, list] = {k: [] for k in (
        "sample_id", "image", "prompt", "answer", "split", "answer_type", "choices", "answer_index",
        "answer_text", "query_type", "variant", "source_id", "image_id", "n_entities", "n_arrows",
        "mask_type", "masked_entity", "masked_arrow", "query", "mask", "scene",
    )}
    jobs: list[ImageJob] = []
    for i, (it, split) in enumerate(zip(items, splits)):
        source_image = f"relations-{i:06d}"
        masked_entity, masked_arrow = _mask_texts(it.scene, it.mask)
        mask_json = json.dumps(
            {"kind": it.mask.kind, "entity": it.mask.entity, "arrow": list(it.mask.arrow) if it.mask.arrow else None},
            sort_keys=True, separators=(",", ":"),
        )
        for variant, scene in (("original", it.scene), ("masked", it.masked)):
            image_id = source_image if variant == "original" else f"{source_image}-masked"
            image = f"images/{image_id}.png"
            jobs.append(ImageJob(image, scene))
            scene_json = scene_to_json(scene)
            for q in it.queries:
                k = answer_index(q, scene)
                cols["sample_id"].append(f"{image_id}-{q.key}")
                cols["image"].append(image)
                cols["prompt"].append(q.prompt)
                cols["answer"].append(LETTERS[k])
                cols["split"].append(split)
                cols["answer_type"].append("choice")
                cols["choices"].append(list(q.options))
                cols["answer_index"].append(k)
                cols["answer_text"].append(q.options[k])
                cols["query_type"].append(q.query_type)
                cols["variant"].append(variant)
                cols["source_id"].append(f"{source_image}-{q.key}")
                cols["image_id"].append(image_id)
                cols["n_entities"].append(len(scene.entities))
                cols["n_arrows"].append(sum(r.arrow for r in scene.relations))
                cols["mask_type"].append(it.mask.kind)
                cols["masked_entity"].append(masked_entity)
                cols["masked_arrow"].append(masked_arrow)
                cols["query"].append(json.dumps(q.spec, sort_keys=True, separators=(",", ":")))
                cols["mask"].append(mask_json)
                cols["scene"].append(scene_json)
    schema = {k: pl.String for k in cols}
    schema.update({"choices": pl.List(pl.String), "answer_index": pl.Int64, "n_entities": pl.Int64,
                   "n_arrows": pl.Int64})
    df = pl.DataFrame(cols, schema=schema)
    per_type = Counter(q.query_type for it in items for q in it.queries)
    masks = Counter(it.mask.kind for it in items)
    extra = {"queries_per_type": dict(sorted(per_type.items())), "masks": dict(sorted(masks.items()))}
    return Plan(manifest=df, images=tuple(jobs), extra=extra)


def render_relations(scene: RelScene, config: RelationsConfig) -> Image.Image:
    """Entities (outlined) first, then arrows on top."""
    img, draw = new_canvas(scene.width, scene.height)
    outline = "black" if config.outline_width > 0 else None
    for e in scene.entities:
        draw_shape(draw, e.shape, e.x, e.y, e.size / 2, e.color, outline=outline, outline_width=config.outline_width)
    by_id = {e.id: e for e in scene.entities}
    for r in scene.relations:
        if r.arrow:
            start, tip = arrow_endpoints(by_id[r.subject], by_id[r.object], gap=_ARROW_GAP)
            draw_arrow(draw, start, tip, width=config.arrow_width, head_length=config.arrow_head,
                       head_width=config.arrow_head)
    return img


GENERATORS.register("relations")(
    GeneratorSpec(
        name="relations",
        config=RelationsConfig,
        plan=plan_relations,
        render=render_relations,
        summary="Shapes joined by arrows, masked copies, seven lettered query kinds (study B).",
    )
)
