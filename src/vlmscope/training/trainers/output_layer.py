"""``vlmscope train output-layer``: fine-tune the unembedding on cached last-layer states.

The counting study's cheap fix (STUDIES.md C): the last layer already
encodes the count (probes reach ~.99) but the head maps it to the wrong
token. This trainer reads only (a) the store's last-layer, last-prompt-token
states, (b) the model's final norm and unembedding tensors from its
safetensors (by name, never instantiating the model) and (c) the tokenizer,
then runs :func:`vlmscope.training.trainers.head_math.fit_head`.

Outputs in ``out/``: ``head.safetensors`` (the new unembedding under the
checkpoint's own tensor name, so ``vlmscope merge --tensors`` folds it into a
full checkpoint), ``metrics.json`` (accuracy before/after per split),
``history.csv`` (per epoch), ``training_args.json``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import polars as pl
import torch
from pydantic import BaseModel, ConfigDict, Field

from vlmscope import __version__
from vlmscope.errors import StoreError, TrainingError
from vlmscope.io.atomic import atomic_dir
from vlmscope.io.jsonfile import write_json
from vlmscope.io.outguard import check_out
from vlmscope.io.store import require_variable
from vlmscope.models.weights import replace_tensors
from vlmscope.training.trainers.head_math import fit_head, head_accuracy

__all__ = ["HeadTensors", "OutputLayerTrainConfig", "load_head", "train_output_layer"]


class OutputLayerTrainConfig(BaseModel):
    """Knobs of the output-layer fine-tuning (defaults: the counting study's)."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    epochs: int = Field(default=50, ge=1, le=100_000)
    max_steps: int | None = Field(default=None, ge=1)
    """Stop after this many optimizer steps in total (across epochs)."""
    lr: float = Field(default=1e-4, gt=0, le=10)
    weight_decay: float = Field(default=0.01, ge=0, le=1)
    batch_size: int = Field(default=32, ge=1, le=1_000_000)
    kl_lambda: float = Field(default=0.2, ge=0, le=1000)
    """Weight of KL(frozen head || new head); 0 turns it off."""
    rows: Literal["all", "answer-tokens"] = "all"
    """``answer-tokens``: train only the rows of the training answers' first tokens."""
    train_split: tuple[str, ...] = ("train",)
    valid_split: tuple[str, ...] = ("valid",)
    """Validation rows pick the best epoch; when the store has none, ``valid_fraction`` of train is held out."""
    test_split: tuple[str, ...] = ("test",)
    eval_split: tuple[str, ...] | None = None
    """Rows of each ``--eval-store`` to score (None: all rows)."""
    valid_fraction: float = Field(default=0.1, gt=0, lt=1)
    layer: int | None = Field(default=None, ge=0)
    """Store layer to read (None: the LM's last, ``num_hidden_layers``)."""
    seed: int = Field(default=0, ge=0)
    save_model: bool = False
    """Also write ``out/model/``: the full checkpoint with the new head folded in."""


@dataclass
class HeadTensors:
    """The model's final norm and unembedding, read by name through the lens's reader (no weights loaded)."""

    lens: Any
    """The :class:`vlmscope.lens.weights.LensModel` of the checkpoint."""
    unembedding: torch.Tensor
    """(V, D) float32"""
    unembedding_name: str
    num_layers: int
    answers: Any
    """:class:`vlmscope.lens.tokens.AnswerTokenizer`: the family's own answer tokenization."""

    def normalize(self, h: torch.Tensor) -> torch.Tensor:
        """(N, D) residual states -> what the LM head sees (the lens's ``apply_final_norm``)."""
        from vlmscope.lens.projection import apply_final_norm

        return apply_final_norm(h, self.lens.final_norm())

    def first_tokens(self, answers: Sequence[str], sample_ids: Sequence[str], where: object) -> torch.Tensor:
        """(N,) each answer's first token as the model emits it after its generation prefix."""
        from vlmscope.errors import DatasetError

        try:
            ids = self.answers.first_tokens(list(answers), None, list(sample_ids), column="answer")
        except DatasetError as e:
            raise TrainingError(f"{where}: {e} (its answer tokenizes to nothing)") from e
        return torch.from_numpy(np.asarray(ids, dtype=np.int64))


def load_head(model: str | os.PathLike[str], *, revision: str | None = None) -> HeadTensors:
    """Final norm + unembedding of a checkpoint, through :func:`vlmscope.lens.weights.open_lens_model`.

    ``revision`` picks the snapshot of a cached hub id (a pin's own revision otherwise applies).
    """
    from vlmscope.errors import ModelError
    from vlmscope.lens.tokens import AnswerTokenizer
    from vlmscope.lens.weights import open_lens_model

    try:
        lens = open_lens_model(model, revision=revision)
    except ModelError as e:
        raise TrainingError(f"output-layer training needs a generative VLM: {e}") from e
    return HeadTensors(
        lens=lens, unembedding=lens.unembedding(), unembedding_name=lens.names.unembedding_weight,
        num_layers=lens.num_layers, answers=AnswerTokenizer(lens),
    )


@dataclass
class _Rows:
    z: torch.Tensor  # (N, D) final-normed
    y: torch.Tensor  # (N,)
    split: np.ndarray  # (N,) object
    sample: np.ndarray


def _read_store(store: str | os.PathLike[str], head: HeadTensors, layer: int | None,
                dataset: str | os.PathLike[str] | None) -> _Rows:  # fmt: skip
    from vlmscope.activations.store import open_activations

    ds = open_activations(store)
    require_variable(ds, "hidden", path=store)
    want = head.num_layers if layer is None else layer
    layers = [int(x) for x in ds["layer"].values.tolist()]
    if want not in layers:
        raise StoreError(
            f"{store}: layer {want} (the LM's last) is not stored (layers {layers[0]}..{layers[-1]}: {layers}); "
            f"re-extract with --layers including {want}"
        )
    h = torch.from_numpy(np.asarray(ds["hidden"].sel(layer=want).values, dtype=np.float32))  # (N, D)
    if h.shape[1] != head.unembedding.shape[1]:
        raise StoreError(
            f"{store}: hidden size {h.shape[1]} vs the model's {head.unembedding.shape[1]}; "
            "the store was extracted from another model"
        )
    samples = np.asarray(ds["sample"].values).astype(str)
    if "answer" in ds.coords and "split" in ds.coords:
        answers = np.asarray(ds["answer"].values).astype(str)
        splits = np.asarray(ds["split"].values).astype(str)
    elif dataset is not None:
        from vlmscope.data.manifest import read_manifest

        man = read_manifest(dataset).select("sample_id", "answer", "split")
        joined = pl.DataFrame({"sample_id": samples}).join(man, on="sample_id", how="left", maintain_order="left")
        if joined["answer"].null_count():
            missing = joined.filter(pl.col("answer").is_null())["sample_id"].head(3).to_list()
            raise StoreError(f"{store}: samples {missing} are not in {dataset}'s manifest")
        answers, splits = joined["answer"].to_numpy().astype(str), joined["split"].to_numpy().astype(str)
    else:
        raise StoreError(f"{store}: no 'answer'/'split' coordinates; pass --dataset with the manifest it came from")
    finite = torch.isfinite(h).all(1)
    if not bool(finite.all()):
        raise StoreError(f"{store}: {int((~finite).sum())} rows of layer {want} are not finite")
    y = head.first_tokens(answers.tolist(), samples.tolist(), store)
    return _Rows(head.normalize(h), y, splits, samples)


def _select(rows: _Rows, splits: Sequence[str] | None) -> tuple[torch.Tensor, torch.Tensor]:
    if splits is None:
        return rows.z, rows.y
    m = torch.from_numpy(np.isin(rows.split, list(splits)))
    return rows.z[m], rows.y[m]


def train_output_layer(
    store: str | os.PathLike[str],
    model: str | os.PathLike[str],
    out: str | os.PathLike[str],
    cfg: OutputLayerTrainConfig = OutputLayerTrainConfig(),
    *,
    eval_stores: Sequence[str | os.PathLike[str]] = (),
    dataset: str | os.PathLike[str] | None = None,
    revision: str | None = None,
) -> dict[str, Any]:
    """Fine-tune ``model``'s head on ``store``'s last-layer states; returns the metrics written.

    ``revision``: hub revision of ``model`` when it is a cached hub id (recorded in ``training_args.json``).
    """
    check_out(out, "output-layer", [store, model, *eval_stores, dataset])
    head = load_head(model, revision=revision)
    rows = _read_store(store, head, cfg.layer, dataset)
    z_tr, y_tr = _select(rows, cfg.train_split)
    if len(y_tr) == 0:
        raise TrainingError(f"{store}: no rows in train split(s) {list(cfg.train_split)} (have {sorted(set(rows.split))})")
    z_va, y_va = _select(rows, cfg.valid_split)
    valid_from = "split"
    if len(y_va) == 0:  # hold out a seeded fraction of train
        perm = torch.randperm(len(y_tr), generator=torch.Generator().manual_seed(cfg.seed))
        n_va = max(1, int(round(cfg.valid_fraction * len(y_tr))))
        va, tr = perm[:n_va], perm[n_va:]
        z_va, y_va, z_tr, y_tr = z_tr[va], y_tr[va], z_tr[tr], y_tr[tr]
        valid_from = f"{cfg.valid_fraction:g} of train"
    W0 = head.unembedding.float()
    train_rows = torch.unique(y_tr) if cfg.rows == "answer-tokens" else None
    epochs = cfg.epochs
    fit = fit_head(
        z_tr, y_tr, z_va, y_va, W0, epochs=epochs, lr=cfg.lr, weight_decay=cfg.weight_decay,
        batch_size=cfg.batch_size, kl_lambda=cfg.kl_lambda, seed=cfg.seed, rows=train_rows, max_steps=cfg.max_steps,
    )
    metrics: dict[str, Any] = {
        "n_train": len(y_tr), "n_valid": len(y_va), "best_epoch": fit.best_epoch, "epochs": len(fit.history),
        "trained_rows": len(train_rows) if train_rows is not None else int(W0.shape[0]),
    }
    sets = {"train": (z_tr, y_tr), "valid": (z_va, y_va), "test": _select(rows, cfg.test_split)}
    for i, es in enumerate(eval_stores):
        er = _read_store(es, head, cfg.layer, None)
        sets[f"eval{i}" if len(eval_stores) > 1 else "eval"] = _select(er, cfg.eval_split)
    for name, (z, y) in sets.items():
        if len(y) == 0:
            continue
        metrics[f"{name}_n"] = len(y)
        metrics[f"{name}_accuracy_before"] = head_accuracy(z, y, W0)
        metrics[f"{name}_accuracy_after"] = head_accuracy(z, y, fit.W)
    args = {
        "trainer": "output-layer", "config": cfg.model_dump(mode="json"), "store": str(store), "model": str(model),
        "eval_stores": [str(e) for e in eval_stores], "dataset": None if dataset is None else str(dataset),
        "valid_from": valid_from, "tensor": head.unembedding_name, "vlmscope_version": __version__,
    }
    if head.lens.revision is not None:
        args["revision"] = head.lens.revision
    from safetensors.torch import save_file

    with atomic_dir(out, kind="output-layer", inputs=[store, model, *eval_stores, dataset]) as tmp:
        new_head = fit.W.float().contiguous()  # merge casts to the checkpoint's dtype
        save_file({head.unembedding_name: new_head}, str(tmp / "head.safetensors"))
        write_json(tmp / "metrics.json", metrics)
        write_json(tmp / "training_args.json", args)
        if fit.history:
            pl.DataFrame(fit.history).write_csv(tmp / "history.csv")
        if cfg.save_model:
            replace_tensors(head.lens.directory, tmp / "model", {head.unembedding_name: new_head})
    return metrics

