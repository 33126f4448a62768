"""``vlmscope gradcam``: Grad-CAM heat maps on a vision tower's last layer, as overlay PNGs.

Grad-CAM (Selvaraju et al.): for a scalar target, weight each channel of a
layer's activations by the mean of the target's gradient over the patch
tokens, sum over channels, ReLU, and lay the (rows x cols) patch map over the
image. The layer is the last encoder block the model actually uses:

- CLIP / SigLIP (``train clip`` checkpoints): the vision tower's last block;
  the target is the logit of the class (the predicted one, or the answer's)
  against the text prototypes of ``prototypes.json`` (or ``prompt`` filled
  with the dataset's classes);
- generative VLMs: the block whose output feeds the projector
  (``vision_feature_layer``, -2 in LLaVA); the target is the log-probability
  of the answer span (the reference answer, or the greedy prediction).

Shapes: activations (1, N, C) with N = rows * cols patch tokens (+1 when the
tower has a CLS token, which is dropped).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import polars as pl
import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from vlmscope.errors import ConfigError, TrainingError
from vlmscope.io.atomic import atomic_dir
from vlmscope.io.outguard import check_out
from vlmscope.training.data import Example, ImageCache

__all__ = ["GradcamConfig", "cam_from", "gradcam", "overlay"]


class GradcamConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    samples: tuple[str, ...] | None = None
    """Sample ids to explain (None: the first ``max_samples`` rows of ``split``)."""
    split: tuple[str, ...] = ("test",)
    max_samples: int = Field(default=16, ge=1, le=100_000)
    target: Literal["predicted", "answer"] = "predicted"
    """Explain the model's own prediction or the reference answer."""
    prompt: str = "a photo of {}"
    """CLIP only, when the checkpoint has no ``prototypes.json``."""
    alpha: float = Field(default=0.45, ge=0, le=1)
    """Opacity of the heat map over the image."""
    size: int = Field(default=224, ge=16, le=4096)
    """Width and height of the written PNGs."""


def cam_from(activation: torch.Tensor, gradient: torch.Tensor) -> np.ndarray:
    """(N, C) activations and gradients of one image -> (rows, cols) map in [0, 1]."""
    n = activation.shape[0]
    side = math.isqrt(n)
    if side * side != n:
        side = math.isqrt(n - 1)
        if side * side != n - 1:
            raise TrainingError(f"cannot lay {n} vision tokens on a square patch grid")
        activation, gradient = activation[1:], gradient[1:]  # drop CLS
    weights = gradient.mean(0)  # (C,)
    cam = torch.relu((activation * weights).sum(-1)).reshape(side, side).float()
    peak = float(cam.max())
    return (cam / peak).numpy() if peak > 0 else cam.numpy()


def overlay(image: Any, cam: np.ndarray, *, alpha: float, size: int) -> Any:
    """The RGB image (resized to ``size``) with the jet-coloured ``cam`` blended on top."""
    from matplotlib import colormaps
    from PIL import Image

    base = image.convert("RGB").resize((size, size), Image.BILINEAR)
    heat = Image.fromarray((cam * 255).astype(np.uint8)).resize((size, size), Image.BILINEAR)
    colored = colormaps["jet"](np.asarray(heat) / 255.0)[..., :3]
    mixed = (1 - alpha) * np.asarray(base) / 255.0 + alpha * colored
    return Image.fromarray((mixed.clip(0, 1) * 255).astype(np.uint8))


class _Hook:
    def __init__(self, module: nn.Module) -> None:
        self.act: torch.Tensor | None = None
        self.handle = module.register_forward_hook(self._fwd)

    def _fwd(self, _m: nn.Module, _inp: Any, out: Any) -> None:
        t = out[0] if isinstance(out, (tuple, list)) else out
        t.retain_grad()
        self.act = t

    def close(self) -> None:
        self.handle.remove()


def _pick_rows(dataset: Path, cfg: GradcamConfig) -> list[Example]:
    from vlmscope.training.trainers.projector import load_rows

    if cfg.samples:
        rows = load_rows([dataset], ["train", "valid", "test"], allow_empty=True)
        by_id = {r.sample_id: r for r in rows}
        missing = [s for s in cfg.samples if s not in by_id]
        if missing:
            raise ConfigError(f"--samples: {missing[:5]} not in {dataset}'s manifest")
        return [by_id[s] for s in cfg.samples]
    return load_rows([dataset], cfg.split)[: cfg.max_samples]


