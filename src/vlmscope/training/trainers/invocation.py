"""How every ``train_*`` entry point starts: seeded, with its paths, resume fingerprint and recorded inputs.

The projector, LoRA, default-model and CLIP trainers are called alike
(``model, datasets, out, cfg``, optionally ``run_dir``) and, before anything
of their own, do the same: set the thread count and the seed from
``cfg.loop`` (before the model loads and rows are drawn, so a fixed seed
gives the same checkpoint), put checkpoints in ``run_dir`` or beside ``out``
(:func:`~vlmscope.training.engine.identity.default_run_dir`), fingerprint the
inputs for resume checks, and open ``training_args.json`` with the trainer's
name, its validated config and its inputs. :func:`trainer_entry` gives them
that one public signature and start, so the trainers differ only in what
they train and write.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel

from vlmscope.io.outguard import check_out
from vlmscope.training.config import LoopConfig
from vlmscope.training.engine.identity import default_run_dir, inputs_fingerprint
from vlmscope.training.engine.loop import StepInfo

__all__ = ["TrainerCall", "TrainerBody", "trainer_entry"]

C = TypeVar("C", bound=BaseModel)


@dataclass(frozen=True)
class TrainerCall:
    """One trainer invocation's inputs, resolved (built by :func:`trainer_entry`'s public function)."""

    trainer: str
    """The trainer's name (``projector``, ``lora`` ...), recorded as ``training_args["trainer"]``."""
    cfg: BaseModel
    """The trainer's validated config; it has a ``loop`` field (:class:`LoopConfig`)."""
    loop: LoopConfig
    model: str | os.PathLike[str]
    revision: str | None
    """Hub revision of ``model`` (commit, tag, branch); None: the default branch, or a local directory."""
    datasets: tuple[str | os.PathLike[str], ...]
    out: Path
    run_dir: Path
    """Where the loop keeps its checkpoints (``run_dir`` as given, else beside ``out``)."""
    callbacks: Sequence[Callable[[StepInfo], None]] = ()
    """Called by the loop after every step (progress bars, tests that kill a run)."""
    accelerator: Any = None
    """An ``accelerate.Accelerator`` to train under (None: the loop makes one)."""

    @property
    def fingerprint(self) -> str:
        """What a resumed run must match (config minus resume-neutral knobs, model, dataset contents)."""
        return inputs_fingerprint(self.cfg, self.model, self.datasets, revision=self.revision)

    def training_args(self, **extra: Any) -> dict[str, Any]:
        """``training_args.json``'s content: trainer, config, model (and its revision, when given) and
        datasets, then the trainer's ``extra``."""
        revision = {} if self.revision is None else {"revision": self.revision}
        return {
            "trainer": self.trainer, "config": self.cfg.model_dump(mode="json"), "model": str(self.model),
            **revision, "datasets": [str(d) for d in self.datasets], **extra,
        }  # fmt: skip


TrainerBody = Callable[..., dict[str, Any]]
"""What :func:`trainer_entry` wraps: ``body(call, cfg, **options) -> metrics``."""


def trainer_entry(name: str, default: C) -> Callable[[TrainerBody], Callable[..., dict[str, Any]]]:
    """Turn ``body(call, cfg, **options) -> metrics`` into the public trainer (see the module docstring).

    The public function, named and documented as ``body``, is
    ``f(model, datasets, out, cfg=default, *, revision=None, run_dir=None,
    callbacks=(), accelerator=None, **options)``: it sets ``cfg.loop``'s threads and seed,
    resolves the call into a :class:`TrainerCall` under ``name`` and returns
    ``body(call, cfg, **options)``; ``options`` are the trainer's own keywords
    (the default model's ``logs``), so an unknown keyword still fails.
    """

    def wrap(body: TrainerBody) -> Callable[..., dict[str, Any]]:
        def entry(
            model: str | os.PathLike[str],
            datasets: Sequence[str | os.PathLike[str]],
            out: str | os.PathLike[str],
            cfg: C = default,
            *,
            revision: str | None = None,
            run_dir: str | os.PathLike[str] | None = None,
            callbacks: Sequence[Callable[[StepInfo], None]] = (),
            accelerator: Any = None,
            **options: Any,
        ) -> dict[str, Any]:
            from accelerate.utils import set_seed

            loop: LoopConfig = cfg.loop  # type: ignore[attr-defined]  # every trainer config has one
            loop.apply_threads()
            set_seed(loop.seed)  # before the model loads and rows are drawn
            out = Path(out)
            check_out(out, "model", [model, *datasets])  # before the model loads: refuse early
            call = TrainerCall(
                trainer=name, cfg=cfg, loop=loop, model=model, revision=revision, datasets=tuple(datasets), out=out,
                run_dir=Path(run_dir) if run_dir is not None else default_run_dir(out),
                callbacks=callbacks, accelerator=accelerator,
            )  # fmt: skip
            return body(call, cfg, **options)

        # not functools.wraps: its __wrapped__ would make help() show body's (call, cfg) signature
        for attr in ("__module__", "__name__", "__qualname__", "__doc__"):
            setattr(entry, attr, getattr(body, attr))
        return entry

    return wrap
