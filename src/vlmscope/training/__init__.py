"""Training stages: projector-only, LoRA + merge, output layer, CLIP, Grad-CAM, the default model.

One shared loop (:mod:`vlmscope.training.loop`: accelerate, AdamW, cosine
with warm-up, checkpoints + resume, dvclive) serves every gradient trainer;
each trainer is one module with a ``<X>TrainConfig`` and one function:

- :func:`train_projector` (``vlmscope train projector``)
- :func:`train_lora` (``vlmscope train lora``) and :func:`merge_adapter` / :func:`merge_tensors` (``vlmscope merge``)
- :func:`train_output_layer` (``vlmscope train output-layer``; no model forward pass)
- :func:`train_clip` (``vlmscope train clip``) and ``vlmscope.training.gradcam.gradcam`` (``vlmscope gradcam``)
- :func:`train_default` (``vlmscope train default``: the embedded default model)

Imports are lazy so that ``import vlmscope.training`` stays cheap.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__all__ = [
    "ClipTrainConfig",
    "DefaultTrainConfig",
    "GradcamConfig",
    "LoopConfig",
    "LoraTrainConfig",
    "OutputLayerTrainConfig",
    "ProjectorTrainConfig",
    "SubsampleConfig",
    "merge_adapter",
    "merge_tensors",
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
    "ProjectorTrainConfig": "projector",
    "train_projector": "projector",
    "LoraTrainConfig": "lora",
    "train_lora": "lora",
    "OutputLayerTrainConfig": "output_layer",
    "train_output_layer": "output_layer",
    "ClipTrainConfig": "clip",
    "train_clip": "clip",
    "DefaultTrainConfig": "default_model",
    "train_default": "default_model",
    "GradcamConfig": "gradcam",
    "merge_adapter": "merge",
    "merge_tensors": "merge",
    "run_loop": "loop",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(import_module(f"vlmscope.training.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'vlmscope.training' has no attribute {name!r}")
