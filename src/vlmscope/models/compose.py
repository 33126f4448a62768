"""``vlmscope models compose``: one vision tower x one LM, each a tiny stand-in or a real checkpoint.

The unseen-class study's tower x LM ablation (STUDIES.md D) and the medical
study's base model (STUDIES.md E) are both LLaVA-style composites. A study's
``params.yaml`` names each part once: a tiny kind (``clip``, ``siglip``,
``dinov2``, ``vit``, ``mae`` for the tower; ``llama``, ``qwen3``,
``mistral`` for the LM) builds a randomly initialised stand-in of that
architecture, so ``dvc repro`` runs on a laptop; a hub id or a local
checkpoint directory loads the real part, so the same pipeline runs the real
study. The two choices are independent (a real CLIP tower with a tiny LM is
how the medical study puts its fine-tuned CLIP in front of a tiny LM).

A local directory that happens to be called like a tiny kind is written
``./clip``. The heavy lifting is :func:`~vlmscope.models.families.composite.build_composite`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["ComposeConfig", "compose", "is_tiny_lm", "is_tiny_tower"]

_TOWER_SIZES = ("image_size", "patch_size", "hidden", "layers", "heads", "intermediate")
_LM_SIZES = ("hidden", "layers", "heads", "kv_heads", "intermediate")


class ComposeConfig(BaseModel):
    """Which tower and LM to join, and how (``params.yaml`` section ``compose``)."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    tower: str = "clip"
    """A tiny kind (clip, siglip, dinov2, vit, mae), or a hub id / local directory of a real tower."""
    lm: str = "llama"
    """A tiny kind (llama, qwen3, mistral), or a hub id / local directory of a real decoder LM."""
    projector: Literal["linear", "mlp2x_gelu"] = "linear"
    feature_layer: int = -2
    """Tower hidden-state index fed to the projector (0 = embeddings, -1 = last layer)."""
    drop_cls: bool | None = None
    """Drop the tower's first token; None = drop it iff the tower has a CLS token."""
    dtype: Literal["float32", "float16", "bfloat16"] = "float32"
    seed: int = Field(default=0, ge=0)
    """Initialisation of the projector and of every tiny part."""
    revision: str | None = None
    """Hub revision of the real parts (both, when both are hub ids)."""
    tower_sizes: dict[str, int] = Field(default_factory=dict)
    """A tiny tower's sizes (image_size, patch_size, hidden, layers, heads, intermediate); unset: the smallest."""
    lm_sizes: dict[str, int] = Field(default_factory=dict)
    """A tiny LM's sizes (hidden, layers, heads, kv_heads, intermediate); unset: the smallest."""


def is_tiny_tower(tower: str) -> bool:
    from vlmscope.models.families.composite import TOWERS

    return tower in TOWERS


def is_tiny_lm(lm: str) -> bool:
    from vlmscope.models.families.composite import LMS

    return lm in LMS


def compose(cfg: ComposeConfig, out: str | os.PathLike[str]) -> Path:
    """Write the composite ``cfg`` describes to ``out`` (atomically); returns ``out``."""
    from vlmscope.errors import ConfigError
    from vlmscope.models.families.composite import build_composite, tiny_tower_config
    from vlmscope.models.families.llava import CHAT_WORDS, LLAVA_CHAT_TEMPLATE
    from vlmscope.models.tiny_parts import tiny_lm_config
    from vlmscope.models.tokenizer import build_tokenizer

    if cfg.tower_sizes and not is_tiny_tower(cfg.tower):
        raise ConfigError(f"tower_sizes apply to a tiny tower only; {cfg.tower!r} is a real checkpoint")
    if cfg.lm_sizes and not is_tiny_lm(cfg.lm):
        raise ConfigError(f"lm_sizes apply to a tiny LM only; {cfg.lm!r} is a real checkpoint")
    for what, sizes, known in (("tower_sizes", cfg.tower_sizes, _TOWER_SIZES), ("lm_sizes", cfg.lm_sizes, _LM_SIZES)):
        unknown = sorted(set(sizes) - set(known))
        if unknown:
            raise ConfigError(f"compose: {what} has unknown size(s) {unknown}; valid: {', '.join(known)}")
    vision = tiny_tower_config(cfg.tower, **cfg.tower_sizes) if is_tiny_tower(cfg.tower) else cfg.tower
    tokenizer = lm = None
    if is_tiny_lm(cfg.lm):
        tokenizer = build_tokenizer(["<image>"], chat_template=LLAVA_CHAT_TEMPLATE, extra_words=CHAT_WORDS)
        lm = tiny_lm_config(cfg.lm, tokenizer, **cfg.lm_sizes)
    return build_composite(
        vision, lm if lm is not None else cfg.lm, out=out, projector=cfg.projector, feature_layer=cfg.feature_layer,
        drop_cls=cfg.drop_cls, dtype=cfg.dtype, seed=cfg.seed, revision=cfg.revision, tokenizer=tokenizer,
    )  # fmt: skip
