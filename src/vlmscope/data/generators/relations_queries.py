"""Study B's questions: seven query kinds, lettered options, truth from a scene.

A ``Query`` is asked of both the original and the masked image with the same
prompt; ``answer_index(query, scene)`` gives the truth for either scene, so
the masked rows carry the masked truth. Options are built so both truths are
always among them: count options include both counts, and questions about a
pair end with "none of these", the truth when the pair (or its arrow) is gone.

Query kinds (yes/no kinds get one "yes" and one "no" item per image, the "no"
item skipped only when nothing in the vocabulary is absent):

- ``count``: how many shapes (4 options from 0..count_max).
- ``recognition_shape`` / ``recognition_color`` / ``recognition_shape_and_color``:
  is there a <shape> / <colour> shape / <colour> <shape>?
- ``implicit_spatial``: where is A relative to B, for a pair without an arrow
  whose dominant axis is clear (``spatial_min_ratio``); left of / right of /
  above / below / none of these.
- ``explicit_connection``: are A and B connected by an arrow (either way)?
- ``explicit_arrow_direction``: which way does the arrow between A and B point?
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vlmscope.data.generators.relations_scene import RelScene, axis_dominates, relation_of

__all__ = [
    "QUERY_TYPES",
    "LETTERS",
    "INSTRUCTION",
    "NONE_OPTION",
    "SPATIAL_OPTIONS",
    "Query",
    "format_prompt",
    "answer_index",
    "make_queries",
]

QUERY_TYPES: tuple[str, ...] = (
    "count",
    "recognition_shape",
    "recognition_color",
    "recognition_shape_and_color",
    "implicit_spatial",
    "explicit_connection",
    "explicit_arrow_direction",
)
LETTERS = "ABCDEFGHIJ"
INSTRUCTION = "Reply with only the letter of the correct option."
NONE_OPTION = "none of these"
YES_NO = ("yes", "no")
SPATIAL_OPTIONS = ("left of", "right of", "above", "below", NONE_OPTION)
_REL_TEXT = {"left_of": "left of", "right_of": "right of", "above": "above", "below": "below"}


@dataclass(frozen=True)
class Query:
    """One question about an image; ``spec`` says what is asked (ids, shape, colour)."""

    key: str
    """Unique within an image (``count``, ``shape-yes``, ``direction``, ...)."""
    query_type: str
    question: str
    options: tuple[str, ...]
    spec: dict[str, Any] = field(default_factory=dict)

    @property
    def prompt(self) -> str:
        return format_prompt(self.question, self.options)


def format_prompt(question: str, options: Sequence[str]) -> str:
    """``question\\nA) opt\\nB) opt ...\\nReply with only the letter of the correct option.``"""
    lines = [question] + [f"{LETTERS[i]}) {o}" for i, o in enumerate(options)] + [INSTRUCTION]
    return "\n".join(lines)


def answer_index(query: Query, scene: RelScene) -> int:
    """Index into ``query.options`` of the true answer for ``scene``."""
    t, s = query.query_type, query.spec
    if t == "count":
        return query.options.index(str(len(scene.entities)))
    if t == "recognition_shape":
        return 0 if any(e.shape == s["shape"] for e in scene.entities) else 1
    if t == "recognition_color":
        return 0 if any(e.color == s["color"] for e in scene.entities) else 1
    if t == "recognition_shape_and_color":
        return 0 if any(e.shape == s["shape"] and e.color == s["color"] for e in scene.entities) else 1
    a, b = scene.entity(s["a"]), scene.entity(s["b"])
    rel = scene.relation_between(s["a"], s["b"]) if a is not None and b is not None else None
    if t == "implicit_spatial":
        if a is None or b is None:
            return query.options.index(NONE_OPTION)
        return query.options.index(_REL_TEXT[relation_of(a, b)])
    if t == "explicit_connection":
        return 0 if rel is not None and rel.arrow else 1
    if t == "explicit_arrow_direction":
        if rel is None or not rel.arrow:
            return query.options.index(NONE_OPTION)
        return 0 if (rel.subject, rel.object) == (s["a"], s["b"]) else 1
    raise ValueError(f"unknown query type {t!r}")


def _a(word: str) -> str:
    """``"a red"`` / ``"an orange"``."""
    return f"an {word}" if word[:1] in "aeiou" else f"a {word}"


def _yes_no(key: str, qtype: str, question: str, spec: dict[str, Any]) -> Query:
    return Query(key, qtype, question, YES_NO, spec)


def make_queries(
    scene: RelScene,
    masked: RelScene,
    rng: np.random.Generator,
    *,
    shapes: Sequence[str],
    colors: Sequence[str],
    count_max: int,
    count_options: int,
    spatial_min_ratio: float,
) -> list[Query]:
    """The questions for one image pair, in a fixed order of kinds (no I/O)."""
    ents = scene.entities
    by_id = {e.id: e for e in ents}
    out: list[Query] = []

    # count: both truths among the options, the rest distinct draws from 0..count_max
    need = sorted({len(ents), len(masked.entities)})
    pool = [c for c in range(count_max + 1) if c not in need]
    extra = [int(c) for c in rng.choice(pool, count_options - len(need), replace=False)]
    opts = tuple(str(c) for c in sorted(need + extra))
    out.append(Query("count", "count", "How many shapes are in this image?", opts, {}))

    # recognition: a yes item (an entity's attribute) and a no item (an absent one)
    present_shapes = sorted({e.shape for e in ents})
    shape = present_shapes[int(rng.integers(len(present_shapes)))]
    out.append(_yes_no("shape-yes", "recognition_shape", f"Is there {_a(shape)} in this image?", {"shape": shape}))
    absent = [s for s in shapes if s not in present_shapes]
    if absent:
        shape = absent[int(rng.integers(len(absent)))]
        out.append(_yes_no("shape-no", "recognition_shape", f"Is there {_a(shape)} in this image?", {"shape": shape}))

    present_colors = sorted({e.color for e in ents})
    color = present_colors[int(rng.integers(len(present_colors)))]
    q = f"Is there {_a(color)} shape in this image?"
    out.append(_yes_no("color-yes", "recognition_color", q, {"color": color}))
    absent = [c for c in colors if c not in present_colors]
    if absent:
        color = absent[int(rng.integers(len(absent)))]
        q = f"Is there {_a(color)} shape in this image?"
        out.append(_yes_no("color-no", "recognition_color", q, {"color": color}))

    e = ents[int(rng.integers(len(ents)))]
    q = f"Is there {_a(e.color)} {e.shape} in this image?"
    out.append(_yes_no("both-yes", "recognition_shape_and_color", q, {"shape": e.shape, "color": e.color}))
    pairs = {(x.shape, x.color) for x in ents}
    absent_pairs = [(s, c) for s in shapes for c in colors if (s, c) not in pairs]
    # prefer hard negatives: the shape or the colour is in the image, just not together
    hard = [(s, c) for s, c in absent_pairs if s in present_shapes or c in present_colors]
    cands = hard or absent_pairs
    if cands:
        s, c = cands[int(rng.integers(len(cands)))]
        q = f"Is there {_a(c)} {s} in this image?"
        out.append(_yes_no("both-no", "recognition_shape_and_color", q, {"shape": s, "color": c}))

    def ordered(a: int, b: int) -> tuple[int, int]:
        return (a, b) if rng.random() < 0.5 else (b, a)

    # implicit spatial: a pair without an arrow whose dominant axis is clear
    implicit = [
        r for r in scene.relations
        if not r.arrow and axis_dominates(by_id[r.subject], by_id[r.object], spatial_min_ratio)
    ]
    if implicit:
        r = implicit[int(rng.integers(len(implicit)))]
        a, b = ordered(r.subject, r.object)
        q = f"Where is the {by_id[a].name} relative to the {by_id[b].name}?"
        out.append(Query("spatial", "implicit_spatial", q, SPATIAL_OPTIONS, {"a": a, "b": b}))

    # explicit connection: a connected pair or an unconnected one, half and half when both exist
    connected = [(r.subject, r.object) for r in scene.relations if r.arrow]
    unconnected = [(r.subject, r.object) for r in scene.relations if not r.arrow]
    pick_from = connected if connected and (not unconnected or rng.random() < 0.5) else unconnected
    if pick_from:
        a, b = ordered(*pick_from[int(rng.integers(len(pick_from)))])
        q = f"Are the {by_id[a].name} and the {by_id[b].name} connected by an arrow?"
        out.append(_yes_no("connection", "explicit_connection", q, {"a": a, "b": b}))

    # arrow direction: an arrow; options "from A to B", "from B to A", none
    if connected:
        a, b = ordered(*connected[int(rng.integers(len(connected)))])
        na, nb = by_id[a].name, by_id[b].name
        q = f"Which way does the arrow between the {na} and the {nb} point?"
        opts = (f"from the {na} to the {nb}", f"from the {nb} to the {na}", NONE_OPTION)
        out.append(Query("direction", "explicit_arrow_direction", q, opts, {"a": a, "b": b}))

    return out
