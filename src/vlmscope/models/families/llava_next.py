"""LLaVA-NeXT (LLaVA-1.6, ``llava-hf/llava-v1.6-mistral-7b-hf``): anyres image grids.

The image is cut into a best-fit grid of crops (``image_grid_pinpoints``)
plus a downscaled base image. The LM sees, per image, first the base image's
patches (rows x cols, the grid :meth:`patch_grid` reports), then the
unpadded high-resolution patches row by row, each row closed by the
learned ``image_newline`` embedding. ``EncodedBatch.extras["image_segments"]``
records both parts per sample as ``(offset, rows, cols)`` (offset into the
sample's image tokens; the high-res ``cols`` include the newline column).

LLaVA-NeXT-Interleave checkpoints (``llava-hf/llava-interleave-qwen-7b-hf``)
are ``LlavaForConditionalGeneration`` (model_type ``llava``, SigLIP tower, no
anyres) and load through the ``llava`` family; their tiny analogue is
``build_tiny("llava-interleave")``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from vlmscope.models.adapter import EncodedBatch
from vlmscope.models.lm_adapter import ImageTextAdapter
from vlmscope.models.registry import ADAPTERS, TINY
from vlmscope.models.tiny_parts import (
    init_generative,
    save_checkpoint,
    tiny_clip_vision_config,
    tiny_lm_config,
    tiny_siglip_vision_config,
)

__all__ = [
    "LlavaNextAdapter",
    "MISTRAL_INST_TEMPLATE",
    "CHATML_TEMPLATE",
    "anyres_segments",
    "build_tiny_llava_next",
    "build_tiny_llava_interleave",
]

MISTRAL_INST_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ '<<SYS>>\n' + message['content'][0]['text'] + '\n<</SYS>>\n\n' }}"
    "{% elif message['role'] == 'user' %}{{ '[INST] ' }}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}{{ '<image>\n' }}{% endfor %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{{ content['text'] }}{% endfor %}"
    "{{ ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{% generation %}{{ ' ' + content['text'] }}{% endgeneration %}{% endfor %}{{ eos_token }}"
    "{% endif %}{% endfor %}"
)
"""Same structure as llava-hf/llava-v1.6-mistral-7b-hf: ``[INST] <image>\\n{question} [/INST]``."""

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\n' }}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}{{ '<image>\n' }}{% endfor %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{{ content['text'] }}{% endfor %}"
    "{{ '<|im_end|>\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
"""Qwen ChatML as in llava-interleave / llava-onevision: ``<|im_start|>user\\n<image>\\n{q}<|im_end|>\\n<|im_start|>assistant\\n``."""

CHATML_SPECIALS = ["<|im_start|>", "<|im_end|>"]
CHATML_WORDS = ("system", "user", "assistant", "You", "are", "a", "helpful")


def anyres_segments(processor: Any, image_size: Sequence[int], processed: Sequence[int], patch: int) -> list[tuple[int, int, int]]:
    """``[(0, rows, cols) base, (rows*cols, hr_rows, hr_cols + 1) high-res incl. newline]`` of one image.

    ``image_size`` is the original (height, width), ``processed`` the crop size
    (height, width), ``patch`` the number of pixels per patch (1 when the
    processor counts in tokens already). Mirrors the processor's own counting.
    """
    from transformers.image_processing_utils import select_best_resolution

    h, w = processed
    ph, pw = h // patch, w // patch
    best_h, best_w = select_best_resolution(list(image_size), processor.image_processor.image_grid_pinpoints)
    cur_h, cur_w = ph * (best_h // h), pw * (best_w // w)
    oh, ow = image_size
    if ow / oh > cur_w / cur_h:
        new_h = int(round(oh * (cur_w / ow), 7))
        cur_h -= ((cur_h - new_h) // 2) * 2
    else:
        new_w = int(round(ow * (cur_h / oh), 7))
        cur_w -= ((cur_w - new_w) // 2) * 2
    ratio_spec = getattr(processor, "vision_aspect_ratio", None)
    if ratio_spec:  # LLaVA-OneVision downsamples big grids to at most N base-sized crops
        max_n = int(str(ratio_spec).removeprefix("anyres_max_"))
        ratio = math.sqrt(cur_h * cur_w / (max_n * ph**2))
        if ratio > 1.1:
            cur_h, cur_w = int(cur_h // ratio), int(cur_w // ratio)
    return [(0, ph, pw), (ph * pw, cur_h, cur_w + 1)]


@ADAPTERS.register("llava-next")
class LlavaNextAdapter(ImageTextAdapter):
    """``LlavaNextForConditionalGeneration`` (Mistral / Vicuna / Llama-3 LMs)."""

    family: ClassVar[str] = "llava-next"
    model_types: ClassVar[tuple[str, ...]] = ("llava_next",)
    examples: ClassVar[tuple[str, ...]] = (
        "llava-hf/llava-v1.6-mistral-7b-hf",
        "llava-hf/llava-v1.6-vicuna-7b-hf",
        "llava-hf/llama3-llava-next-8b-hf",
    )
    projector_paths: ClassVar[tuple[str, ...]] = ("model.multi_modal_projector", "model.image_newline")
    default_prompt: ClassVar[str] = "[INST] {image}\n{question} [/INST]"
    direct_vision_feed: ClassVar[bool] = True

    def _patch_pixels(self) -> int:
        return int(self.config.vision_config.patch_size)

    def _segments(self, inputs: dict[str, Any], index: int) -> list[tuple[int, int, int]]:
        h, w = (int(x) for x in inputs["pixel_values"].shape[-2:])
        size = [int(x) for x in inputs["image_sizes"][index].tolist()]
        return anyres_segments(self.processor, size, (h, w), self._patch_pixels())

    def patch_grid(self, inputs: dict[str, Any], index: int, n_image_tokens: int) -> tuple[int, int]:
        """The base image's grid: the first rows * cols image tokens of the sample."""
        _, rows, cols = self._segments(inputs, index)[0]
        return rows, cols

    def finish_batch(self, batch: EncodedBatch) -> EncodedBatch:
        """Records each sample's base and high-res segments in ``extras["image_segments"]``."""
        batch.extras["image_segments"] = [self._segments(batch.inputs, i) for i in range(len(batch.patch_grids))]
        return batch


