"""``vlmscope train output-layer``: fine-tune the unembedding on cached last-layer states.

The counting study's cheap fix (STUDIES.md C): the last layer already
encodes the count (probes reach ~.99) but the head maps it to the wrong
token. This trainer reads only (a) the store's last-layer, last-prompt-token
states, (b) the model's final norm and unembedding tensors from its
safetensors (by name, never instantiating the model) and (c) the tokenizer,
then runs :func:`vlmscope.training.head_math.fit_head`.

Outputs in ``out/``: ``head.safetensors`` (the new unembedding under the
checkpoint's own tensor name, so ``vlmscope merge --tensors`` folds it into a
full checkpoint), ``metrics.json`` (accuracy before/after per split),
``history.csv`` (per epoch), ``training_args.json``.
"""

from __future__ import annotations

import json
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
from vlmscope.training.head_math import fit_head, head_accuracy, layer_norm, rms_norm
from vlmscope.training.weights import read_tensors, replace_tensors, weight_map

__all__ = ["HeadTensors", "OutputLayerTrainConfig", "answer_first_tokens", "load_head", "train_output_layer"]


class OutputLayerTrainConfig(BaseModel):
    """Knobs of the output-layer fine-tuning (defaults: the counting study's)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

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
    """The model's final norm and unembedding, read from safetensors."""

    norm_weight: torch.Tensor
    norm_bias: torch.Tensor | None
    norm_kind: str
    norm_eps: float
    unembedding: torch.Tensor
    """(V, D)"""
    unembedding_name: str
    num_layers: int
    answer_ids: Any
    """``answer -> token ids`` exactly as the adapter appends answers after the prompt (eos last)."""

    def normalize(self, h: torch.Tensor) -> torch.Tensor:
        """(N, D) residual states -> what the LM head sees."""
        if self.norm_kind == "layer":
            return layer_norm(h, self.norm_weight, self.norm_bias, self.norm_eps)
        return rms_norm(h, self.norm_weight, self.norm_eps, plus_one=self.norm_kind == "rms_plus_one")


def load_head(model: str | os.PathLike[str]) -> HeadTensors:
    """Final norm + unembedding of a local checkpoint, by the family adapter's tensor names."""
    from transformers import AutoConfig

    from vlmscope.models import ADAPTERS, detect_family

    fam = detect_family(model)
    cls: Any = ADAPTERS.get(fam)
    if not hasattr(cls, "tensor_names"):
        raise TrainingError(f"{model}: family {fam!r} has no LM head; output-layer training needs a generative VLM")
    config = AutoConfig.from_pretrained(str(model))
    names = cls.tensor_names(config)
    keys = weight_map(model).keys()

    def find(name: str | None) -> str | None:
        return name if name is not None and name in keys else None

    norm_w, unemb = find(names.final_norm_weight), find(names.unembedding_weight)
    if norm_w is None or unemb is None:
        raise TrainingError(
            f"{model}: tensors {names.final_norm_weight!r} / {names.unembedding_weight!r} not in the checkpoint"
        )
    norm_b = find(names.final_norm_bias)
    got = read_tensors(model, [n for n in (norm_w, unemb, norm_b) if n is not None])
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    return HeadTensors(
        norm_weight=got[norm_w], norm_bias=got.get(norm_b) if norm_b else None, norm_kind=names.norm_kind,
        norm_eps=names.norm_eps, unembedding=got[unemb], unembedding_name=unemb,
        num_layers=int(text.num_hidden_layers), answer_ids=_answer_tokenizer(cls, model),
    )


def _answer_tokenizer(cls: Any, model: str | os.PathLike[str]) -> Any:
    """The family's own ``answer_ids`` on an adapter holding only the processor (no weights loaded)."""
    from vlmscope.models.adapter import LoadOptions
    from vlmscope.models.lm_adapter import load_processor

    processor = load_processor(str(model), LoadOptions())
    light = cls.__new__(cls)
    light.model, light.processor, light.source, light.revision = None, processor, str(model), None
    if not hasattr(light, "answer_ids"):
        raise TrainingError(f"{model}: family {cls.family!r} cannot tokenize answers (no answer_ids)")
    return light.answer_ids


def answer_first_tokens(answer_ids: Any, eos_id: int | None, answers: Sequence[str], ids: Sequence[str]) -> np.ndarray:
    """(N,) id of each answer's first token as the model would emit it after the prompt."""
    out = np.empty(len(answers), dtype=np.int64)
    cache: dict[str, int] = {}
    for i, (a, sid) in enumerate(zip(answers, ids)):
        if a not in cache:
            toks = [t for t in answer_ids(str(a)) if t != eos_id] if str(a).strip() else []
            if not toks:
                raise TrainingError(f"sample {sid!r}: answer {a!r} tokenizes to nothing; fix the manifest row")
            cache[a] = int(toks[0])
        out[i] = cache[a]
    return out


@dataclass
class _Rows:
    z: torch.Tensor  # (N, D) final-normed
    y: torch.Tensor  # (N,)
    split: np.ndarray  # (N,) object
    sample: np.ndarray


def _read_store(store: str | os.PathLike[str], head: HeadTensors, tokenizer: Any, layer: int | None,
                dataset: str | os.PathLike[str] | None) -> _Rows:  # fmt: skip
    from vlmscope.activations.store import open_activations

    ds = open_activations(store)
    if "hidden" not in ds:
        raise StoreError(f"{store}: no 'hidden' variable; extract with the last-token position")
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
    y = torch.from_numpy(answer_first_tokens(head.answer_ids, tokenizer.eos_token_id, answers.tolist(), samples.tolist()))
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
) -> dict[str, Any]:
    """Fine-tune ``model``'s head on ``store``'s last-layer states; returns the metrics written."""
    from transformers import AutoTokenizer

    head = load_head(model)
    tokenizer = AutoTokenizer.from_pretrained(str(model))
    rows = _read_store(store, head, tokenizer, cfg.layer, dataset)
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
        er = _read_store(es, head, tokenizer, cfg.layer, None)
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
    from safetensors.torch import save_file

    with atomic_dir(out) as tmp:
        new_head = fit.W.to(head.unembedding.dtype).contiguous()
        save_file({head.unembedding_name: new_head}, str(tmp / "head.safetensors"))
        (tmp / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
        (tmp / "training_args.json").write_text(json.dumps(args, indent=2, sort_keys=True) + "\n")
        if fit.history:
            pl.DataFrame(fit.history).write_csv(tmp / "history.csv")
        if cfg.save_model:
            replace_tensors(model, tmp / "model", {head.unembedding_name: new_head})
    return metrics

