"""``vlmscope merge``: fold a LoRA adapter or separately trained tensors into a full checkpoint.

Two ways here, both giving a directory that ``load_model`` loads like any other
(two more, for parts made outside vlmscope, live beside this module:
:mod:`~vlmscope.models.projector_bin` for an original LLaVA-codebase
``mm_projector.bin``, :mod:`~vlmscope.models.tower_swap` for a fine-tuned CLIP
vision tower):

- ``--adapter A``: peft ``merge_and_unload`` of a LoRA adapter onto the base
  (the base is loaded once, in float32, then saved).
- ``--projector P`` / ``--tensors T``: a safetensors file of named tensors
  (``projector.safetensors`` from ``train projector``, ``head.safetensors``
  from ``train output-layer``) replaces the base's tensors *by name*, shard by
  shard through the base's index, without instantiating the model. Names
  saved by transformers < 4.52 (``multi_modal_projector.*`` vs
  ``model.multi_modal_projector.*``) are matched through the family's legacy
  prefixes.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from safetensors.torch import load_file

from vlmscope import __version__
from vlmscope.errors import ModelError, NotFound, TrainingError
from vlmscope.io.atomic import atomic_dir
from vlmscope.io.jsonfile import write_json
from vlmscope.io.outguard import check_out
from vlmscope.io.tensorfile import check_safetensors
from vlmscope.models.ref import resolve_model_dir
from vlmscope.models.weights import replace_tensors, weight_map

__all__ = ["MERGE_INFO", "merge_adapter", "merge_tensors", "merged_revision", "resolve_tensor_file", "write_merged"]

MERGE_INFO = "merge_info.json"


def resolve_tensor_file(path: str | os.PathLike[str]) -> Path:
    """A safetensors file, or a training output directory holding ``projector.safetensors`` / ``head.safetensors``."""
    p = Path(path)
    if p.is_file():
        return p
    if p.is_dir():
        for name in ("projector.safetensors", "head.safetensors"):
            if (p / name).is_file():
                return p / name
        raise NotFound(f"{p}: no projector.safetensors or head.safetensors; pass the .safetensors file itself")
    raise NotFound(f"{p}: no such file or directory")


_INPUTS = ("base", "tensors", "adapter", "projector", "vision_tower")
"""Keys of a merge's ``source`` that name inputs ``out`` must not overlap."""


def merge_tensors(
    base: str | os.PathLike[str],
    tensors: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    revision: str | None = None,
) -> dict[str, Any]:
    """Copy ``base`` to ``out`` with the tensors of ``tensors`` replaced by name; returns a summary.

    ``base``: a checkpoint directory, a ``vlmscope-ref.json`` pin or a hub id in the local cache
    (at ``revision``, see :func:`vlmscope.models.ref.resolve_model_dir`).
    """
    check_out(out, "model", [base, tensors])
    given, (base, revision) = base, resolve_model_dir(base, revision=revision)
    src = resolve_tensor_file(tensors)
    check_safetensors(src)
    new = load_file(str(src))
    if not new:
        raise TrainingError(f"{src}: holds no tensors; nothing to merge")
    keys = weight_map(base).keys()
    missing = sorted(set(new) - set(keys))
    if missing:
        raise ModelError(
            f"{src}: tensor(s) {missing[:3]} are not in {base}'s checkpoint ({len(keys)} tensors, e.g. "
            f"{sorted(keys)[:2]}); the file was trained on another architecture"
        )
    mapped = dict(new)
    source = {"base": str(given), **merged_revision(revision), "tensors": str(src), "replaced": sorted(mapped)}
    return write_merged(out, source, lambda tmp: {"shards": replace_tensors(base, tmp, mapped)})


def merge_adapter(
    base: str | os.PathLike[str],
    adapter: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    revision: str | None = None,
) -> dict[str, Any]:
    """Load ``base`` (at hub ``revision``, if a hub id), apply the peft adapter at ``adapter``, merge and save to ``out``."""
    check_out(out, "model", [base, adapter])  # before the model loads: refuse early
    from peft import PeftModel

    from vlmscope.models.trained import load_generative, save_model_files

    a = Path(adapter)
    if not (a / "adapter_config.json").is_file():
        sub = a / "adapter"
        if (sub / "adapter_config.json").is_file():
            a = sub
        else:
            raise NotFound(f"{adapter}: no adapter_config.json; pass the directory `train lora` wrote or its adapter/")
    model = load_generative(base, revision=revision)
    try:
        with warnings.catch_warnings():  # peft calls a transformers API deprecated in v5
            warnings.filterwarnings("ignore", category=FutureWarning, message=".*is_gradient_checkpointing.*")
            peft_model = PeftModel.from_pretrained(model.model, str(a))
    except (ValueError, KeyError, RuntimeError) as e:
        raise ModelError(f"cannot apply adapter {a} to {base}: {e}") from e
    model.model = peft_model.merge_and_unload()
    source = {"base": str(base), **merged_revision(revision), "adapter": str(a)}
    return write_merged(out, source,
                         lambda tmp: save_model_files(model, tmp, merged_adapter=str(a)))  # fmt: skip


def merged_revision(revision: str | None) -> dict[str, str]:
    """``merge_info.json``'s ``revision`` entry: present only when a hub revision was asked for (or pinned).

    ``base`` is recorded as given (a hub id, a pin or a directory), not as the
    cache snapshot it resolved to, so the record means the same on every machine.
    """
    return {} if revision is None else {"revision": revision}


def write_merged(out: str | os.PathLike[str], source: dict[str, Any],
                  write: Callable[[Path], dict[str, Any] | None]) -> dict[str, Any]:  # fmt: skip
    """Run ``write`` into a fresh ``out`` (replaced atomically) and record ``MERGE_INFO`` there; returns it.

    Both ways of merging end alike: ``source`` (what was merged), whatever
    ``write`` reports, then the vlmscope version, so a merged directory always
    says where it came from and a failed merge leaves nothing behind.
    """
    with atomic_dir(out, kind="model", inputs=[source.get(k) for k in _INPUTS]) as tmp:
        info = {**source, **(write(tmp) or {}), "vlmscope_version": __version__}
        write_json(tmp / MERGE_INFO, info)
    return info
