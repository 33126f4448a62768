"""Write this study's VRD sample in the released scene-graph format, from vlmscope's spatial generator.

Run once (``python make_samples.py`` here); the files it writes are committed
and are what the pipeline imports by default: ``vrd/sg_test_annotations.json``
(a JSON list of ``{"filename", "objects": [{"names", "bbox"}],
"relationships": [{"objects": [subject, object], "relationship"}]}``) with
the images at ``vrd/sg_test_images/<filename>`` (the Kaggle download's
layout). Each image also carries what the study's filters drop: a depth
relation ("in front of") and a same-family pair ("shape" / "shape 2").
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import polars as pl
from PIL import Image

from vlmscope.data.generators.base import generate_dataset

HERE = Path(__file__).resolve().parent


def _obj(name: str, x: int, y: int, r: int) -> dict:
    return {"names": [name], "bbox": {"x": x - r, "y": y - r, "w": 2 * r, "h": 2 * r}}


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        generate_dataset("spatial", Path(tmp) / "s", n=24, seed=5, canvas=224, size_min=10, size_max=20, margin=30, min_gap=40, max_misalign=15)
        rows = pl.read_parquet(Path(tmp) / "s" / "manifest.parquet").to_dicts()
        images = HERE / "vrd" / "sg_test_images"
        images.mkdir(parents=True, exist_ok=True)
        records = []
        for i, r in enumerate(rows):
            filename = f"{1000 + i}.jpg"
            Image.open(Path(tmp) / "s" / r["image"]).convert("RGB").save(images / filename, quality=90)
            subj = f"{r['subject_color']} {r['subject_shape']}"
            ref = f"{r['reference_color']} {r['reference_shape']}"
            objects = [
                _obj(subj, r["subject_x"], r["subject_y"], r["subject_size"]),
                _obj(ref, r["reference_x"], r["reference_y"], r["reference_size"]),
                _obj("shape", 10, 10, 4),
                _obj("shape 2", 30, 10, 4),
            ]
            records.append({
                "filename": filename,
                "objects": objects,
                "relationships": [
                    {"objects": [0, 1], "relationship": r["relation"].replace("_", " ")},
                    {"objects": [1, 0], "relationship": "in front of"},
                    {"objects": [2, 3], "relationship": "left of"},
                ],
            })
        (HERE / "vrd" / "sg_test_annotations.json").write_text(json.dumps(records, indent=1) + "\n")


if __name__ == "__main__":
    main()
