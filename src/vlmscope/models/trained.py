"""A checkpoint loaded to change its weights, and the changed model saved to load like its base.

Trainers and checkpoint surgery (:mod:`vlmscope.models.merge`) both load a
generative VLM in float32 and write the result back as a checkpoint that
``load_model`` detects as it detected the base; both halves live here, with
the models, so that the surgery needs nothing from training.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from vlmscope.errors import TrainingError
from vlmscope.models.adapter import ModelAdapter

__all__ = ["load_generative", "save_model_files"]


def load_generative(model: str | os.PathLike[str], *, revision: str | None = None) -> ModelAdapter:
    """Load a generative VLM in float32 (trainable weights must not be bf16 for AdamW).

    ``revision``: hub revision (commit, tag, branch) of a hub id; ignored for a local directory.
    """
    from vlmscope.models import LoadOptions, load_model

    adapter = load_model(str(model), options=LoadOptions(dtype="float32", revision=revision))
    if not isinstance(adapter, ModelAdapter):
        raise TrainingError(
            f"{model}: a {type(adapter).__name__} has no LM to train; use `vlmscope train clip` for contrastive models"
        )
    return adapter


def save_model_files(adapter: Any, out: Path, **sidecar_extra: Any) -> None:
    """Weights + config + processor (``save_pretrained``) and the base's ``vlmscope.json`` sidecar.

    The sidecar carries the family (a composite and a LLaVA share
    ``model_type``), so the trained checkpoint is detected as its base was;
    a base loaded from the hub gives the sidecar of the revision it was
    loaded at (most hub checkpoints have none: detection then needs none).
    """
    from vlmscope.models import read_config
    from vlmscope.models.tiny import read_sidecar, write_sidecar

    adapter.model.save_pretrained(str(out))
    adapter.processor.save_pretrained(str(out))
    base = Path(adapter.source)
    if base.is_dir():
        sidecar = read_sidecar(base)
    else:
        sidecar = read_config(adapter.source, revision=getattr(adapter, "revision", None))[1]
    if sidecar is not None:
        fam = sidecar.pop("family")
        sidecar.pop("vlmscope_version", None)
        write_sidecar(out, fam, **{**sidecar, **sidecar_extra})