# -- tiny checkpoints --------------------------------------------------------------

TINY_PINPOINTS = [[32, 64], [64, 32], [64, 64]]


def build_tiny_llava_next(out: Path, seed: int) -> None:
    """LlavaNextForConditionalGeneration: CLIP 32 px / patch 8, anyres up to 64 x 64, Mistral LM, [INST] template."""
    from transformers import (
        LlavaNextConfig,
        LlavaNextForConditionalGeneration,
        LlavaNextImageProcessor,
        LlavaNextProcessor,
    )

    from vlmscope.models.tokenizer import build_tokenizer

    tok = build_tokenizer(["<image>"], chat_template=MISTRAL_INST_TEMPLATE, extra_words=("INST", "SYS"))
    image_size, patch = 32, 8
    config = LlavaNextConfig(
        vision_config=tiny_clip_vision_config(image_size=image_size, patch_size=patch),
        text_config=tiny_lm_config("mistral", tok),
        image_token_index=tok.convert_tokens_to_ids("<image>"),
        image_grid_pinpoints=TINY_PINPOINTS,
        image_seq_length=(image_size // patch) ** 2,
        vision_feature_layer=-2,
        vision_feature_select_strategy="default",
    )
    model = init_generative(LlavaNextForConditionalGeneration, config, tok, seed)
    image_processor = LlavaNextImageProcessor(
        size={"shortest_edge": image_size},
        crop_size={"height": image_size, "width": image_size},
        image_grid_pinpoints=TINY_PINPOINTS,
    )
    processor = LlavaNextProcessor(
        image_processor=image_processor,
        tokenizer=tok,
        patch_size=patch,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        chat_template=MISTRAL_INST_TEMPLATE,
    )
    save_checkpoint(model, processor, out, "llava-next", lm="mistral")


def build_tiny_llava_interleave(out: Path, seed: int) -> None:
    """LLaVA-NeXT-Interleave-like: LlavaForConditionalGeneration, SigLIP tower ("full", layer -1), Qwen2, ChatML."""
    from transformers import LlavaConfig, LlavaForConditionalGeneration, LlavaProcessor, SiglipImageProcessor

    from vlmscope.models.tokenizer import build_tokenizer

    tok = build_tokenizer(
        ["<image>", *CHATML_SPECIALS], bos_token=None, eos_token="<|im_end|>", pad_token="<|endoftext|>",
        chat_template=CHATML_TEMPLATE, extra_words=CHATML_WORDS,
    )  # fmt: skip
    image_size, patch = 32, 8
    config = LlavaConfig(
        vision_config=tiny_siglip_vision_config(image_size=image_size, patch_size=patch),
        text_config=tiny_lm_config("qwen2", tok),
        image_token_index=tok.convert_tokens_to_ids("<image>"),
        image_seq_length=(image_size // patch) ** 2,
        vision_feature_layer=-1,
        vision_feature_select_strategy="full",
    )
    model = init_generative(LlavaForConditionalGeneration, config, tok, seed)
    processor = LlavaProcessor(
        image_processor=SiglipImageProcessor(size={"height": image_size, "width": image_size}),
        tokenizer=tok,
        patch_size=patch,
        vision_feature_select_strategy="full",
        num_additional_image_tokens=0,
        chat_template=CHATML_TEMPLATE,
    )
    save_checkpoint(model, processor, out, "llava", lm="qwen2", tower="siglip")


TINY.register("llava-next")(build_tiny_llava_next)
TINY.register("llava-interleave")(build_tiny_llava_interleave)
