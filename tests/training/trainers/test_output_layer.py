"""Output-layer fine-tuning on a store with a planted mapping error (no model forward pass)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr
from safetensors.torch import load_file

from vlmscope.activations.store import write_activations
from vlmscope.errors import StoreError, TrainingError
from vlmscope.models import load_model
from vlmscope.models.weights import read_tensors
from vlmscope.training.trainers.head_math import fit_head
from vlmscope.training.trainers.output_layer import (
    OutputLayerTrainConfig,
    load_head,
    train_output_layer,
)

COUNTS = [str(k) for k in range(1, 10)]
PLANTED = "3"


def _store(path: Path, model: Path, *, n_per: int = 24, seed: int = 0, layers: int | None = None,
           answers: list[str] | None = None) -> Path:  # fmt: skip
    """Last-layer states that the model's own head reads correctly, except for count 3.

    Count k's states point along the unembedding row of k's token (plus noise),
    so the frozen head answers k; count 3's states point along a random
    direction the head maps elsewhere: the mapping error to repair.
    """
    head = load_head(model)
    W = head.unembedding.float()
    rng = np.random.default_rng(seed)
    D = W.shape[1]
    planted = torch.from_numpy(np.random.default_rng(123).standard_normal(D)).float()
    rows, ans, split = [], [], []
    labels = answers or [k for k in COUNTS for _ in range(n_per)]
    for i, k in enumerate(labels):
        tok = int(head.first_tokens([k], ["x"], "t")[0]) if k.strip() else 0
        d = planted if k == PLANTED else W[tok]
        d = d / d.norm()
        rows.append((d * 4.0 + 0.15 * torch.from_numpy(rng.standard_normal(D)).float()).numpy())
        ans.append(k)
        split.append("test" if i % 4 == 0 else "train")
    n_layers = head.num_layers if layers is None else layers
    hidden = np.stack([np.stack(rows)] * (n_layers + 1), axis=1).astype(np.float32)  # (N, L+1, D)
    ds = xr.Dataset(
        {"hidden": (("sample", "layer", "dim"), hidden)},
        coords={"sample": [f"s{i}" for i in range(len(ans))], "layer": np.arange(n_layers + 1),
                "answer": ("sample", np.array(ans, dtype=object)), "split": ("sample", np.array(split, dtype=object))},
        attrs={"model": str(model), "family": "composite"},
    )  # fmt: skip
    return write_activations(path, ds)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, composite: Path) -> Path:
    return _store(tmp_path_factory.mktemp("ol") / "s.zarr", composite)


def test_training_repairs_the_planted_mapping(store: Path, composite: Path, tmp_path: Path) -> None:
    # lr 5e-3: every planted test sample repaired for 2 tiny checkpoints x 3 store seeds (at 2e-3,
    # 2 of 6 combinations stopped at 0.93-0.94: the best-on-validation epoch came before the rest)
    cfg = OutputLayerTrainConfig(epochs=15, lr=5e-3, kl_lambda=0.2, seed=0)
    m = train_output_layer(store, composite, tmp_path / "out", cfg)
    assert m["test_accuracy_before"] == pytest.approx(8 / 9, abs=0.02)  # all but the planted count
    assert m["test_accuracy_after"] > m["test_accuracy_before"] + 0.08
    assert m["n_valid"] > 0 and m["best_epoch"] >= 1
    saved = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert saved["test_accuracy_after"] == m["test_accuracy_after"]
    head = load_file(str(tmp_path / "out" / "head.safetensors"))
    (name,) = head
    assert name == load_head(composite).unembedding_name


def test_answer_rows_mode_touches_only_answer_rows(store: Path, composite: Path, tmp_path: Path) -> None:
    cfg = OutputLayerTrainConfig(epochs=15, lr=2e-3, rows="answer-tokens", save_model=True)
    m = train_output_layer(store, composite, tmp_path / "out", cfg)
    assert m["trained_rows"] == 9 and m["test_accuracy_after"] > m["test_accuracy_before"]
    base = load_head(composite)
    new = load_file(str(tmp_path / "out" / "head.safetensors"))[base.unembedding_name]
    changed = (new != base.unembedding).any(1).nonzero().flatten().tolist()
    answer_rows = set(base.first_tokens(COUNTS, COUNTS, "t").tolist())
    assert len(answer_rows) == 9
    assert changed and set(changed) <= set(answer_rows)
    # --save-model folds the head into a full checkpoint that loads and carries the new head
    full = tmp_path / "out" / "model"
    assert load_model(full).family == "composite"
    assert torch.equal(read_tensors(full, [base.unembedding_name])[base.unembedding_name], new)


def test_fit_head_keeps_the_original_when_validation_never_improves() -> None:
    torch.manual_seed(0)
    W0 = torch.randn(20, 8)
    z = torch.randn(40, 8)
    y = (z @ W0.T).argmax(-1)  # the original head is already perfect
    fit = fit_head(z, y, z, y, W0, epochs=3, lr=1e-2, weight_decay=0.0, batch_size=8, kl_lambda=0.0, seed=0)
    assert fit.best_epoch == 0 and torch.equal(fit.W, W0)


def test_store_without_the_last_layer_is_refused(composite: Path, tmp_path: Path) -> None:
    short = _store(tmp_path / "short.zarr", composite, layers=2, n_per=2)
    with pytest.raises(StoreError, match="layer 4 .* is not stored"):
        train_output_layer(short, composite, tmp_path / "o", OutputLayerTrainConfig(epochs=1))


def test_empty_answer_is_refused(composite: Path, tmp_path: Path) -> None:
    bad = _store(tmp_path / "bad.zarr", composite, answers=["1", "2", " ", "4"])
    with pytest.raises(TrainingError, match="tokenizes to nothing"):
        train_output_layer(bad, composite, tmp_path / "o", OutputLayerTrainConfig(epochs=1))


def _reference_rows_fit(z, y, zv, yv, W0, rows, *, epochs, lr, kl_lambda, seed, batch_size=8):  # type: ignore[no-untyped-def]
    """The obvious O(V) implementation of row-restricted training, to check the fast path against."""
    gen = torch.Generator().manual_seed(seed)
    P = torch.nn.Parameter(W0[rows].clone())
    opt = torch.optim.AdamW([P], lr=lr, weight_decay=0.01)
    for _ in range(epochs):
        perm = torch.randperm(len(y), generator=gen)
        for i in range(0, len(y), batch_size):
            idx = perm[i : i + batch_size]
            out = (z[idx] @ W0.T).index_copy(1, rows, z[idx] @ P.T)
            loss = torch.nn.functional.cross_entropy(out, y[idx])
            ref = torch.log_softmax(z[idx] @ W0.T, -1)
            kl = torch.nn.functional.kl_div(torch.log_softmax(out, -1), ref, log_target=True, reduction="batchmean")
            opt.zero_grad()
            (loss + kl_lambda * kl).backward()
            opt.step()
    W = W0.clone()
    W[rows] = P.detach()
    return W


def test_row_restricted_fast_path_equals_the_full_computation() -> None:
    torch.manual_seed(1)
    V, D, N = 300, 16, 64
    W0 = torch.randn(V, D) * 0.3
    rows = torch.tensor([5, 17, 42, 99])
    z = torch.randn(N, D)
    y = rows[torch.randint(0, 4, (N,))]
    fit = fit_head(z, y, z[:8], y[:8], W0, epochs=3, lr=5e-2, weight_decay=0.01, batch_size=8,
                   kl_lambda=0.3, seed=2, rows=rows)  # fmt: skip
    ref = _reference_rows_fit(z, y, z[:8], y[:8], W0, rows, epochs=3, lr=5e-2, kl_lambda=0.3, seed=2)
    assert fit.final_W is not None
    torch.testing.assert_close(fit.final_W, ref, rtol=1e-4, atol=1e-5)
    assert not torch.equal(fit.final_W, W0)
