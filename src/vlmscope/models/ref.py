"""Pins of hub models inside the pipeline's ``artifacts/models/<name>`` directories.

A hub model cannot be a DVC dependency (it is not a file here), so the
``pin_model`` stage writes ``vlmscope-ref.json`` (hub id + revision) into
``artifacts/models/<name>``. Stages resolve that directory with
:func:`resolve_source`: a pin yields the hub id and revision, a checkpoint
directory yields itself. Changing the pin's revision reruns that model's
stages and nothing else.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from vlmscope.errors import ModelError, NotFound
from vlmscope.io.jsonfile import write_json

__all__ = ["REF_FILE", "ModelRef", "PipelineModel", "pipeline_model", "write_ref", "resolve_source"]

REF_FILE = "vlmscope-ref.json"


@dataclass(frozen=True)
class ModelRef:
    source: str
    """Hub id (``llava-hf/llava-1.5-7b-hf``) or local checkpoint directory."""
    revision: str | None = None


def write_ref(out: str | os.PathLike[str], ref: ModelRef) -> Path:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / REF_FILE
    write_json(path, {"source": ref.source, "revision": ref.revision})
    return path


def resolve_source(path: str | os.PathLike[str]) -> ModelRef:
    """What to load for a pipeline model directory (a pin or a checkpoint)."""
    p = Path(path)
    ref = p / REF_FILE
    if ref.is_file():
        data = json.loads(ref.read_text())
        if not data.get("source"):
            raise ModelError(f"{ref}: field 'source' is empty")
        return ModelRef(source=str(data["source"]), revision=data.get("revision"))
    if not p.is_dir():
        raise NotFound(f"{p}: no model directory (expected a checkpoint or a {REF_FILE} pin)")
    return ModelRef(source=str(p))


@dataclass(frozen=True)
class PipelineModel:
    """A ``params.yaml`` ``models.<name>`` entry resolved against its model directory."""

    name: str
    source: str
    revision: str | None
    dtype: str
    device: str

    @property
    def device_map(self) -> str | None:
        """transformers' ``device_map``: ``None`` keeps weights on the CPU."""
        return None if self.device == "cpu" else self.device


def pipeline_model(name: str, runtime: dict, model_dir: str | os.PathLike[str]) -> PipelineModel:
    """Resolve model ``name`` of the pipeline: where to load it from (``model_dir``, as ``dvc.yaml``
    passes it) and how to run it (its ``params.yaml`` ``models.<name>`` entry, ``runtime``)."""
    ref = resolve_source(model_dir)
    return PipelineModel(
        name=name,
        source=ref.source,
        revision=ref.revision,
        dtype=str(runtime.get("dtype", "float32")),
        device=str(runtime.get("device", "cpu")),
    )
