"""Supervised pre-training of a LLaVA-style vision tower on image-level labels.

Real VLMs are assembled from a vision tower that was pre-trained on its own
(CLIP, ViT-in21k, DINOv2) before any projector or LM training. The embedded
default model starts from random weights, and a tower trained only through
the LM's answer loss learns slowly what the questions need: measured on 2 CPU
cores, the composite trained end to end for 1000 steps answered the 9 x 9
counting questions at .15-.22 (chance .11). A tower step here is a forward
pass of the tower alone (no LM, no text), a fraction of a VLM step's cost,
so the default recipe first trains the tower this way on the training
images' counts, colours and shapes, then the whole model (numbers in
:class:`vlmscope.training.trainers.default_model.DefaultTrainConfig`).

A *head* names a label column of the manifests (``count``, ``shape`` ...)
that is a property of the whole image, and which rows it covers (dataset
directory names or generator kinds, plus a ``where`` filter). Each head is a
linear classifier over the image tokens the LM receives (the projector's
output on the tower's ``vision_feature_layer``, CLS dropped under the
``default`` strategy), pooled over patches, so what it learns arrives in the
LM's input space linearly readable, as LLaVA's first (projector alignment)
stage intends; steps cycle through the heads. The pool is the head's choice.
A shape covers a few of the 80 tokens, and its evidence averaged over all of
them is faint: measured on single large shapes, 400 steps of a shape head
alone reached .27 held-out accuracy through the mean, .73 through mean and max
side by side, and .93 through the max (chance .20). A count is a sum over the
image, which the mean carries. Only the tower's and the projector's weights
change; the heads are thrown away afterwards. A seeded slice of each head's
images is held out and its accuracy reported, so the effect of this stage is
visible in ``metrics.json``.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from vlmscope.errors import ConfigError, TrainingError
from vlmscope.models.adapter import ModelAdapter, VisionFeed
from vlmscope.training.data import Example, ImageCache, row_matches
from vlmscope.training.engine.loop import progress_bar
from vlmscope.training.engine.params import adamw

__all__ = ["PretrainHead", "VisionPretrainConfig", "head_rows", "pooled_patch_features", "pretrain_vision"]


class PretrainHead(BaseModel):
    """One image-level label column to pre-train the tower on."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    column: str = Field(min_length=1)
    """Manifest label column; must have one value per image among the covered rows."""
    datasets: tuple[str, ...] | None = None
    """Dataset directory names (``train-counting``) or generator kinds (``counting``); None: all."""
    where: dict[str, tuple[Any, ...]] = Field(default_factory=dict)
    """Label column -> allowed values (``{"n_shapes": [1]}``), as in the curriculum."""
    optional: bool = False
    """Skip this head (with a warning) when no training row matches, instead of failing."""
    pool: Literal["mean", "max", "mean+max"] = "mean"
    """How the head summarises the image tokens: their mean (a count is a sum over the image),
    their max (a shape shows in the few tokens it covers), or both side by side."""


class VisionPretrainConfig(BaseModel):
    """Knobs of the tower pre-training (defaults: the embedded default model's recipe)."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    heads: tuple[PretrainHead, ...] = Field(min_length=1)
    steps: int = Field(default=800, ge=1, le=1_000_000)
    """Optimizer steps in all; step ``s`` trains head ``s % len(heads)``."""
    batch_size: int = Field(default=32, ge=1, le=65_536)
    lr: float = Field(default=1e-3, gt=0, le=10)
    weight_decay: float = Field(default=0.01, ge=0, le=1)
    holdout: float = Field(default=0.15, ge=0, lt=1)
    """Fraction of each head's images kept out of training to report its accuracy."""
    seed: int = Field(default=0, ge=0)


@dataclass
class _Head:
    name: str
    images: list[Any]
    """Image paths (one per distinct image)."""
    labels: torch.Tensor
    classes: list[Any]
    train: np.ndarray
    held: np.ndarray
    pool: str
    linear: nn.Linear


