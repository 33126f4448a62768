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

from vlmscope._lazy import lazy_exports

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

_WHERE, __getattr__ = lazy_exports(
    __name__,
    {
        "config": ("LoopConfig", "SubsampleConfig"),
        "projector": ("ProjectorTrainConfig", "train_projector"),
        "lora": ("LoraTrainConfig", "train_lora"),
        "output_layer": ("OutputLayerTrainConfig", "train_output_layer"),
        "clip": ("ClipTrainConfig", "train_clip"),
        "default_model": ("DefaultTrainConfig", "train_default"),
        "gradcam": ("GradcamConfig",),
        "merge": ("merge_adapter", "merge_tensors"),
        "loop": ("run_loop",),
    },
)
