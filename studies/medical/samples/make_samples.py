"""Write the medical study's sample files (run once from this folder; the outputs are committed).

``knee/``: the Mendeley knee X-ray layout, ``<split>/<KL grade>/<image>.png``
with splits ``train``, ``val``, ``test`` and grade folders ``0`` .. ``4``
(what the ``class-folders`` importer reads for the CLIP arm).
``train.json``: LLaVA-Med style conversation records about the training images (``{"id", "image": "<split>/<grade>/<file>", "conversations":
[human "<image>\\n<question>", gpt "Grade N"]}``), what the ``llava``
importer reads to train the LoRA and tower-swap arms (every arm is scored
on the grade folders' test split).

The images are 48 px grey "X-rays": two bones whose joint gap narrows with
the grade, so a tiny model has something to learn.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

SIZE = 48
GRADES = range(5)
PER_SPLIT = {"train": 3, "val": 1, "test": 2}
QUESTION = "What is the KL grade of this knee X-ray? Answer with 'Grade N'."


def xray(grade: int, rng: np.random.Generator) -> Image.Image:
    noise = rng.normal(30, 8, size=(SIZE, SIZE)).clip(0, 255).astype(np.uint8)
    img = Image.fromarray(noise, mode="L")
    draw = ImageDraw.Draw(img)
    gap = 12 - 2 * grade + int(rng.integers(-1, 2))  # joint space narrows with KL grade
    mid = SIZE // 2 + int(rng.integers(-3, 4))
    draw.rectangle([12, 0, 36, mid - gap // 2], fill=200)  # femur
    draw.rectangle([10, mid + gap // 2, 38, SIZE], fill=190)  # tibia
    return img


def main() -> None:
    rng = np.random.default_rng(1)
    records: dict[str, list[dict]] = {"train": []}
    image_id = 9001
    for split, n in PER_SPLIT.items():
        for grade in GRADES:
            folder = Path("knee") / split / str(grade)
            folder.mkdir(parents=True, exist_ok=True)
            for _ in range(n):
                name = f"{image_id}.png"
                xray(grade, rng).save(folder / name, optimize=True)
                if split in records:
                    records[split].append({
                        "id": str(image_id), "image": f"{split}/{grade}/{name}",
                        "conversations": [{"from": "human", "value": f"<image>\n{QUESTION}"},
                                          {"from": "gpt", "value": f"Grade {grade}"}],
                    })  # fmt: skip
                image_id += 1
    for split, recs in records.items():
        Path(f"{split}.json").write_text(json.dumps(recs, indent=1) + "\n")


if __name__ == "__main__":
    main()
