"""Fixtures for the lens tests: a tiny model, a real extracted store, and the model's own outputs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

N_REF = 3
"""Samples whose next-token logits are computed by the model itself (the reference)."""


@dataclass
class Setup:
    """A tiny checkpoint, its loaded adapter, a dataset, a real store of it, and reference outputs."""

    family: str
    model_dir: Path
    adapter: Any
    dataset: Path
    store: Path
    manifest: Any
    ref_logits: torch.Tensor
    """(N_REF, V) the model's own logits at the last prompt token of the first N_REF samples."""
    ref_first_answer_token: list[int]
    """Label of the first answer token after each prompt, from ``adapter.encode(..., answers=...)``."""


def _images(dataset: Path, df: Any, rows: range) -> list[Any]:
    from PIL import Image

    out = []
    for r in rows:
        with Image.open(dataset / df["image"][r]) as im:
            out.append(im.convert("RGB"))
    return out


def build_setup(family: str, model_dir: Path, dataset: Path, store: Path) -> Setup:
    """Load the model, extract ``dataset`` (float32, with ``mlp``) and compute the reference logits."""
    from vlmscope.activations.extract import ExtractConfig, extract
    from vlmscope.data.manifest import read_manifest
    from vlmscope.models import load_model

    adapter = load_model(model_dir)
    extract(ExtractConfig(mlp=True, dtype="float32", batch_size=8), model_dir, dataset, store, adapter=adapter)
    df = read_manifest(dataset)
    rows = range(N_REF)
    images = _images(dataset, df, rows)
    prompts = [df["prompt"][r] for r in rows]
    answers = [df["answer"][r] for r in rows]
    enc = adapter.encode(images, prompts)
    with torch.inference_mode():
        logits = adapter.model(**enc.inputs).logits  # (B, T, V)
    ar = torch.arange(len(rows))
    ref = logits[ar, enc.last_index].float()
    with_answers = adapter.encode(images, prompts, answers=answers)
    first = [int(with_answers.labels[b, int(with_answers.last_index[b]) + 1]) for b in range(len(rows))]
    return Setup(family, model_dir, adapter, dataset, store, df, ref, first)


@pytest.fixture(scope="session")
def lens_setup(tiny_checkpoint, tiny_dataset, tmp_path_factory):
    """``lens_setup(family) -> Setup`` (tiny checkpoint family name), cached per session."""
    cache: dict[str, Setup] = {}
    root = tmp_path_factory.mktemp("lens-stores")

    def get(family: str) -> Setup:
        if family not in cache:
            cache[family] = build_setup(
                family, tiny_checkpoint(family), tiny_dataset("spatial", 12), root / f"{family}.zarr"
            )
        return cache[family]

    return get


def read_topk(out: Path, layer: int) -> Any:
    """``topk.parquet`` rows of one layer, ordered by sample and rank."""
    import polars as pl

    return pl.read_parquet(out / "topk.parquet").filter(pl.col("layer") == layer).sort(["sample_id", "rank"])


def probs_matrix(df: Any, n_samples: int) -> tuple[np.ndarray, np.ndarray]:
    """(ids, probs), each (n_samples, K), from a one-layer top-k frame (first n_samples sample ids)."""
    k = int(df["rank"].max())
    ids = df["token_id"].to_numpy().reshape(-1, k)[:n_samples]
    probs = df["prob"].to_numpy().reshape(-1, k)[:n_samples]
    return ids, probs
