"""InternVL 2.5 / 3 / 3.5 in transformers' native format (``OpenGVLab/InternVL3-1B-hf``, ...).

Module tree (transformers 5): ``model.vision_tower`` (InternViT),
``model.multi_modal_projector`` (LayerNorm, linear_1, GELU, linear_2),
``model.language_model`` (Qwen2 / Qwen3 decoder: ``layers``, ``norm``),
``lm_head`` (tied to the input embedding on most sizes).

Image tokens: the image processor (``GotOcr2ImageProcessor``) cuts each image
into ``k`` tiles of ``image_size`` px (``k = 1`` when tiling is off or the
image is small; otherwise a grid of tiles chosen by aspect ratio plus a
thumbnail), the ViT turns each tile into ``(image_size / patch)^2`` patches,
and a 0.5 pixel shuffle merges 2 x 2 patches, so each tile becomes ``s x s``
``<IMG_CONTEXT>`` tokens (``s^2 = image_seq_length``, 16 x 16 = 256 for
448 px / 14), row-major; the ``k`` tiles follow each other between ``<img>``
and ``</img>``. The patch grid of one sample is therefore ``(s, s)`` for one
tile and ``(k * s, s)`` (tiles stacked top to bottom in token order, the
thumbnail last) for several; only ``<IMG_CONTEXT>`` positions are image
tokens (``config.image_token_id``).

The LM is a plain 1-D RoPE decoder, so ``position_ids`` come from the
attention mask (exact left-padding invariance). Prompts are ChatML with
``<IMG_CONTEXT>\\n`` before the question; answers follow
``<|im_start|>assistant\\n`` without a leading space.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, ClassVar

from vlmscope.models.lm_adapter import ImageTextAdapter
from vlmscope.models.registry import ADAPTERS, TINY
from vlmscope.models.tiny_parts import TIED_LM_INIT, decoder_dims, init_generative, save_checkpoint

__all__ = [
    "INTERNVL_CHAT_TEMPLATE",
    "INTERNVL_NAMED_TOKENS",
    "InternVLAdapter",
    "build_tiny_internvl",
    "tile_grid",
]

INTERNVL_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' }}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' %}{{ '<IMG_CONTEXT>\n' }}"
    "{% elif content['type'] == 'video' %}{{ '<video>\n' }}"
    "{% elif content['type'] == 'text' %}{{ content['text'] }}{% endif %}"
    "{% endfor %}{% endif %}{{ '<|im_end|>\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
"""The structure of OpenGVLab/InternVL3-*-hf's template (no default system turn)."""

INTERNVL_NAMED_TOKENS: dict[str, str] = {
    "start_image_token": "<img>",
    "end_image_token": "</img>",
    "context_image_token": "<IMG_CONTEXT>",
    "video_token": "<video>",
}
"""The tokenizer attributes ``InternVLProcessor`` reads (``tokenizer.start_image_token`` ...)."""

CHAT_WORDS = ("user", "assistant", "system")


