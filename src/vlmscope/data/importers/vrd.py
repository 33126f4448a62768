"""VRD scene graphs -> the spatial-probing relationship set.

Reads ``sg_train_annotations.json`` / ``sg_test_annotations.json``: a JSON
list of images ``{"filename", "objects": [{"names": [...], ...}],
"relationships": [{"objects": [subject_index, object_index],
"relationship": str}, ...]}``. Writes the standard dataset directory plus
``relationships.csv`` (``img_path, subj, obj, relationship``: the flat CSV
of the spatial probing study, ``img_path`` relative to the dataset).

What the original ``dataset_to_csv.py`` does, and so does this by default:

- an object's name is its first ``names`` entry;
- a pair whose names belong to the same family (equal after removing a
  trailing numeric suffix: ``truck`` vs ``truck 2``) is dropped, because
  the question "where is the truck relative to the truck?" has no answer a
  reader can check (``drop_same_family=False`` keeps them);
- only the kept relations (default left of / right of / above / below;
  add ``in front of`` / ``behind`` for depth) survive;
- rows whose image file does not exist are dropped (here: counted in the
  report, not silently);
- exact duplicate rows (same image, subject, object, relation) are dropped;
- ``balance=True`` downsamples every relation to the rarest one's count
  (seeded), per split, as the original's ``downsample`` did.

An image yields one row per kept relationship; the rows share the image.
Images are looked up under the images root as ``<filename>``, then as
``sg_<split>_images/<filename>`` (the layout of the Kaggle download).
"""

from __future__ import annotations

import random
import re
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import polars as pl
from pydantic import Field, field_validator

from vlmscope.data.importers.common import (
    ImageSink,
    ImportConfigBase,
    ImportReport,
    field,
    find_image,
    infer_split,
    load_json,
    safe_relative,
    usable_image,
    write_import,
)
from vlmscope.errors import ImporterError
from vlmscope.templates import template_check

__all__ = ["VrdImportConfig", "import_vrd", "base_label", "SPATIAL_RELATIONS", "DEPTH_RELATIONS", "CSV_NAME"]

SPATIAL_RELATIONS = ("left of", "right of", "above", "below")
DEPTH_RELATIONS = ("in front of", "behind")
CSV_NAME = "relationships.csv"
_SUFFIX = re.compile(r"^(?P<base>.+?)\s+\d+$")


class VrdImportConfig(ImportConfigBase):
    """How VRD relationships become manifest rows."""

    relations: list[str] = Field(default_factory=lambda: list(SPATIAL_RELATIONS), min_length=2)
    """Relations kept, in the order shown as choices."""
    drop_same_family: bool = True
    """Drop pairs like ``truck`` / ``truck 2`` (the original does)."""
    deduplicate: bool = True
    """Drop exact duplicate (image, subj, obj, relationship) rows."""
    balance: bool = False
    """Downsample each relation to the rarest relation's count, per split (seeded)."""
    max_per_class: int | None = Field(default=None, ge=1)
    """With ``balance``: cap per relation below the rarest count."""
    seed: int = 42
    split: Literal["train", "valid", "test"] | None = None
    """Split for all rows; ``None`` reads it from the file name (``sg_train_...`` -> train)."""
    prompt_template: Annotated[str, template_check("subj", "obj", optional=("choices",))] = (
        "What is the spatial relation of the {subj} to the {obj}? Choose one of [{choices}]."
    )
    """Question text; ``{subj}``, ``{obj}`` and ``{choices}`` (comma-joined relations) are filled in."""

    @field_validator("relations")
    @classmethod
    def _unique(cls, v: list[str]) -> list[str]:
        v = [r.strip() for r in v]
        if any(not r for r in v) or len(set(v)) != len(v):
            raise ValueError(f"relations must be distinct non-empty names, got {v}")
        return v


def base_label(name: str) -> str:
    """``'truck 2' -> 'truck'``: an object name without its trailing instance number."""
    name = name.strip()
    m = _SUFFIX.match(name)
    return m.group("base").strip() if m else name


def _object_name(objects: list[Any], idx: Any, where: str) -> str:
    if not isinstance(idx, int) or isinstance(idx, bool) or not 0 <= idx < len(objects):
        raise ImporterError(f"{where}: object index {idx!r} is out of range (the image has {len(objects)} objects)")
    names = field(objects[idx], "names", list, f"{where} -> objects[{idx}]")
    if not names or not isinstance(names[0], str):
        raise ImporterError(f"{where} -> objects[{idx}]: field 'names' must be a non-empty list of strings")
    return names[0].strip()


