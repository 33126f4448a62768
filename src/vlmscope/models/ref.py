"""Pins of hub models inside the pipeline's ``artifacts/models/<name>`` directories.

A hub model cannot be a DVC dependency (it is not a file here), so the
``pin_model`` stage writes ``vlmscope-ref.json`` (hub id + revision) into
``artifacts/models/<name>``. Stages resolve that directory with
:func:`resolve_source`: a pin yields the hub id and revision, a checkpoint
directory yields itself. Changing the pin's revision reruns that model's
stages and nothing else.

:func:`resolve_model_dir` is the same resolution for code that reads a
checkpoint's files rather than loading it through transformers (the lens,
checkpoint surgery): a hub id, given directly or through a pin, becomes its
snapshot directory in the local Hugging Face cache at the pinned or given
revision.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from vlmscope.errors import ModelError, NotFound
from vlmscope.io.jsonfile import write_json

__all__ = ["REF_FILE", "ModelRef", "PipelineModel", "pipeline_model", "resolve_model_dir", "resolve_source", "write_ref"]

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


def resolve_model_dir(
    model: str | os.PathLike[str], *, revision: str | None = None
) -> tuple[Path, str | None]:
    """``(local checkpoint directory, revision)`` for a checkpoint dir, a ``vlmscope-ref.json`` pin or a hub id.

    Hub ids (given directly or through a pin) are looked up in the local
    Hugging Face cache only: reading a checkpoint's files never downloads
    weights. ``revision`` (commit, tag or branch) picks the snapshot of a hub
    id; a pin's own revision is used when ``revision`` is None, and a
    ``revision`` that contradicts the pin is refused (the pin is what DVC
    tracks). A local checkpoint directory has no revisions: ``revision`` is
    ignored for it, as ``LoadOptions.revision`` is.

    Raises:
        NotFound: a local path that does not exist.
        ModelError: a hub id (at that revision) not in the local cache; a revision contradicting a pin.
    """
    p = Path(model)
    if p.is_dir():
        ref = resolve_source(p)
        if Path(ref.source).is_dir():
            return Path(ref.source), ref.revision
        if revision is not None and ref.revision is not None and revision != ref.revision:
            raise ModelError(
                f"{p / REF_FILE}: pins revision {ref.revision!r} vs {revision!r} given; "
                "change the pin (params.yaml) or drop the revision argument"
            )
        source, revision = ref.source, revision or ref.revision
    elif p.exists() or str(model).startswith(("/", "./", "../", "~")):
        raise NotFound(f"{model}: no model directory (expected a checkpoint or a {REF_FILE} pin)")
    else:
        source = str(model)
    from huggingface_hub import snapshot_download

    try:
        path = snapshot_download(source, revision=revision, local_files_only=True)
    except Exception as e:  # not cached, bad repo id, unknown revision ...
        raise ModelError(
            f"{source!r} (revision {revision or 'default'}): not a local checkpoint directory and not in the "
            f"local Hugging Face cache ({type(e).__name__}); checkpoint files are never downloaded here: "
            "download the checkpoint first (or pass its local directory)"
        ) from e
    return Path(path), revision