def _contrastive_cams(adapter: Any, model_dir: Path, rows: Sequence[Example], cfg: GradcamConfig,
               images: ImageCache) -> list[tuple[np.ndarray, dict[str, Any]]]:  # fmt: skip
    from vlmscope.training.trainers.clip import PrototypeClassifier, class_names, row_class

    proto_file = model_dir / "prototypes.json"
    class_column = None
    if proto_file.is_file():
        meta = json.loads(proto_file.read_text())
        classes, texts = list(meta["classes"]), list(meta["texts"])
        class_column = meta.get("class_column")  # trained with --class-column: the rows' class is that column
    else:
        classes = class_names(rows, None)
        texts = [cfg.prompt.format(c) for c in classes]
    clf = PrototypeClassifier(adapter, adapter.text_embeddings(texts))
    block = adapter.vision_feature_block()
    out = []
    for r in rows:
        pv = adapter.processor.image_processor(images=[images.get(r.image)], return_tensors="pt")["pixel_values"]
        hook = _Hook(block)
        try:
            logits = clf(pv)[0]  # (K,)
            truth = row_class(r, class_column)
            k = int(logits.argmax()) if cfg.target == "predicted" or truth not in classes else classes.index(truth)
            adapter.model.zero_grad(set_to_none=True)
            logits[k].backward()
            if hook.act is None or hook.act.grad is None:
                raise TrainingError("the hooked vision block received no gradient")
            cam = cam_from(hook.act[0].detach(), hook.act.grad[0])
        finally:
            hook.close()
        out.append((cam, {"target": classes[k], "predicted": classes[int(logits.argmax())], "truth": truth}))
    return out


def _vlm_cams(adapter: Any, rows: Sequence[Example], cfg: GradcamConfig,
              images: ImageCache) -> list[tuple[np.ndarray, dict[str, Any]]]:  # fmt: skip
    from vlmscope.scoring.answer_span import per_example_loss

    block = adapter.vision_feature_block()
    out = []
    for r in rows:
        img = images.get(r.image)
        answer = r.answer
        if cfg.target == "predicted":
            answer = adapter.generate(adapter.encode([img], [r.prompt]), max_new_tokens=8)[0] or r.answer
        batch = adapter.encode([img], [r.prompt], answers=[answer])
        hook = _Hook(block)
        try:
            adapter.model.zero_grad(set_to_none=True)
            with torch.enable_grad():
                logp = -per_example_loss(adapter.model, batch)[0]
                logp.backward()
            if hook.act is None or hook.act.grad is None:
                raise TrainingError("the hooked vision block received no gradient; is the tower frozen in eval?")
            cam = cam_from(hook.act[0].detach(), hook.act.grad[0])
        finally:
            hook.close()
        out.append((cam, {"target": answer, "predicted": answer if cfg.target == "predicted" else "", "truth": r.answer}))
    return out


def gradcam(
    model: str | os.PathLike[str],
    dataset: str | os.PathLike[str],
    out: str | os.PathLike[str],
    cfg: GradcamConfig = GradcamConfig(),
    *,
    revision: str | None = None,
) -> pl.DataFrame:
    """Write ``out/<sample_id>.png`` overlays and ``out/gradcam.csv``; returns the table.

    ``revision``: hub revision (commit, tag, branch) of a hub id ``model``; ignored for a local directory.
    """
    from vlmscope.models import LoadOptions, load_model
    from vlmscope.models.adapter import ContrastiveAdapter

    check_out(out, "gradcam", [model, dataset])  # before the model loads: refuse early

    adapter = load_model(str(model), options=LoadOptions(dtype="float32", attn_implementation="eager", revision=revision))
    adapter.model.eval()
    for p in adapter.model.parameters():
        p.requires_grad_(True)  # gradients must flow back to the hooked block
    rows = _pick_rows(Path(dataset), cfg)
    images = ImageCache()
    if isinstance(adapter, ContrastiveAdapter):
        cams = _contrastive_cams(adapter, Path(model), rows, cfg, images)
    else:
        cams = _vlm_cams(adapter, rows, cfg, images)
    table = []
    with atomic_dir(out, kind="gradcam", inputs=[model, dataset]) as tmp:
        for r, (cam, info) in zip(rows, cams):
            name = f"{r.sample_id}.png".replace("/", "_")
            overlay(images.get(r.image), cam, alpha=cfg.alpha, size=cfg.size).save(tmp / name)
            table.append({"sample_id": r.sample_id, "file": name, "grid": f"{cam.shape[0]}x{cam.shape[1]}",
                          "peak_row": int(np.unravel_index(cam.argmax(), cam.shape)[0]),
                          "peak_col": int(np.unravel_index(cam.argmax(), cam.shape)[1]),
                          **{k: str(v) for k, v in info.items()}})  # fmt: skip
        df = pl.DataFrame(table)
        df.write_csv(tmp / "gradcam.csv")
    return df
