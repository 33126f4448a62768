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

from vlmscope._lazy import lazy_exports

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

_WHERE, __getattr__ = lazy_exports(
    __name__,
    {
        "config": ("LoopConfig", "SubsampleConfig"),
        "trainers.projector": ("ProjectorTrainConfig", "train_projector"),
        "trainers.lora": ("LoraTrainConfig", "train_lora"),
        "trainers.output_layer": ("OutputLayerTrainConfig", "train_output_layer"),
        "trainers.clip": ("ClipTrainConfig", "train_clip"),
        "trainers.default_model": ("DefaultTrainConfig", "train_default"),
        "engine.loop": ("run_loop",),
    },
)