def tile_grid(n_image_tokens: int, image_seq_length: int) -> tuple[int, int] | None:
    """(k * s, s) for ``n_image_tokens = k * s * s`` with ``s * s = image_seq_length``; None if it does not divide."""
    s = math.isqrt(image_seq_length)
    if s < 1 or s * s != image_seq_length or n_image_tokens % image_seq_length:
        return None
    return (n_image_tokens // s, s)


@ADAPTERS.register("internvl")
class InternVLAdapter(ImageTextAdapter):
    """``InternVLForConditionalGeneration`` (see the module docstring)."""

    family: ClassVar[str] = "internvl"
    model_types: ClassVar[tuple[str, ...]] = ("internvl",)
    examples: ClassVar[tuple[str, ...]] = (
        "OpenGVLab/InternVL3-1B-hf",
        "OpenGVLab/InternVL3-8B-hf",
        "OpenGVLab/InternVL3_5-8B-HF",
    )
    default_prompt: ClassVar[str] = "<|im_start|>user\n{image}\n{question}<|im_end|>\n<|im_start|>assistant\n"
    answer_prefix: ClassVar[str] = ""
    positions_from_mask: ClassVar[bool] = True

    @property
    def image_seq_length(self) -> int:
        """``<IMG_CONTEXT>`` tokens per tile, from the processor (falls back to the config)."""
        n = getattr(self.processor, "image_seq_length", None) or getattr(self.config, "image_seq_length", None)
        return int(n) if n else 0

    def patch_grid(self, inputs: dict[str, Any], index: int, n_image_tokens: int) -> tuple[int, int]:
        """(s, s) for one tile, (k * s, s) for k tiles stacked in token order; (1, n) if unknown."""
        grid = tile_grid(n_image_tokens, self.image_seq_length) if n_image_tokens else None
        return grid if grid is not None else (1, n_image_tokens)


# -- tiny checkpoint -------------------------------------------------------------

_TILE, _PATCH = 48, 8
"""48 px tiles, 8 px patches: 6 x 6 patches -> pixel shuffle -> 3 x 3 = 9 tokens per tile."""


def _named_tokenizer(base: Any, chat_template: str) -> Any:
    """Re-wrap a :func:`build_tokenizer` result with InternVL's named special tokens.

    ``InternVLProcessor`` reads ``tokenizer.start_image_token`` /
    ``context_image_token`` / ... (and their ``*_id``); transformers keeps such
    ``*_token`` constructor arguments as named special tokens and saves them in
    ``tokenizer_config.json``, so they survive ``save_pretrained``.
    """
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(
        tokenizer_object=base.backend_tokenizer,
        pad_token=base.pad_token,
        eos_token=base.eos_token,
        extra_special_tokens=list(base.extra_special_tokens),
        model_max_length=base.model_max_length,
        padding_side="left",
        clean_up_tokenization_spaces=False,
        chat_template=chat_template,
        **INTERNVL_NAMED_TOKENS,
    )


def build_tiny_internvl(out: Path, seed: int) -> None:
    """InternVLForConditionalGeneration: 1-block InternViT (48 px tiles) + 2-layer Qwen2 LM, tied embeddings.

    The image processor keeps ``max_patches=1`` (one tile, 9 image tokens per
    image) so tests stay fast; raise ``processor.image_processor.max_patches``
    to exercise tiling.
    """
    from transformers import (
        GotOcr2ImageProcessor,
        InternVLConfig,
        InternVLForConditionalGeneration,
        InternVLProcessor,
        InternVLVideoProcessor,
        Qwen2Config,
    )

    from vlmscope.models.tokenizer import build_tokenizer

    specials = ["<|im_start|>", *INTERNVL_NAMED_TOKENS.values()]
    base = build_tokenizer(specials, pad_token="<|endoftext|>", bos_token=None, eos_token="<|im_end|>",
                           extra_words=CHAT_WORDS)  # fmt: skip
    tok = _named_tokenizer(base, INTERNVL_CHAT_TEMPLATE)
    per_tile = ((_TILE // _PATCH) // 2) ** 2
    text = Qwen2Config(
        **decoder_dims(len(tok)), sliding_window=None, tie_word_embeddings=True, initializer_range=TIED_LM_INIT,
        pad_token_id=tok.pad_token_id, bos_token_id=None, eos_token_id=tok.eos_token_id,
    )  # fmt: skip
    config = InternVLConfig(
        vision_config=dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                           image_size=_TILE, patch_size=_PATCH),  # fmt: skip
        text_config=text,
        image_token_id=int(tok.convert_tokens_to_ids(INTERNVL_NAMED_TOKENS["context_image_token"])),
        image_seq_length=per_tile,
        downsample_ratio=0.5,
        vision_feature_layer=-1,
        vision_feature_select_strategy="default",
        tie_word_embeddings=True,
    )
    model = init_generative(InternVLForConditionalGeneration, config, tok, seed)  # bos None: the tokenizer has none
    size = {"height": _TILE, "width": _TILE}
    processor = InternVLProcessor(
        image_processor=GotOcr2ImageProcessor(size=size, crop_to_patches=True, min_patches=1, max_patches=1),
        tokenizer=tok,
        video_processor=InternVLVideoProcessor(size=size),
        image_seq_length=per_tile,
        chat_template=INTERNVL_CHAT_TEMPLATE,
    )
    save_checkpoint(model, processor, out, "internvl")


@TINY.register("internvl")
def _tiny_internvl(out: Path, seed: int) -> None:
    build_tiny_internvl(out, seed)
