"""``vlmscope train lora``: peft LoRA on the LM's linear layers (STUDIES.md E).

The medical study's recipe: r 128, alpha 256, lr 2e-4, ZeRO-3
(``configs/accelerate/deepspeed_zero3.yaml``). Targets are matched by the
module's last name (``q_proj``, ``down_proj`` ...) but only inside the
adapter's ``language`` parameter group, so the vision tower's attention
projections (which share those names in CLIP) are never adapted.

The output is the merged full checkpoint (it loads like any other) plus
``adapter/`` (``adapter_config.json`` + ``adapter_model.safetensors``), the
unmerged adapter that ``vlmscope merge --adapter`` folds into the base.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from vlmscope.errors import TrainingError
from vlmscope.models.adapter import ModelAdapter
from vlmscope.models.trained import load_generative
from vlmscope.training.config import LoopConfig, SubsampleConfig
from vlmscope.training.engine.loop import LoopResult
from vlmscope.training.trainers.invocation import TrainerCall, trainer_entry
from vlmscope.training.trainers.vlm_run import VlmRun, run_vlm_training
from vlmscope.training.trainers.vlm_setup import answer_rows

__all__ = ["ADAPTER_DIR", "LoraTrainConfig", "lora_targets", "train_lora"]

ADAPTER_DIR = "adapter"


class LoraTrainConfig(BaseModel):
    """LoRA fine-tuning of the LM (the medical study's recipe by default)."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    loop: LoopConfig = Field(default_factory=lambda: LoopConfig(lr=2e-4, epochs=1.0, warmup_ratio=0.03))
    r: int = Field(default=128, ge=1, le=4096)
    alpha: float = Field(default=256, gt=0)
    dropout: float = Field(default=0.05, ge=0, lt=1)
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
    """Last names of the LM's linear layers to adapt."""
    train_projector: bool = False
    """Also train the projector fully (peft ``modules_to_save``), as LLaVA's LoRA recipe does."""
    subsample: SubsampleConfig = SubsampleConfig()
    train_split: tuple[str, ...] = ("train",)
    valid_split: tuple[str, ...] = ()
    cache_encodings: bool = True


def lora_targets(adapter: ModelAdapter, names: Sequence[str]) -> list[str]:
    """Full module names of the LM's ``nn.Linear`` layers whose last name is in ``names``."""
    language = {id(p) for p in adapter.parameter_groups()["language"]}
    wanted = set(names)
    found, linear_names = [], set()
    for full, mod in adapter.model.named_modules():
        if isinstance(mod, nn.Linear) and id(mod.weight) in language:
            last = full.rsplit(".", 1)[-1]
            linear_names.add(last)
            if last in wanted:
                found.append(full)
    if not found:
        raise TrainingError(
            f"no trainable parameters selected: no LM linear layer is named {sorted(wanted)}; "
            f"the LM's linear layers are named {sorted(linear_names)}"
        )
    return found


def _projector_modules(adapter: ModelAdapter) -> list[str]:
    paths = adapter.projector_module_paths()
    if not paths:
        raise TrainingError(f"{adapter.family} adapter does not name its projector; use --no-train-projector")
    return list(paths)


@trainer_entry("lora", LoraTrainConfig())
def train_lora(call: TrainerCall, cfg: LoraTrainConfig) -> dict[str, Any]:
    """LoRA-train ``model`` on ``datasets``; writes the merged checkpoint + ``adapter/`` to ``out``."""
    from peft import LoraConfig, get_peft_model

    adapter = load_generative(call.model, revision=call.revision)
    train, record, valid = answer_rows(adapter, call.datasets, cfg.train_split, cfg.valid_split, cfg.subsample)
    targets = lora_targets(adapter, cfg.target_modules)
    for p in adapter.model.parameters():
        p.requires_grad_(False)
    peft_cfg = LoraConfig(
        r=cfg.r, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout, target_modules=targets, bias="none",
        modules_to_save=_projector_modules(adapter) if cfg.train_projector else None,
    )
    with warnings.catch_warnings():  # peft calls a transformers API deprecated in v5
        warnings.filterwarnings("ignore", category=FutureWarning, message=".*is_gradient_checkpointing.*")
        peft_model = get_peft_model(adapter.model, peft_cfg)
    n_trainable = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
    run = VlmRun.from_call(
        call, adapter, train,
        {"subsample": record, "target_modules": targets, "trainable_parameters": n_trainable},
        module=peft_model, valid=valid or None, cache_encodings=cfg.cache_encodings,
    )  # fmt: skip

    def save_and_merge(tmp: Path, result: LoopResult) -> dict[str, Any]:
        trained: Any = result.model
        trained.save_pretrained(str(tmp / ADAPTER_DIR))
        adapter.model = trained.merge_and_unload()
        return {"lora_parameters": n_trainable, "lora_modules": len(targets)}

    _, metrics = run_vlm_training(run, write_extra=save_and_merge, callbacks=call.callbacks,
                                  accelerator=call.accelerator)  # fmt: skip
    return metrics