def _read_rows(
    path: Path, images: Path, split: str, cfg: VrdImportConfig, report: ImportReport
) -> list[dict[str, Any]]:
    data = load_json(path)
    if not isinstance(data, list):
        raise ImporterError(f"{path}: expected a JSON list of images, got {type(data).__name__}")
    keep = set(cfg.relations)
    rows: list[dict[str, Any]] = []
    for i, rec in enumerate(data):
        where = f"{path}: record {i}"
        report.n_records += 1
        filename = field(rec, "filename", str, where)
        rel = safe_relative(filename, where)
        objects = field(rec, "objects", list, where)
        rels = field(rec, "relationships", list, where)
        candidates = []
        for j, r in enumerate(rels):
            rwhere = f"{where} relationships[{j}]"
            pair = field(r, "objects", list, rwhere)
            relationship = field(r, "relationship", str, rwhere).strip()
            if len(pair) != 2:
                raise ImporterError(f"{rwhere}: field 'objects' must be [subject_index, object_index], got {pair}")
            subj = _object_name(objects, pair[0], rwhere)
            obj = _object_name(objects, pair[1], rwhere)
            if relationship not in keep:
                report.drop("relation_not_kept", relationship)
                continue
            if cfg.drop_same_family and base_label(subj) == base_label(obj):
                report.drop("same_family", f"{subj} / {obj}")
                continue
            candidates.append((j, subj, obj, relationship))
        if not candidates:
            continue
        src = find_image(images, rel, (f"sg_{split}_images",))
        if not usable_image(src, filename, report, len(candidates)):
            continue
        for j, subj, obj, relationship in candidates:
            rows.append(
                {
                    "src": src,
                    "rel": rel,
                    "sample_id": f"vrd-{split}-{i:05d}-{j:03d}",
                    "split": split,
                    "subj": subj,
                    "obj": obj,
                    "relationship": relationship,
                }
            )
    return rows


def _dedupe(rows: list[dict[str, Any]], report: ImportReport) -> list[dict[str, Any]]:
    seen: set[tuple[Any, ...]] = set()
    out = []
    for r in rows:
        key = (r["split"], str(r["rel"]), r["subj"], r["obj"], r["relationship"])
        if key in seen:
            report.drop("duplicate", f"{r['rel']}: {r['subj']} {r['relationship']} {r['obj']}")
            continue
        seen.add(key)
        out.append(r)
    return out


def _balance(rows: list[dict[str, Any]], cfg: VrdImportConfig, report: ImportReport) -> list[dict[str, Any]]:
    rng = random.Random(cfg.seed)
    out: list[dict[str, Any]] = []
    for split in sorted({r["split"] for r in rows}):
        groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for r in rows:
            if r["split"] == split:
                groups[r["relationship"]].append(r)
        target = min(len(g) for g in groups.values())
        if cfg.max_per_class is not None:
            target = min(target, cfg.max_per_class)
        for name in sorted(groups):
            g = groups[name]
            kept = set(rng.sample(range(len(g)), target))
            for k, r in enumerate(g):
                if k in kept:
                    out.append(r)
                else:
                    report.drop("balanced_away", name)
        missing = [r for r in cfg.relations if r not in groups]
        if missing:
            report.notes.append(f"split {split}: no rows for relation(s) {missing}; balanced over the others")
    order = {id(r): k for k, r in enumerate(rows)}
    return sorted(out, key=lambda r: order[id(r)])


def import_vrd(
    sources: Sequence[Path], images: Path, out: Path, config: VrdImportConfig = VrdImportConfig()
) -> ImportReport:
    """Import one or more VRD scene-graph files into the dataset directory ``out``.

    Returns the report (also written to ``out/import_report.json``). Nothing
    is written to ``out`` unless the whole import succeeds.
    """
    if not sources:
        raise ImporterError("vrd: give at least one annotation file (sg_train_annotations.json ...)")
    report = ImportReport("vrd")
    rows: list[dict[str, Any]] = []
    for src in sources:
        split = infer_split(Path(src), config.split)
        rows.extend(_read_rows(Path(src), Path(images), split, config, report))
    if config.deduplicate:
        rows = _dedupe(rows, report)
    if config.balance and rows:
        rows = _balance(rows, config, report)
    if not rows:
        raise ImporterError(f"vrd: no rows left after filtering; {report.summary()}")
    choices = list(config.relations)
    choice_text = ", ".join(choices)
    report.count_rows(rows)

    def build(tmp: Path) -> pl.DataFrame:
        image_paths = ImageSink(tmp, config.image_mode).place_rows(rows)
        pl.DataFrame(
            {
                "img_path": image_paths,
                "subj": [r["subj"] for r in rows],
                "obj": [r["obj"] for r in rows],
                "relationship": [r["relationship"] for r in rows],
            }
        ).write_csv(tmp / CSV_NAME)
        return pl.DataFrame(
            {
                "sample_id": [r["sample_id"] for r in rows],
                "image": image_paths,
                "prompt": [
                    config.prompt_template.format(subj=r["subj"], obj=r["obj"], choices=choice_text) for r in rows
                ],
                "answer": [r["relationship"] for r in rows],
                "split": [r["split"] for r in rows],
                "answer_type": ["choice"] * len(rows),
                "choices": [choices] * len(rows),
                "answer_index": [choices.index(r["relationship"]) for r in rows],
                "relation": [r["relationship"] for r in rows],
                "subj": [r["subj"] for r in rows],
                "obj": [r["obj"] for r in rows],
            },
            schema_overrides={"choices": pl.List(pl.String), "answer_index": pl.Int64},
        )

    seed = config.seed if config.balance else None
    return write_import(out, config, report, build, sources=sources, seed=seed, images=str(images))
