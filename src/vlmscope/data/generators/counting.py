"""Study C's counting grid world: "How many red triangles are there?".

A ``rows x cols`` grid of ``cell_size`` px cells, at most one entity per cell,
drawn full-cell (``large``) or half-cell (``small``). Count and entity type
are dealt jointly balanced (``sampling.balanced_pairs``). Variants:

- ``balanced``: only targets, in random cells.
- ``distractors``: plus ``n_distractors`` entities of one ``SIZE_COLOR_SHAPE``
  type; target types the question could confuse with it are excluded.
- ``clustered``: targets form one compact king-connected blob.
- ``scattered``: no two targets closer than ``scatter_min_distance`` cells.
- ``unseen-combinations``: colour-shape combinations are split into train and
  valid ones; a row's ``split`` is ``valid`` iff its combination is held out,
  so valid combinations never occur in train (every colour and shape still
  does). No ``test`` split unless ``test_fraction`` is set.

The entity type in questions is ``COLOR_SHAPE`` or ``SIZE_COLOR_SHAPE``
(``entity_type_format``); the ``entities`` column lists every drawn entity
with its cell, so tests can recount.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import polars as pl
from PIL import Image
from pydantic import Field, field_validator, model_validator

from vlmscope.data.generators.base import GENERATORS, MAX_N, GeneratorConfig, GeneratorSpec, ImageJob, Plan
from vlmscope.data.generators.counting_layout import clustered_cells, random_cells, scattered_cells
from vlmscope.data.generators.draw import PALETTE, SHAPES, check_names, draw_shape, new_canvas
from vlmscope.data.generators.fields import ColorNames, ShapeNames
from vlmscope.data.generators.sampling import balanced_pairs, rng_stream, stratified_split
from vlmscope.errors import ConfigError

__all__ = [
    "COUNTING_VARIANTS",
    "COUNTING_SHAPES",
    "COUNTING_COLORS",
    "COUNTING_SIZES",
    "CountingConfig",
    "GridEntity",
    "CountingScene",
    "choose_valid_combinations",
    "plan_counting",
    "render_counting",
    "cell_centre",
    "entity_radius",
]

Variant = Literal["balanced", "distractors", "clustered", "scattered", "unseen-combinations"]
COUNTING_VARIANTS: tuple[str, ...] = ("balanced", "distractors", "clustered", "scattered", "unseen-combinations")
COUNTING_SHAPES: tuple[str, ...] = ("square", "circle", "triangle", "star")
COUNTING_COLORS: tuple[str, ...] = ("red", "green", "blue", "magenta", "yellow", "cyan")
COUNTING_SIZES: tuple[str, ...] = ("large", "small")
PREFIX = "Answer using as few words as possible."

# variant-only knobs and their defaults (filled in only for that variant)
_VARIANT_KNOBS: dict[str, dict[str, Any]] = {
    "distractors": {"n_distractors": 1, "distractor_type": "small_red_circle"},
    "unseen-combinations": {"n_valid_combinations": 6},
    "scattered": {"scatter_min_distance": 2},
}
_KNOB_VARIANT = {k: v for v, knobs in _VARIANT_KNOBS.items() for k in knobs} | {
    "valid_combinations": "unseen-combinations"
}


def _parse_type(text: str, parts: int, what: str) -> tuple[str, ...]:
    out = tuple(text.split("_"))
    if len(out) != parts:
        raise ValueError(f"{what} must look like {'SIZE_COLOR_SHAPE' if parts == 3 else 'COLOR_SHAPE'} "
                         f"(e.g. {'small_red_circle' if parts == 3 else 'red_circle'}); got {text!r}")
    return out


class CountingConfig(GeneratorConfig):
    """Knobs of the counting grid world (defaults: study C)."""

    kind = "counting"

    variant: Variant = "balanced"
    """balanced, distractors, clustered, scattered or unseen-combinations."""
    n: int = Field(1080, gt=0, le=MAX_N)
    """Number of images (one question each); 1080 = 5 per (24 types x 9 counts)."""
    test_fraction: float = Field(0.2, ge=0.0, lt=1.0)
    """Fraction in ``test``, stratified by count (unseen-combinations: default 0; held-out rows are ``valid``)."""
    rows: int = Field(9, ge=1, le=64)
    """Grid rows."""
    cols: int = Field(9, ge=1, le=64)
    """Grid columns."""
    cell_size: int = Field(32, ge=8, le=512)
    """Cell side, px (the image is cols*cell_size x rows*cell_size)."""
    shapes: ShapeNames = Field(COUNTING_SHAPES, min_length=1)
    """Target shapes."""
    colors: ColorNames = Field(COUNTING_COLORS, min_length=1)
    """Target colours."""
    sizes: tuple[str, ...] = Field(COUNTING_SIZES, min_length=1)
    """Target sizes (large: full cell, small: half cell)."""
    counts: tuple[int, ...] = Field(tuple(range(1, 10)), min_length=1)
    """Target counts, dealt balanced."""
    entity_type_format: Literal["color_shape", "size_color_shape"] = "color_shape"
    """What the question names: 'red triangles' or 'small red triangles'."""
    question: Literal["closed", "open"] = "closed"
    """closed: '... Choose from [0, 1, ..., max]'; open: no options."""
    n_distractors: int | None = Field(None, ge=0, le=4096)
    """distractors only (default 1; the study uses 1, 5, 9): distractor entities per image."""
    distractor_type: str | None = None
    """distractors only (default small_red_circle): SIZE_COLOR_SHAPE of the distractors."""
    n_valid_combinations: int | None = Field(None, ge=1, le=4096)
    """unseen-combinations only (default 6): colour-shape combinations held out as valid."""
    valid_combinations: tuple[str, ...] | None = None
    """unseen-combinations only: explicit held-out COLOR_SHAPE list (overrides the draw)."""
    scatter_min_distance: int | None = Field(None, ge=1, le=64)
    """scattered only (default 2: no two targets touch): least king distance between targets."""

    @model_validator(mode="before")
    @classmethod
    def _variant_defaults(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        variant = data.get("variant", "balanced")
        for key, owner in _KNOB_VARIANT.items():
            if data.get(key) is not None and owner != variant:
                raise ValueError(f"{key} applies only to variant {owner!r}, not {variant!r}")
        for key, default in _VARIANT_KNOBS.get(variant, {}).items():
            if data.get(key) is None:
                data[key] = default
        if variant == "unseen-combinations":
            if data.get("valid_combinations") is not None:
                data["n_valid_combinations"] = len(tuple(data["valid_combinations"]))
            data.setdefault("test_fraction", 0.0)
        return data

    @field_validator("sizes")
    @classmethod
    def _sizes(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return check_names(v, COUNTING_SIZES, "size")

    @field_validator("counts")
    @classmethod
    def _counts(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if any(c < 0 for c in v):
            raise ValueError(f"counts must be >= 0; got {list(v)}")
        if len(set(v)) != len(v):
            raise ValueError(f"counts must not repeat; got {list(v)}")
        return v

    @field_validator("distractor_type")
    @classmethod
    def _distractor(cls, v: str | None) -> str | None:
        if v is not None:
            size, color, shape = _parse_type(v, 3, "distractor_type")
            check_names([size], COUNTING_SIZES, "size")
            check_names([color], tuple(PALETTE), "colour")
            check_names([shape], SHAPES, "shape")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> CountingConfig:
        cells = self.rows * self.cols
        busy = max(self.counts) + (self.n_distractors or 0)
        if busy > cells:
            raise ValueError(
                f"max(counts) + n_distractors = {busy} entities do not fit "
                f"a {self.rows}x{self.cols} grid ({cells} cells)"
            )
        combos = {f"{c}_{s}" for c in self.colors for s in self.shapes}
        if self.valid_combinations is not None:
            for vc in self.valid_combinations:
                _parse_type(vc, 2, "valid_combinations entry")
                if vc not in combos:
                    raise ValueError(
                        f"valid combination {vc!r} is not one of colors x shapes: {', '.join(sorted(combos))}"
                    )
            check_names(self.valid_combinations, sorted(combos), "combination")
        if self.n_valid_combinations is not None and self.n_valid_combinations >= len(combos):
            raise ValueError(
                f"n_valid_combinations ({self.n_valid_combinations}) must leave some of the "
                f"{len(combos)} colour-shape combinations for train"
            )
        if self.variant == "distractors" and not _target_types(self):
            raise ValueError(f"every target type clashes with distractor_type {self.distractor_type!r}")
        return self


@dataclass(frozen=True)
class GridEntity:
    row: int
    col: int
    shape: str
    color: str
    size: str
    role: Literal["target", "distractor"]


@dataclass(frozen=True)
class CountingScene:
    rows: int
    cols: int
    cell_size: int
    entities: tuple[GridEntity, ...]


def _target_types(config: CountingConfig) -> list[tuple[str | None, str, str]]:
    """(size or None, colour, shape) types a question may ask about, in a fixed order."""
    if config.entity_type_format == "size_color_shape":
        types = [(z, c, s) for z in config.sizes for c in config.colors for s in config.shapes]
    else:
        types = [(None, c, s) for c in config.colors for s in config.shapes]
    if config.variant == "distractors" and config.distractor_type:
        dz, dc, ds = config.distractor_type.split("_")
        types = [t for t in types if (t[1], t[2]) != (dc, ds) or (t[0] is not None and t[0] != dz)]
    return types


def choose_valid_combinations(config: CountingConfig, rng: np.random.Generator) -> list[str]:
    """Held-out ``COLOR_SHAPE`` combinations; every colour and shape keeps a train combination."""
    if config.valid_combinations is not None:
        return sorted(config.valid_combinations)
    combos = [(c, s) for c in config.colors for s in config.shapes]
    chosen: list[tuple[str, str]] = []
    for i in rng.permutation(len(combos)):
        c, s = combos[int(i)]
        trial = set(chosen) | {(c, s)}
        train = [x for x in combos if x not in trial]
        if {x[0] for x in train} == set(config.colors) and {x[1] for x in train} == set(config.shapes):
            chosen.append((c, s))
            if len(chosen) == config.n_valid_combinations:
                return sorted(f"{c}_{s}" for c, s in chosen)
    raise ConfigError(
        f"cannot hold out {config.n_valid_combinations} colour-shape combinations and keep every "
        f"colour and shape in train ({len(config.colors)} colours x {len(config.shapes)} shapes); "
        "lower n_valid_combinations or pass valid_combinations"
    )


def _type_name(size: str | None, color: str, shape: str) -> str:
    return "_".join(x for x in (size, color, shape) if x)


def _cells(config: CountingConfig, count: int, rng: np.random.Generator) -> list[tuple[int, int]]:
    try:
        if config.variant == "clustered":
            return clustered_cells(count, config.rows, config.cols, rng)
        if config.variant == "scattered":
            return scattered_cells(count, config.rows, config.cols, rng, min_distance=config.scatter_min_distance or 2)
        return random_cells(count, config.rows, config.cols, rng)
    except ValueError as e:
        raise ConfigError(f"counting variant {config.variant!r}: {e}; use a larger grid or smaller counts") from e


def plan_counting(config: CountingConfig) -> Plan:
    """Scenes, questions and splits for ``config.n`` images (no I/O)."""
    rng = rng_stream(config.seed, f"counting/{config.variant}/scenes")
    types = _target_types(config)
    pairs = balanced_pairs(config.n, len(config.counts), len(types), rng)
    dist = None
    if config.variant == "distractors" and config.distractor_type:
        dist = tuple(config.distractor_type.split("_"))
    scenes: list[CountingScene] = []
    meta: list[dict[str, Any]] = []
    for ci, ti in pairs:
        count = config.counts[ci]
        tsize, color, shape = types[ti]
        size = tsize if tsize is not None else config.sizes[int(rng.integers(len(config.sizes)))]
        cells = _cells(config, count, rng)
        ents = [GridEntity(r, c, shape, color, size, "target") for r, c in cells]
        if dist is not None:
            for r, c in random_cells(config.n_distractors or 0, config.rows, config.cols, rng, taken=cells):
                ents.append(GridEntity(r, c, dist[2], dist[1], dist[0], "distractor"))
        scenes.append(CountingScene(config.rows, config.cols, config.cell_size, tuple(ents)))
        meta.append({"count": count, "size": size, "color": color, "shape": shape,
                     "entity_type": _type_name(tsize, color, shape)})

    combination = [f"{m['color']}_{m['shape']}" for m in meta]
    extra: dict[str, Any] = {}
    split_rng = rng_stream(config.seed, f"counting/{config.variant}/split")
    if config.variant == "unseen-combinations":
        valid = set(choose_valid_combinations(config, rng_stream(config.seed, "counting/combinations")))
        train_idx = [i for i, c in enumerate(combination) if c not in valid]
        inner = stratified_split(
            [meta[i]["count"] for i in train_idx], test_fraction=config.test_fraction, rng=split_rng
        )
        splits = ["valid"] * config.n
        for i, s in zip(train_idx, inner):
            splits[i] = s
        extra = {
            "valid_combinations": sorted(valid),
            "train_combinations": sorted({f"{c}_{s}" for c in config.colors for s in config.shapes} - valid),
        }
    else:
        splits = stratified_split([m["count"] for m in meta], test_fraction=config.test_fraction, rng=split_rng)

    options = f" Choose from [{', '.join(str(i) for i in range(max(config.counts) + 1))}]."
    tail = options if config.question == "closed" else ""
    ids = [f"counting-{i:06d}" for i in range(config.n)]

    def noun(m: dict[str, Any]) -> str:
        size = f"{m['size']} " if config.entity_type_format == "size_color_shape" else ""
        return f"{size}{m['color']} {m['shape']}s"

    rows = {
        "sample_id": ids,
        "image": [f"images/{i}.png" for i in ids],
        "prompt": [f"{PREFIX} How many {noun(m)} are there?{tail}" for m in meta],
        "answer": [str(m["count"]) for m in meta],
        "split": splits,
        "answer_type": ["count"] * config.n,
        "count": [m["count"] for m in meta],
        "entity_type": [m["entity_type"] for m in meta],
        "color": [m["color"] for m in meta],
        "shape": [m["shape"] for m in meta],
        "size": [m["size"] for m in meta],
        "combination": combination,
        "variant": [config.variant] * config.n,
        "n_entities": [len(s.entities) for s in scenes],
        "n_distractors": [sum(e.role == "distractor" for e in s.entities) for s in scenes],
        "distractor_type": [config.distractor_type if dist is not None else None] * config.n,
        "entities": [
            json.dumps([asdict(e) for e in s.entities], sort_keys=True, separators=(",", ":")) for s in scenes
        ],
    }
    schema = {k: pl.Int64 for k in ("count", "n_entities", "n_distractors")}
    schema["distractor_type"] = pl.String
    df = pl.DataFrame(rows, schema_overrides=schema)
    jobs = tuple(ImageJob(path, scene) for path, scene in zip(rows["image"], scenes))
    return Plan(manifest=df, images=jobs, extra=extra)


def cell_centre(scene: CountingScene, row: int, col: int) -> tuple[float, float]:
    """Pixel centre of a cell (pixels ``[col*s, (col+1)*s - 1]``)."""
    s = scene.cell_size
    return col * s + (s - 1) / 2, row * s + (s - 1) / 2


def entity_radius(scene: CountingScene, size: str) -> float:
    """Half-extent: large fills the cell (1 px inset each side), small is half a cell wide."""
    return scene.cell_size / 2 - 1.5 if size == "large" else scene.cell_size / 4


def render_counting(scene: CountingScene, config: CountingConfig) -> Image.Image:
    img, draw = new_canvas(scene.cols * scene.cell_size, scene.rows * scene.cell_size)
    for e in scene.entities:
        x, y = cell_centre(scene, e.row, e.col)
        draw_shape(draw, e.shape, x, y, entity_radius(scene, e.size), e.color)
    return img


GENERATORS.register("counting")(
    GeneratorSpec(
        name="counting",
        config=CountingConfig,
        plan=plan_counting,
        render=render_counting,
        summary="Grid world 'how many red triangles?'; variants: " + ", ".join(COUNTING_VARIANTS) + ".",
    )
)