def head_rows(rows: Sequence[Example], head: PretrainHead) -> tuple[list[Any], list[Any]] | None:
    """(distinct image paths, their label) for ``head``; None when no row matches.

    Raises when a matched row lacks the column or one image carries two
    different values (the column is then not an image-level label).
    """
    by_image: dict[Any, Any] = {}
    first_row: dict[Any, str] = {}
    for r in rows:
        if not row_matches(r, head.datasets, head.where):
            continue
        extra = dict(r.extra)
        if head.column not in extra:
            raise ConfigError(
                f"vision pre-training head {head.column!r}: dataset {r.dataset!r} has no column {head.column!r} "
                f"(sample {r.sample_id!r}); restrict the head's datasets or pick another column"
            )
        value = extra[head.column]
        if value is None:
            raise ConfigError(f"{r.dataset}: sample {r.sample_id!r} has no {head.column!r} value")
        prev = by_image.setdefault(r.image, value)
        if prev != value:
            raise ConfigError(
                f"vision pre-training head {head.column!r}: image {r.image} has two values "
                f"({prev!r} in {first_row[r.image]!r}, {value!r} in {r.sample_id!r}); "
                f"{head.column!r} is not a property of the whole image in {r.dataset!r}"
            )
        first_row.setdefault(r.image, r.sample_id)
    if not by_image:
        return None
    images = sorted(by_image, key=str)
    return images, [by_image[i] for i in images]


def pooled_patch_features(feed: VisionFeed, pixel_values: torch.Tensor, pool: str = "mean") -> torch.Tensor:
    """(B, H), or (B, 2H) for ``mean+max``: the image tokens ``feed`` gives the LM, pooled over patches."""
    hidden = feed.tower(pixel_values=pixel_values, output_hidden_states=True).hidden_states[feed.feature_layer]
    if feed.drop_cls:
        hidden = hidden[:, 1:]
    tokens = feed.projector(hidden)
    if pool == "mean":
        return tokens.mean(1)
    if pool == "max":
        return tokens.amax(1)
    if pool == "mean+max":
        return torch.cat([tokens.mean(1), tokens.amax(1)], dim=-1)
    raise ValueError(f"unknown pool {pool!r}; expected mean, max or mean+max")


def _feed(adapter: ModelAdapter) -> VisionFeed:
    """The adapter's direct tower -> projector path, or a TrainingError naming the family."""
    feed = adapter.vision_feed()
    if feed is None:
        raise TrainingError(
            f"vision pre-training needs a model whose LM reads projector(vision tower layer) directly "
            f"(adapter.vision_feed()); the {adapter.family} family is not one: drop vision_pretrain from the config"
        )
    return feed


