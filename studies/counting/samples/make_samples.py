"""Write this study's sample files, in the released formats, from vlmscope's counting generator.

Run once (``python make_samples.py`` here); the files it writes are committed
and are what the pipeline imports by default. They stand in for the real
releases, byte-for-byte in their layout:

- ``balanced/`` and ``unseen_combinations/``: the counting study's synthetic
  sets (``questions.json`` + ``answers.json`` + ``images/``; the unseen set
  with ``train_ids.json`` / ``valid_ids.json``). ``balanced`` uses the nested
  form the study's own loader reads (``{image_id: {kind: {entity: question}}}``),
  ``unseen_combinations`` the flat one (``{image_id: {entity: {kind: question}}}``).
- ``pixmo/``: balanced Pixmo-Count as released (``<split>/samples.json``,
  points as ``{"x": [...], "y": [...]}``, images at ``<split>/images/<n>.jpg``
  restarting at ``0.jpg`` in every split).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from pathlib import Path

import polars as pl
from PIL import Image

from vlmscope.data.generators.base import generate_dataset

HERE = Path(__file__).resolve().parent
COUNTS = (1, 2, 3)  # few classes, so a dozen rows still give a 3-fold stratified probe
QUESTION = "How many {what} are there? Choose from [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]."


def _dump(path: Path, data: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1) + "\n")


def _rows(tmp: Path, name: str, n: int, seed: int, **params: object) -> tuple[Path, list[dict]]:
    out = tmp / name
    generate_dataset("counting", out, n=n, seed=seed, cell_size=16, counts=COUNTS, **params)
    return out, pl.read_parquet(out / "manifest.parquet").to_dicts()


def counting_set(tmp: Path, name: str, seed: int, *, nested: bool, **params: object) -> None:
    src, rows = _rows(tmp, name, 12, seed, **params)
    dst = HERE / name
    questions, answers = {}, {}
    for i, r in enumerate(rows):
        image_id = str(i)
        entity = f"{r['entity_type']}s"
        q = QUESTION.format(what=entity.replace("_", " "))
        questions[image_id] = {"count_closed": {entity: q}} if nested else {entity: {"count_closed": q}}
        answers[image_id] = {"count_closed": {entity: r["count"]}} if nested else {entity: r["count"]}
        (dst / "images").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src / r["image"], dst / "images" / f"{image_id}.png")
    _dump(dst / "questions.json", questions)
    _dump(dst / "answers.json", answers)
    if not nested:
        _dump(dst / "train_ids.json", [str(i) for i in range(8)])
        _dump(dst / "valid_ids.json", [str(i) for i in range(8, 12)])


def pixmo(tmp: Path) -> None:
    src, rows = _rows(tmp, "pixmo-src", 12, 7)
    for split, part in (("train", rows[:4]), ("valid", rows[4:8]), ("test", rows[8:])):
        samples = []
        for k, r in enumerate(part):
            image = HERE / "pixmo" / split / "images" / f"{k}.jpg"
            image.parent.mkdir(parents=True, exist_ok=True)
            Image.open(src / r["image"]).convert("RGB").save(image, quality=90)
            cells = json.loads(r["entities"])
            targets = [c for c in cells if c["role"] == "target"]
            samples.append({
                "image_url": f"https://example.org/pixmo/{split}/{k}.jpg",
                "image_sha256": hashlib.sha256(image.read_bytes()).hexdigest(),
                "count": r["count"],
                "points": {"x": [16.0 * c["col"] + 8 for c in targets], "y": [16.0 * c["row"] + 8 for c in targets]},
                "label": r["entity_type"].replace("_", " ") + "s",
                "image_path": f"{k}.jpg",
            })
        _dump(HERE / "pixmo" / split / "samples.json", samples)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        counting_set(Path(tmp), "balanced", 1, nested=True)
        counting_set(Path(tmp), "unseen_combinations", 2, nested=False, variant="unseen-combinations")
        pixmo(Path(tmp))


if __name__ == "__main__":
    main()
