"""One entry for ``vlmscope merge`` and the pipeline's merge stage: pick the merge for what is given.

The CLI verb and ``stages/merge.py`` take the same four kinds of input; which
function folds each in (and that ``mm_projector.bin`` files go through the
pickle-safe reader, not the safetensors path) is decided here once, so a
study pipeline pointed at a released ``.bin`` merges it exactly as the verb
does.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from vlmscope.errors import ConfigError

__all__ = ["merge_checkpoint"]

PathLike = str | os.PathLike[str]


def merge_checkpoint(
    base: PathLike,
    out: PathLike,
    *,
    adapter: PathLike | None = None,
    projector: PathLike | None = None,
    tensors: PathLike | None = None,
    vision_tower: PathLike | None = None,
    revision: str | None = None,
) -> dict[str, Any]:
    """Merge exactly one of ``adapter``, ``projector``, ``tensors`` or ``vision_tower`` into ``base``; ``merge_info``.

    ``projector``: a ``projector.safetensors``, a ``train projector`` output,
    or an original LLaVA-codebase ``mm_projector.bin``.
    """
    given = [x for x in (adapter, projector, tensors, vision_tower) if x is not None]
    if len(given) != 1:
        raise ConfigError("pass exactly one of --adapter, --projector, --tensors or --vision-tower")
    if adapter is not None:
        from vlmscope.models.merge import merge_adapter

        return merge_adapter(base, adapter, out, revision=revision)
    if vision_tower is not None:
        from vlmscope.models.tower_swap import merge_vision_tower

        return merge_vision_tower(base, vision_tower, out, revision=revision)
    if projector is not None and Path(projector).suffix == ".bin":
        from vlmscope.models.projector_bin import merge_projector_bin

        return merge_projector_bin(base, projector, out, revision=revision)
    from vlmscope.models.merge import merge_tensors

    return merge_tensors(base, given[0], out, revision=revision)
