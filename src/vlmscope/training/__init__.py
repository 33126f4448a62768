"""Training stages: projector-only, LoRA, output layer, CLIP, the default model.

Two layers, so that a trainer never reaches into the loop's internals:

- :mod:`vlmscope.training.engine`: the one loop every gradient trainer runs
  (:mod:`~vlmscope.training.engine.loop`: accelerate, AdamW, cosine with
  warm-up, checkpoints + resume, dvclive) and its parts
  (``checkpoint``, ``schedule``, ``tracking``);
- :mod:`vlmscope.training.trainers`: one module per trainer, each with a
  ``<X>TrainConfig`` and one function:

  - :func:`train_projector` (``vlmscope train projector``)
  - :func:`train_lora` (``vlmscope train lora``)
  - :func:`train_output_layer` (``vlmscope train output-layer``; no model forward pass)
  - :func:`train_clip` (``vlmscope train clip``)
  - :func:`train_default` (``vlmscope train default``: the embedded default model)

``config`` (the loop's and subsampling's configs), ``data`` (manifest rows
as examples) and ``encoding`` (rows encoded once, batched many times) are
what both layers share. Checkpoint surgery (``vlmscope merge``) lives in
:mod:`vlmscope.models.merge`, Grad-CAM (``vlmscope gradcam``) in
:mod:`vlmscope.attribution.gradcam`, and the answer-span loss in
:mod:`vlmscope.scoring.answer_span`.

Imports are lazy so that ``import vlmscope.training`` stays cheap.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__all__ = [
    "ClipTrainConfig",
    "DefaultTrainConfig",
    "LoopConfig",
    "LoraTrainConfig",
    "OutputLayerTrainConfig",
    "ProjectorTrainConfig",
    "SubsampleConfig",
    "run_loop",
    "train_clip",
    "train_default",
    "train_lora",
    "train_output_layer",
    "train_projector",
]

_WHERE = {
    "LoopConfig": "config",
    "SubsampleConfig": "config",
    "ProjectorTrainConfig": "trainers.projector",
    "train_projector": "trainers.projector",
    "LoraTrainConfig": "trainers.lora",
    "train_lora": "trainers.lora",
    "OutputLayerTrainConfig": "trainers.output_layer",
    "train_output_layer": "trainers.output_layer",
    "ClipTrainConfig": "trainers.clip",
    "train_clip": "trainers.clip",
    "DefaultTrainConfig": "trainers.default_model",
    "train_default": "trainers.default_model",
    "run_loop": "engine.loop",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(import_module(f"vlmscope.training.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'vlmscope.training' has no attribute {name!r}")
