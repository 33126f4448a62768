"""Write this study's sample in the released ``queries.json`` format, from vlmscope's relations generator.

Run once (``python make_samples.py`` here); the files it writes are committed
and are what the pipeline imports by default: ``queries.json`` (a JSON list
of ``{"image_id", "image_filename", "questions": [{"query_type", "query",
"ground_truth", "ground_truth_masked"}]}`` with the options inline in
``query`` and answers as letters like ``"b)"``, or ``"None"`` when no option
is right), the images in ``images/`` and their masked copies under the same
names in ``masked/images/``.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import polars as pl

from vlmscope.data.generators.base import generate_dataset

HERE = Path(__file__).resolve().parent
NONE_OPTION = "none of these"
"""The generator's catch-all option; the released prompts have none and answer "None" instead."""


def _query(prompt: str, choices: list[str]) -> tuple[str, list[str]]:
    question = prompt.split("\n")[0]
    kept = [c for c in choices if c != NONE_OPTION]
    options = " ".join(f"{chr(ord('a') + i)}) {c}" for i, c in enumerate(kept))
    return f"{question} Here are your options: {options} Please only reply with the correct option.", kept


def _truth(row: dict, kept: list[str]) -> str:
    text = row["choices"][row["answer_index"]]
    return "None" if text == NONE_OPTION else f"{chr(ord('a') + kept.index(text))})"


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "r"
        generate_dataset("relations", src, n=3, seed=11)
        rows = pl.read_parquet(src / "manifest.parquet").to_dicts()
        masked = {r["source_id"]: r for r in rows if r["variant"] == "masked"}
        records: dict[str, dict] = {}
        for r in rows:
            if r["variant"] != "original":
                continue
            image_id = int(r["image_id"].rsplit("-", 1)[1])
            filename = f"image_{image_id}.png"
            if filename not in records:
                for variant, folder in (("original", "images"), ("masked", "masked/images")):
                    (HERE / folder).mkdir(parents=True, exist_ok=True)
                    image = r["image"] if variant == "original" else masked[r["source_id"]]["image"]
                    shutil.copyfile(src / image, HERE / folder / filename)
                records[filename] = {"image_id": image_id, "image_filename": filename, "questions": []}
            query, kept = _query(r["prompt"], r["choices"])
            records[filename]["questions"].append({
                "query_type": r["query_type"],
                "query": query,
                "ground_truth": _truth(r, kept),
                "ground_truth_masked": _truth(masked[r["source_id"]], kept),
            })
        (HERE / "queries.json").write_text(json.dumps(list(records.values()), indent=1) + "\n")


if __name__ == "__main__":
    main()
