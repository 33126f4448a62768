"""Swap a fine-tuned CLIP vision tower into a LLaVA-style checkpoint (``vlmscope merge --vision-tower``).

Seed 001's best result came from a CLIP image tower first fine-tuned as a
classifier (``vlmscope train clip``), then placed inside a LLaVA-style model
whose projector was trained on top of it. The tower directory is a
``train clip`` output or any CLIP(Vision)Model checkpoint: its vision tensors
are named ``vision_model.*``; the LLaVA checkpoint names the same tensors
``vision_tower.*`` (vlmscope composites and transformers >= 5 save the tower
without its ``vision_model.`` level; older llava-hf checkpoints keep
``vision_tower.vision_model.*``; transformers >= 4.52 layouts add a
``model.`` in front). Names are matched after dropping those prefixes.

What is checked, so that a swap is either exact or refused: every tower
tensor of the base is covered, every vision tensor of the source lands on
one, shapes agree, and so do the config facts that change the function
without changing a shape (activation, layer-norm epsilon, image and patch
size). The source's text tower, projections and logit
scale/bias are not vision tensors and are ignored (and recorded as such).
Everything outside the base's tower is copied unchanged.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from vlmscope.errors import ModelError, NotFound
from vlmscope.io.jsonfile import read_json_object
from vlmscope.io.outguard import check_out
from vlmscope.models.merge import merged_revision, write_merged
from vlmscope.models.ref import resolve_model_dir
from vlmscope.models.weights import module_prefix, read_tensors, replace_tensors, tensor_shapes

__all__ = ["TOWER_SOURCE_PREFIX", "check_tower_config", "map_tower", "merge_vision_tower"]

TOWER_SOURCE_PREFIX = "vision_model."
"""Where a CLIPModel / CLIPVisionModel (and SigLIP) checkpoint keeps its image encoder."""

_BASE_TOWER = "vision_tower."

_SAME_FUNCTION = ("hidden_act", "layer_norm_eps", "image_size", "patch_size")
"""Vision-config fields two towers with equal shapes must also share to compute the same function."""


def _base_tower(names: list[str], where: Path) -> dict[str, str]:
    """relative name -> full name of the base's vision-tower tensors (see the module docstring)."""
    tower = [n for n in names if _BASE_TOWER in n]
    prefix = module_prefix(tower, _BASE_TOWER, where=where, what="LLaVA-style vision_tower",
                           hint="--vision-tower swaps the tower of a LLaVA-style (llava, composite) checkpoint")  # fmt: skip
    inner = [n[len(prefix):] for n in tower if n.startswith(prefix)]
    if inner and all(r.startswith(TOWER_SOURCE_PREFIX) for r in inner):
        prefix += TOWER_SOURCE_PREFIX
    return {n[len(prefix):]: n for n in tower if n.startswith(prefix)}


def map_tower(
    source: dict[str, tuple[int, ...]], base: dict[str, tuple[int, ...]], *, where: str = "tower"
) -> tuple[dict[str, str], list[str]]:
    """Match the source's vision tensors to the base's tower tensors by name; shapes checked.

    Args:
        source: the tower checkpoint's tensors, name -> shape.
        base: the LLaVA-style checkpoint's tensors, name -> shape.
        where: the tower directory, for messages.

    Returns:
        ``(source name -> base name, ignored source names)``; ignored are the
        non-vision tensors (text tower, projections, logit scale).

    Raises:
        ModelError: no vision tensors in the source, base tower tensors left
        uncovered (listed), source vision tensors the base tower lacks, or a
        shape mismatch (naming the tensor and both shapes).
    """
    tower = _base_tower(sorted(base), Path(where))
    vision = {n[len(TOWER_SOURCE_PREFIX):]: n for n in source if n.startswith(TOWER_SOURCE_PREFIX)}
    ignored = sorted(n for n in source if not n.startswith(TOWER_SOURCE_PREFIX))
    if not vision:
        raise ModelError(
            f"{where}: no {TOWER_SOURCE_PREFIX}* tensors; expected a `train clip` output or a CLIP(Vision)Model checkpoint"
        )
    missing = sorted(tower[r] for r in tower if r not in vision)
    if missing:
        raise ModelError(
            f"{where}: does not cover {len(missing)} of the base's vision-tower tensors: {missing[:8]}; "
            "the tower is another architecture than the base's"
        )
    extra = sorted(vision[r] for r in vision if r not in tower)
    if extra:
        raise ModelError(f"{where}: vision tensor(s) {extra[:8]} have no place in the base's vision tower")
    for rel, name in vision.items():
        if tuple(source[name]) != tuple(base[tower[rel]]):
            raise ModelError(
                f"{where}: tensor {name}: shape {tuple(source[name])} vs {tuple(base[tower[rel]])} of "
                f"{tower[rel]} in the base; the tower is another size than the base's"
            )
    return {vision[r]: tower[r] for r in sorted(vision)}, ignored


def check_tower_config(tower: dict[str, Any], base: dict[str, Any], *, where: str = "tower") -> None:
    """Refuse a tower whose vision config differs from the base's ``vision_config`` in :data:`_SAME_FUNCTION`.

    ``tower`` is a CLIPModel config (its ``vision_config`` is used) or a
    CLIPVisionModel config; fields either side lacks are not compared.
    """
    vt = tower.get("vision_config") or tower
    vb = base.get("vision_config") or {}
    differ = [f"{k} {vt[k]!r} vs {vb[k]!r}" for k in _SAME_FUNCTION if k in vt and k in vb and vt[k] != vb[k]]
    if differ:
        raise ModelError(
            f"{where}: vision config differs from the base's ({'; '.join(differ)}); the swapped tower "
            "would compute another function than the one it was trained as"
        )


def merge_vision_tower(
    base: str | os.PathLike[str],
    tower_dir: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    revision: str | None = None,
) -> dict[str, Any]:
    """Copy LLaVA-style checkpoint ``base`` to ``out`` with its vision tower taken from ``tower_dir``.

    ``base``: a checkpoint directory, a ``vlmscope-ref.json`` pin or a cached
    hub id (at ``revision``). ``tower_dir``: a ``vlmscope train clip`` output
    or a CLIP(Vision)Model checkpoint directory. The tower's tensors are cast
    to the base's dtypes. Returns ``merge_info.json``'s content: base, tower,
    the replaced base tensors and the top-level groups of ignored source tensors.

    Raises:
        NotFound: ``tower_dir`` is not a checkpoint directory.
        ModelError: see :func:`map_tower`.
    """
    check_out(out, "model", [base, tower_dir])
    base_dir, revision = resolve_model_dir(base, revision=revision)
    src = Path(tower_dir)
    if not src.is_dir():
        raise NotFound(f"{src}: no such directory (expected a `train clip` output or a CLIP checkpoint directory)")
    names, ignored = map_tower(tensor_shapes(src), tensor_shapes(base_dir), where=str(src))
    check_tower_config(read_json_object(src / "config.json", ModelError), read_json_object(base_dir / "config.json", ModelError),
                       where=str(src))  # fmt: skip
    new: dict[str, torch.Tensor] = {names[n]: t for n, t in read_tensors(src, names).items()}
    source = {
        "base": str(base), **merged_revision(revision), "tower": str(src),
        "replaced": sorted(new), "ignored": sorted({n.split(".", 1)[0] for n in ignored}),
    }  # fmt: skip
    return write_merged(out, source, lambda tmp: {"shards": replace_tensors(base_dir, tmp, new)})
