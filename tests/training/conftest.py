"""Fixtures of the training tests: one thread for tiny models, small datasets, a bbox dataset."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import polars as pl
import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """Tiny models train several times faster on one thread (and tests share 2 cores)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def composite(tiny_checkpoint: Callable[[str], Path]) -> Path:
    return tiny_checkpoint("composite")


@pytest.fixture(scope="session")
def color_ds(tiny_dataset: Callable[..., Path]) -> Path:
    return tiny_dataset("color", 16)


@pytest.fixture(scope="session")
def bbox_ds(tmp_path_factory: pytest.TempPathFactory, color_ds: Path) -> Path:
    """VG-style rows: ``"[x0, y0, x1, y1] classname"`` answers over the colour set's images (6 classes)."""
    from vlmscope.data.manifest import read_manifest, write_dataset

    src = read_manifest(color_ds)
    classes = ["dog", "cat", "tree", "car", "bird", "boat"]

    def build(tmp: Path) -> pl.DataFrame:
        rows = []
        for i, r in enumerate(src.iter_rows(named=True)):
            img = (color_ds / r["image"]).read_bytes()
            (tmp / "images" / f"{i}.png").write_bytes(img)
            rows.append({
                "sample_id": f"vg{i}", "image": f"images/{i}.png", "prompt": "What is the object in the box?",
                "answer": f"[0.{i % 9}, 0.1, 0.5, 0.{(i % 5) + 5}] {classes[i % len(classes)]}",
                "split": "train" if i < 12 else "test", "answer_type": "open", "cls": classes[i % len(classes)],
            })  # fmt: skip
        return pl.DataFrame(rows)

    out = tmp_path_factory.mktemp("bbox") / "vg"
    write_dataset(out, generator="test-bbox", params={}, seed=0, build=build)
    return out
