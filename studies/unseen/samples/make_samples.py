"""Write the unseen-class study's sample files (run once from this folder; the outputs are committed).

Visual Genome style, in the released LLaVA conversation format: every record
is ``{"id", "image", "synset", "conversations": [human "<image>", gpt "[box] classname"]}``
(train_seen.json for training; test_seen_mcqa.json / test_unseen_mcqa.json
for evaluation, the unseen file holding classes train never shows). The
images are 48 px JPEGs under ``VG_100K/``: a coloured box per class, where
the answer's box says, so a model can learn something in a few steps.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

SEEN = {"cat": (200, 60, 40), "dog": (40, 160, 60), "car": (40, 70, 200), "tree": (20, 120, 20),
        "horse": (140, 90, 40), "bus": (230, 200, 30)}  # fmt: skip
UNSEEN = {"zebra": (90, 90, 90), "boat": (30, 180, 200), "lamp": (250, 240, 180), "chair": (120, 40, 140),
          "kite": (240, 100, 180), "bench": (100, 60, 20)}  # fmt: skip
SIZE = 48


def record(image_id: int, name: str, color: tuple[int, int, int], rng: np.random.Generator) -> dict:
    x0, y0 = (float(v) for v in rng.uniform(0.05, 0.45, size=2).round(2))
    x1, y1 = round(x0 + float(rng.uniform(0.3, 0.5)), 2), round(y0 + float(rng.uniform(0.3, 0.5)), 2)
    img = Image.new("RGB", (SIZE, SIZE), tuple(int(c) for c in rng.integers(0, 60, size=3)))
    ImageDraw.Draw(img).rectangle([x0 * SIZE, y0 * SIZE, x1 * SIZE, y1 * SIZE], fill=color)
    rel = f"VG_100K/{image_id}.jpg"
    img.save(Path("images") / rel, quality=85)
    box = f"[{x0:.2f}, {y0:.2f}, {x1:.2f}, {y1:.2f}]"
    return {"id": f"{image_id}_0", "image": rel, "synset": f"{name}.n.01",
            "conversations": [{"from": "human", "value": "<image>"}, {"from": "gpt", "value": f"{box} {name}"}]}  # fmt: skip


def main() -> None:
    rng = np.random.default_rng(0)
    (Path("images") / "VG_100K").mkdir(parents=True, exist_ok=True)
    next_id = iter(range(2_370_001, 2_380_000))
    files = {
        "train_seen.json": [record(next(next_id), n, c, rng) for _ in range(2) for n, c in SEEN.items()],
        "test_seen_mcqa.json": [record(next(next_id), n, c, rng) for n, c in SEEN.items()],
        "test_unseen_mcqa.json": [record(next(next_id), n, c, rng) for n, c in UNSEEN.items()],
    }
    for name, records in files.items():
        Path(name).write_text(json.dumps(records, indent=1) + "\n")


if __name__ == "__main__":
    main()