def _split(n: int, holdout: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    order = rng.permutation(n)
    n_held = int(round(holdout * n)) if n > 1 else 0
    n_held = min(n_held, n - 1)
    return np.sort(order[n_held:]), np.sort(order[:n_held])


def pretrain_vision(
    adapter: ModelAdapter,
    rows: Sequence[Example],
    cfg: VisionPretrainConfig,
    *,
    images: ImageCache | None = None,
    progress: bool = True,
) -> dict[str, float]:
    """Train ``adapter``'s vision tower on ``cfg.heads``; returns flat metrics (``pretrain/...``).

    Deterministic given ``cfg.seed`` (its own generators; the global RNG is
    untouched). The ``requires_grad`` flags are restored afterwards.
    """
    t0 = time.monotonic()
    model = adapter.model
    feed = _feed(adapter)
    tower, projector = feed.tower, feed.projector
    images = images or ImageCache(keep=False)  # each image is decoded once, into the pixel cache below
    rng = np.random.default_rng(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    hidden = adapter.hidden_size  # the projector maps image tokens into the LM's width
    device = adapter.device
    heads: list[_Head] = []
    for k, spec in enumerate(cfg.heads):
        found = head_rows(rows, spec)
        if found is None:
            msg = f"vision pre-training head {k} ({spec.model_dump()}) matches no training row"
            if not spec.optional:
                raise ConfigError(msg + "; fix its datasets/where or mark it optional")
            warnings.warn(msg + "; skipped", stacklevel=2)
            continue
        paths, values = found
        classes = sorted(set(values), key=lambda v: (str(type(v)), v))
        if len(classes) < 2:
            raise ConfigError(f"vision pre-training head {spec.column!r}: only one value ({classes[0]!r}) in its rows")
        labels = torch.tensor([classes.index(v) for v in values])
        train, held = _split(len(paths), cfg.holdout, rng)
        name = spec.column if spec.datasets is None else f"{'+'.join(spec.datasets)}/{spec.column}"
        width = 2 * hidden if spec.pool == "mean+max" else hidden
        linear = _linear(width, len(classes), gen, device)
        heads.append(_Head(name, paths, labels, classes, train, held, spec.pool, linear))
    if not heads:
        return {}

    pixels = _encode_pixels(adapter, sorted({p for h in heads for p in h.images}, key=str), images)
    params = list(tower.parameters()) + list(projector.parameters())
    flags = {id(p): p.requires_grad for p in params}
    for p in params:
        p.requires_grad_(True)
    head_params = [p for h in heads for p in (h.linear.weight, h.linear.bias)]
    opt = adamw(params + head_params, lr=cfg.lr, weight_decay=cfg.weight_decay, beta2=0.95)
    was_training = model.training
    tower.train()
    projector.train()
    losses: list[float] = []
    try:
        with progress_bar(progress) as bar:
            task = bar.add_task("[bold]pretrain", total=cfg.steps, info="")
            for step in range(cfg.steps):
                h = heads[step % len(heads)]
                pick = h.train[torch.randint(len(h.train), (cfg.batch_size,), generator=gen).numpy()]
                x = torch.stack([pixels[h.images[i]] for i in pick]).to(device).float()
                y = h.labels[pick].to(device)
                loss = nn.functional.cross_entropy(h.linear(pooled_patch_features(feed, x, h.pool)), y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, 1.0)
                opt.step()
                losses.append(loss.item())
                bar.update(task, advance=1, info=f"{h.name} loss {losses[-1]:.3f}")
        metrics = _held_out(model, feed, heads, pixels, device)
    finally:
        for p in params:
            p.grad = None
            p.requires_grad_(flags[id(p)])
        model.train(was_training)
    metrics["pretrain/steps"] = float(cfg.steps)
    metrics["pretrain/seconds"] = round(time.monotonic() - t0, 3)
    metrics["pretrain/loss_first"] = losses[0]
    metrics["pretrain/loss_last"] = float(np.mean(losses[-len(heads) * 10 :]))
    return metrics


def _linear(n_in: int, n_out: int, gen: torch.Generator, device: torch.device) -> nn.Linear:
    """A head with weights drawn from ``gen`` (N(0, 1/n_in)), zero bias; the global RNG is not touched."""
    with torch.random.fork_rng(devices=[]):  # nn.Linear's own init draws from the global RNG
        lin = nn.Linear(n_in, n_out)
    with torch.no_grad():
        lin.weight.copy_(torch.randn(lin.weight.shape, generator=gen) * n_in**-0.5)
        lin.bias.zero_()
    return lin.to(device)


def _encode_pixels(adapter: ModelAdapter, paths: Sequence[Any], images: ImageCache) -> dict[Any, torch.Tensor]:
    """Processed pixels per image, kept as float16 (half the memory; the tower sees float32)."""
    proc = adapter.processor.image_processor
    out: dict[Any, torch.Tensor] = {}
    for i in range(0, len(paths), 64):
        chunk = list(paths[i : i + 64])
        pv = proc(images=images.many(chunk), return_tensors="pt")["pixel_values"]
        for p, x in zip(chunk, pv):
            out[p] = x.to(torch.float16)
    return out


@torch.no_grad()
def _held_out(model: nn.Module, feed: VisionFeed, heads: Sequence[_Head], pixels: dict[Any, torch.Tensor],
              device: torch.device) -> dict[str, float]:  # fmt: skip
    model.eval()
    out: dict[str, float] = {}
    for h in heads:
        out[f"pretrain/{h.name}/chance"] = 1.0 / len(h.classes)
        if len(h.held) == 0:
            continue
        right = 0
        for i in range(0, len(h.held), 64):
            idx = h.held[i : i + 64]
            x = torch.stack([pixels[h.images[j]] for j in idx]).to(device).float()
            pred = h.linear(pooled_patch_features(feed, x, h.pool)).argmax(-1).cpu()
            right += int((pred == h.labels[idx]).sum())
        out[f"pretrain/{h.name}/accuracy"] = right / len(h.held)
    return out

