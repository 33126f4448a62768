"""How every ``train_*`` entry point starts: seeded, with its paths, resume fingerprint and recorded inputs.

The projector, LoRA, default-model and CLIP trainers are called alike
(``model, datasets, out, cfg``, optionally ``run_dir``) and, before anything
of their own, do the same: set the thread count and the seed from
``cfg.loop`` (before the model loads and rows are drawn, so a fixed seed
gives the same checkpoint), put checkpoints in ``run_dir`` or beside ``out``
(:func:`~vlmscope.training.engine.identity.default_run_dir`), fingerprint the
inputs for resume checks, and open ``training_args.json`` with the trainer's
name, its validated config and its inputs. :func:`start_training` does that
once; the trainers differ only in what they train and write.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from vlmscope.training.config import LoopConfig
from vlmscope.training.engine.identity import default_run_dir, inputs_fingerprint

__all__ = ["TrainerCall", "start_training"]


@dataclass(frozen=True)
class TrainerCall:
    """One trainer invocation's inputs, resolved (built by :func:`start_training`)."""

    trainer: str
    """The trainer's name (``projector``, ``lora`` ...), recorded as ``training_args["trainer"]``."""
    cfg: BaseModel
    """The trainer's validated config; it has a ``loop`` field (:class:`LoopConfig`)."""
    loop: LoopConfig
    model: str | os.PathLike[str]
    datasets: tuple[str | os.PathLike[str], ...]
    out: Path
    run_dir: Path
    """Where the loop keeps its checkpoints (``run_dir`` as given, else beside ``out``)."""

    @property
    def fingerprint(self) -> str:
        """What a resumed run must match (config minus resume-neutral knobs, model, dataset contents)."""
        return inputs_fingerprint(self.cfg, self.model, self.datasets)

    def training_args(self, **extra: Any) -> dict[str, Any]:
        """``training_args.json``'s content: trainer, config, model and datasets, then the trainer's ``extra``."""
        return {
            "trainer": self.trainer, "config": self.cfg.model_dump(mode="json"), "model": str(self.model),
            "datasets": [str(d) for d in self.datasets], **extra,
        }  # fmt: skip


def start_training(
    trainer: str,
    cfg: BaseModel,
    model: str | os.PathLike[str],
    datasets: Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    run_dir: str | os.PathLike[str] | None = None,
) -> TrainerCall:
    """Apply ``cfg.loop``'s threads and seed, then resolve the call (see the module docstring)."""
    from accelerate.utils import set_seed

    loop: LoopConfig = cfg.loop  # type: ignore[attr-defined]  # every trainer config has one
    loop.apply_threads()
    set_seed(loop.seed)
    out = Path(out)
    return TrainerCall(
        trainer=trainer, cfg=cfg, loop=loop, model=model, datasets=tuple(datasets), out=out,
        run_dir=Path(run_dir) if run_dir is not None else default_run_dir(out),
    )  # fmt: skip
