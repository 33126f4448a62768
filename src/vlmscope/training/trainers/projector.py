"""``vlmscope train projector``: train only the vision-to-LM projector (STUDIES.md D).

The vision tower and the LM stay frozen; the loss sees only the answer span
(for ``"[bbox] classname"`` answers only the class name). The study's
defaults: lr 1e-3, one epoch, cosine with 3% warm-up, bf16 on GPU, ZeRO-2
(``configs/accelerate/deepspeed_zero2.yaml``). Dataset ablations subsample
the training rows class-preserving or class-exclusive (seeded; the kept
classes are recorded in ``training_args.json``).

The output is a full checkpoint (every tensor under the base's names, so it
loads like any other) plus ``projector.safetensors`` holding only the
trained tensors, which ``vlmscope merge --projector`` folds into any
checkpoint of the same architecture.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field
from safetensors.torch import save_file

from vlmscope.errors import TrainingError
from vlmscope.models.trained import load_generative
from vlmscope.training.config import LoopConfig, SubsampleConfig
from vlmscope.training.data import load_rows  # re-exported: attribution.gradcam and tests import it from here
from vlmscope.training.engine.loop import LoopResult
from vlmscope.training.engine.params import trainable_state
from vlmscope.training.trainers.invocation import TrainerCall, trainer_entry
from vlmscope.training.trainers.vlm_run import VlmRun, run_vlm_training
from vlmscope.training.trainers.vlm_setup import answer_rows, freeze_except

__all__ = ["PROJECTOR_FILE", "ProjectorTrainConfig", "checkpoint_names", "load_rows", "train_projector"]

PROJECTOR_FILE = "projector.safetensors"


class ProjectorTrainConfig(BaseModel):
    """Projector-only training (the unseen-class study's recipe by default)."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    loop: LoopConfig = Field(default_factory=lambda: LoopConfig(lr=1e-3, epochs=1.0, warmup_ratio=0.03))
    subsample: SubsampleConfig = SubsampleConfig()
    train_split: tuple[str, ...] = ("train",)
    valid_split: tuple[str, ...] = ()
    """Rows whose answer loss picks the best checkpoint (empty: keep the last weights)."""
    cache_encodings: bool = True
    """Keep every row's processed image and tokens in memory (turn off for datasets that do not fit)."""


def checkpoint_names(model: Any, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Runtime parameter names -> the names ``save_pretrained`` writes (transformers 5 renames on save)."""
    from transformers.core_model_loading import revert_weight_conversion

    out = revert_weight_conversion(model, dict(tensors))
    if len(out) != len(tensors):
        raise TrainingError(f"cannot map {len(tensors)} trained tensors to checkpoint names (got {len(out)})")
    return {k: v.contiguous() for k, v in out.items()}


@trainer_entry("projector", ProjectorTrainConfig())
def train_projector(call: TrainerCall, cfg: ProjectorTrainConfig) -> dict[str, Any]:
    """Train ``model``'s projector on ``datasets``; writes ``out`` and returns its metrics."""
    adapter = load_generative(call.model, revision=call.revision)
    train, record, valid = answer_rows(adapter, call.datasets, cfg.train_split, cfg.valid_split, cfg.subsample)
    sizes = freeze_except(adapter, ["projector"])
    run = VlmRun.from_call(call, adapter, train, {"subsample": record, "trainable_parameters": sizes},
                           valid=valid or None, cache_encodings=cfg.cache_encodings)  # fmt: skip

    def write_projector(tmp: Path, result: LoopResult) -> dict[str, Any]:
        tensors = {k: v.detach().cpu().contiguous() for k, v in trainable_state(result.model).items()}
        save_file(checkpoint_names(result.model, tensors), str(tmp / PROJECTOR_FILE))
        return {"projector_parameters": sizes["projector"], "subsample_rows": record["rows_after"],
                "subsample_classes": record["classes_after"]}  # fmt: skip

    _, metrics = run_vlm_training(run, write_extra=write_projector, callbacks=call.callbacks,
                                  accelerator=call.accelerator)  # fmt: skip
    return metrics
