"""Knobs every gradient-descent trainer shares, validated at the boundary.

Each trainer's ``<X>TrainConfig`` embeds a :class:`LoopConfig` under ``loop``
so that ``params.yaml`` sections look alike across trainers and the shared
loop (:mod:`vlmscope.training.engine.loop`) reads one typed object.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from vlmscope.errors import ConfigError

__all__ = ["RESUME_NEUTRAL_FIELDS", "LoopConfig", "SubsampleConfig", "config_fingerprint"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


class LoopConfig(_Strict):
    """Optimisation, schedule, checkpointing and logging of one training run.

    The number of optimizer steps is ``max_steps`` when given, else
    ``ceil(epochs * n_examples / global_batch)`` with ``global_batch =
    batch_size * grad_accum * world_size``.
    """

    max_steps: int | None = Field(default=None, ge=1)
    """Stop after this many optimizer steps (overrides ``epochs``)."""
    epochs: float = Field(default=1.0, gt=0, le=10_000)
    """Passes over the training rows when ``max_steps`` is not given."""
    max_minutes: float | None = Field(default=None, gt=0)
    """Wall-clock cap; the run stops cleanly (final checkpoint, artifact written) when reached."""
    batch_size: int = Field(default=8, ge=1, le=65_536)
    """Examples per device per micro-step."""
    grad_accum: int = Field(default=1, ge=1, le=1024)
    """Micro-steps accumulated per optimizer step."""
    lr: float = Field(default=1e-3, gt=0, le=10)
    adam_beta2: float = Field(default=0.999, gt=0, lt=1)
    """AdamW's second-moment decay; 0.95 is steadier for small transformers trained from scratch."""
    weight_decay: float = Field(default=0.0, ge=0, le=1)
    """AdamW decoupled weight decay; never applied to biases and norm weights (1-D tensors)."""
    warmup_ratio: float = Field(default=0.03, ge=0, lt=1)
    """Fraction of the steps with linear warm-up before the cosine decay."""
    min_lr_ratio: float = Field(default=0.0, ge=0, le=1)
    """The cosine decays to ``lr * min_lr_ratio``."""
    max_grad_norm: float | None = Field(default=1.0, gt=0)
    """Clip the global gradient norm; ``None`` disables clipping."""
    seed: int = Field(default=0, ge=0)
    mixed_precision: Literal["auto", "no", "bf16", "fp16"] = "auto"
    """``auto``: bf16 autocast on a bf16-capable GPU, fp32 on CPU."""
    checkpoint_every: int = Field(default=100, ge=0)
    """Write a resumable checkpoint every N optimizer steps (0: only when stopping early)."""
    keep_checkpoints: int = Field(default=2, ge=1, le=1000)
    """How many of the newest checkpoints to keep on disk."""
    resume: bool = True
    """Continue from the newest complete checkpoint in the run directory if there is one."""
    keep_run_dir: bool = False
    """Keep the checkpoints after a successful run (they are deleted by default)."""
    log_every: int = Field(default=10, ge=1)
    """Log the loss (dvclive and progress bar) every N steps."""
    eval_every: int = Field(default=0, ge=0)
    """Run the trainer's validation every N steps (0: only at the end); keeps the best."""
    threads: int | None = Field(default=None, ge=1, le=1024)
    """torch CPU threads (None: torch's default). Tiny models train several times faster with 1."""

    def apply_threads(self) -> None:
        """Set torch's intra-op threads when ``threads`` is given (a process-wide setting)."""
        if self.threads is not None:
            import torch

            torch.set_num_threads(self.threads)

    def total_steps(self, n_examples: int, world_size: int = 1) -> int:
        """Optimizer steps this run takes for ``n_examples`` training rows."""
        if self.max_steps is not None:
            return self.max_steps
        if n_examples < 1:
            raise ConfigError("no training examples; check the dataset's train split")
        global_batch = self.batch_size * self.grad_accum * world_size
        return max(1, -(-int(self.epochs * n_examples) // global_batch))


RESUME_NEUTRAL_FIELDS = frozenset(
    {"max_minutes", "checkpoint_every", "keep_checkpoints", "resume", "keep_run_dir", "log_every", "threads"}
)
"""LoopConfig fields that may change between a killed run and its resumption."""


class SubsampleConfig(_Strict):
    """Dataset ablation of the unseen-class study: keep a proportion of the training rows.

    ``class-preserving`` keeps ``proportion`` of the rows of every class (at
    least one each); ``class-exclusive`` keeps all rows of ``proportion`` of
    the classes and drops the other classes entirely.
    """

    proportion: float = Field(default=1.0, gt=0, le=1)
    mode: Literal["class-preserving", "class-exclusive"] = "class-preserving"
    class_column: str | None = None
    """Manifest column naming the class; ``None``: the answer with a leading ``[bbox]`` removed."""
    seed: int = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _check(self) -> SubsampleConfig:
        if self.class_column is not None and not self.class_column.strip():
            raise ValueError("class_column must be a column name or null")
        return self


def config_fingerprint(cfg: BaseModel, *, ignore: frozenset[str] = frozenset()) -> str:
    """SHA-256 of a config's JSON with ``ignore``d keys dropped at any depth.

    A resumed run compares this with the checkpoint's so that a checkpoint is
    never continued under different hyper-parameters.
    """

    def strip(x: Any) -> Any:
        if isinstance(x, dict):
            return {k: strip(v) for k, v in sorted(x.items()) if k not in ignore}
        if isinstance(x, list):
            return [strip(v) for v in x]
        return x

    data = strip(cfg.model_dump(mode="json"))
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()
