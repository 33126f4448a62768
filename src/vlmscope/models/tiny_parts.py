"""Building blocks the tiny-checkpoint builders of several families share.

Small configs (decoder LMs, CLIP and SigLIP vision towers), the CLIP image
processor, seeded initialisation and the final save. Kept apart from
``tiny`` (the build driver) and from the family modules so that families
need not import each other, or the driver, to build their tiny checkpoints.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Callable, Iterator
from typing import Any

from vlmscope.errors import ConfigError
from vlmscope.models.registry import TINY
from vlmscope.models.sidecar import write_sidecar

__all__ = [
    "TIED_LM_INIT",
    "decoder_dims",
    "init_generative",
    "register_variants",
    "save_checkpoint",
    "seeded",
    "set_generation_ids",
    "tiny_clip_image_processor",
    "tiny_clip_vision_config",
    "tiny_siglip_vision_config",
    "tiny_lm_config",
    "tiny_text_config",
]

TIED_LM_INIT = 0.2
"""LM init std of the tiny tied-embedding LMs (PaliGemma, InternVL, Qwen-VL): with transformers' default
0.02 a 32-wide tied LM greedily repeats its last input token whatever the prompt, so batched-vs-single
generation tests could not fail."""


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Seed torch's CPU generator for deterministic init, restoring its state afterwards."""
    import torch

    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        yield
    finally:
        torch.random.set_rng_state(state)


def set_generation_ids(model: Any, tok: Any) -> None:
    """Greedy generation stops at the tokenizer's eos and pads with its pad token."""
    gc = model.generation_config
    gc.pad_token_id = tok.pad_token_id
    gc.eos_token_id = tok.eos_token_id
    gc.bos_token_id = tok.bos_token_id


def init_generative(model_cls: Any, config: Any, tok: Any, seed: int) -> Any:
    """``model_cls(config)`` initialised under ``seed``, generating with ``tok``'s eos / pad / bos ids.

    Every generative tiny builder ends its model this way; one place keeps
    the seeding (hence the weight bytes) and the generation ids alike.
    """
    with seeded(seed):
        model = model_cls(config)
    set_generation_ids(model, tok)
    return model


def register_variants(build: Callable[..., None], keyword: str, variants: dict[str, str]) -> None:
    """Register ``build`` in ``TINY`` once per build name, called with ``keyword=variants[name]``.

    For a family whose one builder makes several checkpoints (LLaVA's Llama /
    Mistral LMs, PaliGemma 1 / 2, the three Qwen-VL versions), so each build
    name is one table entry rather than one more wrapper function.
    """
    for name, value in variants.items():
        TINY.register(name)(functools.partial(build, **{keyword: value}))


def save_checkpoint(model: Any, processor: Any, out: str | os.PathLike[str], family: str, **extra: Any) -> None:
    """Weights, config and processor into ``out``, plus the sidecar naming the adapter ``family``."""
    model.save_pretrained(out)
    processor.save_pretrained(out)
    write_sidecar(out, family, **extra)


def decoder_dims(vocab_size: int, *, hidden: int = 32, layers: int = 2, heads: int = 4, kv_heads: int = 2,
                 intermediate: int = 64) -> dict[str, Any]:  # fmt: skip
    """The size keywords every tiny decoder config takes (transformers' names), 2048 positions.

    Shared by :func:`tiny_text_config` and the families whose LM config needs
    more than it offers (Gemma, M-RoPE Qwen, tied InternVL), so all tiny LMs
    are sized the same way.
    """
    return dict(
        vocab_size=vocab_size,
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        max_position_embeddings=2048,
    )


def tiny_text_config(lm: str, vocab_size: int, *, hidden: int = 32, layers: int = 2, heads: int = 4,
                     kv_heads: int = 2, intermediate: int = 64, **special: Any) -> Any:  # fmt: skip
    """A tiny decoder config: ``lm`` in llama / mistral / qwen2 / qwen3; no sliding window, untied head."""
    from transformers import LlamaConfig, MistralConfig, Qwen2Config, Qwen3Config

    classes = {"llama": LlamaConfig, "mistral": MistralConfig, "qwen2": Qwen2Config, "qwen3": Qwen3Config}
    if lm not in classes:
        raise ConfigError(f"unknown tiny LM {lm!r}; valid: {', '.join(classes)}")
    kwargs = decoder_dims(vocab_size, hidden=hidden, layers=layers, heads=heads, kv_heads=kv_heads,
                          intermediate=intermediate)  # fmt: skip
    kwargs.update(tie_word_embeddings=False, **special)
    if lm in ("qwen2", "qwen3", "mistral"):
        kwargs["sliding_window"] = None
    if lm == "qwen3":
        kwargs["head_dim"] = hidden // heads
    return classes[lm](**kwargs)


def tiny_lm_config(lm: str, tok: Any, **sizes: int) -> Any:
    """:func:`tiny_text_config` (``sizes``: its hidden / layers / ...) sized to ``tok``'s vocabulary, with its
    pad / bos / eos ids (bos None for a tokenizer without one)."""
    return tiny_text_config(lm, len(tok), pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id,
                            eos_token_id=tok.eos_token_id, **sizes)  # fmt: skip


def _tower_kwargs(image_size: int, patch_size: int, hidden: int, layers: int, heads: int,
                  intermediate: int) -> dict[str, int]:  # fmt: skip
    return dict(image_size=image_size, patch_size=patch_size, hidden_size=hidden, intermediate_size=intermediate,
                num_hidden_layers=layers, num_attention_heads=heads)  # fmt: skip


def tiny_clip_vision_config(*, image_size: int = 32, patch_size: int = 8, hidden: int = 32, layers: int = 2,
                            heads: int = 4, intermediate: int = 64) -> Any:  # fmt: skip
    """A CLIP vision tower config (CLS token first, projection as wide as the tower)."""
    from transformers import CLIPVisionConfig

    return CLIPVisionConfig(
        **_tower_kwargs(image_size, patch_size, hidden, layers, heads, intermediate), projection_dim=hidden
    )


def tiny_siglip_vision_config(*, image_size: int = 32, patch_size: int = 8, hidden: int = 32, layers: int = 2,
                              heads: int = 4, intermediate: int = 64) -> Any:  # fmt: skip
    """A SigLIP vision tower config (no CLS token)."""
    from transformers import SiglipVisionConfig

    return SiglipVisionConfig(**_tower_kwargs(image_size, patch_size, hidden, layers, heads, intermediate))


def tiny_clip_image_processor(image_size: int) -> Any:
    """CLIP's real image processor: resize shortest edge, centre crop, CLIP normalisation."""
    from transformers import CLIPImageProcessor

    return CLIPImageProcessor(
        size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size}
    )
