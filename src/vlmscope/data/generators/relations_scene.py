"""Study B's scenes: entities joined by relations, some drawn as arrows, and masks.

A scene is plain data (JSON round-trip for the manifest's ``scene`` column).
Every unordered pair of entities has one ``Relation``: where ``subject`` is
relative to ``object`` by the dominant axis of their centre offset; when
``arrow`` is true it is drawn as an arrow from subject to object.

A ``Mask`` removes one entity (and every relation touching it) or hides one
arrow (the relation stays, now implicit); ``apply_mask`` gives the masked
scene, whose entities keep their ids.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

from vlmscope.data.generators.draw import half_extent

__all__ = [
    "Entity",
    "Relation",
    "RelScene",
    "Mask",
    "relation_of",
    "axis_dominates",
    "apply_mask",
    "scene_to_json",
    "scene_from_json",
    "arrow_endpoints",
]


@dataclass(frozen=True)
class Entity:
    """A shape of width ``size`` px centred at ``(x, y)``; ``id`` is stable under masking."""

    id: int
    shape: str
    color: str
    size: int
    x: int
    y: int

    @property
    def name(self) -> str:
        return f"{self.color} {self.shape}"


@dataclass(frozen=True)
class Relation:
    """``subject`` is ``relation`` of ``object``; drawn as an arrow subject -> object iff ``arrow``."""

    subject: int
    object: int
    relation: str
    arrow: bool


@dataclass(frozen=True)
class RelScene:
    width: int
    height: int
    entities: tuple[Entity, ...]
    relations: tuple[Relation, ...]

    def entity(self, eid: int) -> Entity | None:
        return next((e for e in self.entities if e.id == eid), None)

    def relation_between(self, a: int, b: int) -> Relation | None:
        return next((r for r in self.relations if {r.subject, r.object} == {a, b}), None)


@dataclass(frozen=True)
class Mask:
    """What the masked copy lacks: one entity, or the arrow of one relation."""

    kind: Literal["remove_entity", "hide_arrow"]
    entity: int | None = None
    arrow: tuple[int, int] | None = None
    """``(subject, object)`` of the hidden arrow."""


def relation_of(a: Entity, b: Entity) -> str:
    """Where ``a`` is relative to ``b`` by the dominant axis (ties go to the x axis).

    Image y grows downwards, so a smaller y is ``above``.
    """
    dx, dy = a.x - b.x, a.y - b.y
    if abs(dx) >= abs(dy):
        return "left_of" if dx < 0 else "right_of"
    return "above" if dy < 0 else "below"


def axis_dominates(a: Entity, b: Entity, ratio: float) -> bool:
    """True iff the dominant offset is at least ``ratio`` times the other one.

    ``ratio = 1`` accepts every pair (the original study); larger values keep
    only pairs a human would not call diagonal.
    """
    dx, dy = abs(a.x - b.x), abs(a.y - b.y)
    return max(dx, dy) >= ratio * min(dx, dy)


def apply_mask(scene: RelScene, mask: Mask) -> RelScene:
    if mask.kind == "remove_entity":
        return replace(
            scene,
            entities=tuple(e for e in scene.entities if e.id != mask.entity),
            relations=tuple(r for r in scene.relations if mask.entity not in (r.subject, r.object)),
        )
    return replace(
        scene,
        relations=tuple(
            replace(r, arrow=False) if (r.subject, r.object) == mask.arrow else r for r in scene.relations
        ),
    )


def scene_to_json(scene: RelScene) -> str:
    return json.dumps(asdict(scene), sort_keys=True, separators=(",", ":"))


def scene_from_json(text: str) -> RelScene:
    d: dict[str, Any] = json.loads(text)
    return RelScene(
        width=d["width"],
        height=d["height"],
        entities=tuple(Entity(**e) for e in d["entities"]),
        relations=tuple(Relation(**r) for r in d["relations"]),
    )


def _ray_exit(hx: float, hy: float, ux: float, uy: float) -> float:
    """Distance from a box centre to its edge along unit direction ``(ux, uy)``."""
    tx = hx / abs(ux) if ux else math.inf
    ty = hy / abs(uy) if uy else math.inf
    return min(tx, ty)


def arrow_endpoints(
    src: Entity, dst: Entity, *, gap: float = 2.0
) -> tuple[tuple[float, float], tuple[float, float]]:
    """Start and tip of the arrow ``src -> dst``: on the centre line, ``gap`` px outside each box.

    The tip touches neither shape, so the arrowhead stays visible next to
    ``dst`` and the shaft never starts inside ``src``.
    """
    dx, dy = dst.x - src.x, dst.y - src.y
    d = math.hypot(dx, dy)
    ux, uy = dx / d, dy / d
    s_out = _ray_exit(*half_extent(src.shape, src.size / 2), ux, uy) + gap
    d_out = _ray_exit(*half_extent(dst.shape, dst.size / 2), ux, uy) + gap
    return (src.x + ux * s_out, src.y + uy * s_out), (dst.x - ux * d_out, dst.y - uy * d_out)
