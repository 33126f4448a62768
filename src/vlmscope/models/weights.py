"""Read and rewrite a checkpoint's safetensors by tensor NAME, never by shard file.

A transformers checkpoint is either one ``model.safetensors`` or several
shards plus ``model.safetensors.index.json`` (``weight_map``: name ->
shard). Everything here goes through that map, so merging a projector into a
7B checkpoint touches only the shards that hold projector tensors and never
needs the whole model in memory.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from vlmscope.errors import ModelError, NotFound
from vlmscope.io.tensorfile import check_safetensors_dir

__all__ = [
    "INDEX",
    "SINGLE",
    "module_prefix",
    "read_tensors",
    "replace_tensors",
    "tensor_names",
    "tensor_shapes",
    "weight_map",
]

SINGLE = "model.safetensors"
INDEX = "model.safetensors.index.json"


def weight_map(checkpoint: str | os.PathLike[str]) -> dict[str, str]:
    """name -> shard file name, from the index or the single file's header."""
    d = Path(checkpoint)
    check_safetensors_dir(d)  # truncated/corrupt shards: one line naming the file
    if (d / INDEX).is_file():
        try:
            return dict(json.loads((d / INDEX).read_text())["weight_map"])
        except (json.JSONDecodeError, KeyError) as e:
            raise ModelError(f"{d / INDEX}: malformed safetensors index ({e})") from e
    if (d / SINGLE).is_file():
        with safe_open(str(d / SINGLE), framework="pt") as fh:
            return {k: SINGLE for k in fh.keys()}
    raise NotFound(f"{d}: no {SINGLE} or {INDEX}; expected a safetensors checkpoint directory")


def tensor_names(checkpoint: str | os.PathLike[str]) -> list[str]:
    return sorted(weight_map(checkpoint))


def module_prefix(names: Iterable[str], module: str, *, where: object, what: str, hint: str) -> str:
    """The one tensor-name prefix that ends in ``module`` (``vision_tower.``) among ``names``.

    Checkpoints saved by different transformers versions nest the same module
    at different depths (``multi_modal_projector.`` vs
    ``model.multi_modal_projector.``); a merge must find where this one keeps
    it, and refuse a checkpoint with none or several: the error names the
    checkpoint (``where``) and the module (``what``), and ends with ``hint``
    (what kind of checkpoint the merge expects).
    """
    prefixes = sorted({n[: n.index(module) + len(module)] for n in names if module in n})
    if len(prefixes) != 1:
        found = prefixes or "none"
        raise ModelError(f"{where}: expected one {what} in the checkpoint, found prefixes {found}; {hint}")
    return prefixes[0]


def tensor_shapes(checkpoint: str | os.PathLike[str]) -> dict[str, tuple[int, ...]]:
    """name -> shape of every tensor, from the safetensors headers (no values read): checks before a merge."""
    d = Path(checkpoint)
    by_shard: dict[str, list[str]] = {}
    for name, shard in weight_map(d).items():
        by_shard.setdefault(shard, []).append(name)
    out: dict[str, tuple[int, ...]] = {}
    for shard, names in by_shard.items():
        with safe_open(str(d / shard), framework="pt") as fh:
            for n in names:
                out[n] = tuple(int(s) for s in fh.get_slice(n).get_shape())
    return out


def read_tensors(checkpoint: str | os.PathLike[str], names: Iterable[str]) -> dict[str, torch.Tensor]:
    """Only the named tensors, each read from its own shard; missing names are an error."""
    d = Path(checkpoint)
    wm = weight_map(d)
    wanted = list(names)
    missing = [n for n in wanted if n not in wm]
    if missing:
        raise ModelError(f"{d}: tensors not in checkpoint: {missing[:5]} ({len(wm)} tensors present)")
    by_shard: dict[str, list[str]] = {}
    for n in wanted:
        by_shard.setdefault(wm[n], []).append(n)
    out: dict[str, torch.Tensor] = {}
    for shard, ns in by_shard.items():
        with safe_open(str(d / shard), framework="pt") as fh:
            for n in ns:
                out[n] = fh.get_tensor(n)
    return out


def replace_tensors(
    base: str | os.PathLike[str],
    out: str | os.PathLike[str],
    new: Mapping[str, torch.Tensor],
) -> list[str]:
    """Copy checkpoint ``base`` to ``out`` with tensors ``new`` replaced by name.

    Every name in ``new`` must exist in ``base`` with the same shape; values
    are cast to the base tensor's dtype. Shards without a replaced tensor are
    copied byte for byte; the index (if any) is copied unchanged, since names
    and shards stay the same. Non-weight files (config, tokenizer, processor,
    sidecars) are copied. Returns the rewritten shard names. ``out`` must be
    a fresh directory (callers wrap this in ``atomic_dir``).
    """
    b, o = Path(base), Path(out)
    wm = weight_map(b)
    unknown = sorted(set(new) - set(wm))
    if unknown:
        raise ModelError(
            f"{b}: has no tensor(s) {unknown[:5]}; the replacement was made for another architecture"
        )
    o.mkdir(parents=True, exist_ok=True)
    shards = set(wm.values())
    touched = sorted({wm[n] for n in new})
    for p in b.iterdir():
        if p.is_file() and p.name not in shards:
            shutil.copy2(p, o / p.name)
    for shard in sorted(shards):
        if shard not in touched:
            shutil.copy2(b / shard, o / shard)
            continue
        with safe_open(str(b / shard), framework="pt") as fh:
            metadata = fh.metadata()
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}
        for name, value in new.items():
            if wm[name] != shard:
                continue
            old = tensors[name]
            if tuple(old.shape) != tuple(value.shape):
                raise ModelError(
                    f"tensor {name}: shape {tuple(value.shape)} vs {tuple(old.shape)} in {b}; "
                    "the replacement was trained on another model size"
                )
            tensors[name] = value.detach().to("cpu", old.dtype).contiguous()
        save_file(tensors, str(o / shard), metadata=metadata or {"format": "pt"})
    return touched
