"""LLaVA-OneVision (``llava-hf/llava-onevision-qwen2-7b-ov-hf``): SigLIP + Qwen2, anyres_max_9.

Same anyres layout as LLaVA-NeXT (base image grid first, then the high-res
grid with a newline column, downsampled when it exceeds 9 base crops; the
single trailing ``image_newline`` only appears for multi-image/video input,
which vlmscope does not send). SigLIP has no CLS token, so
the strategy is ``full`` and every patch becomes an image token.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from vlmscope.models.families.llava_next import CHATML_SPECIALS, CHATML_TEMPLATE, CHATML_WORDS, LlavaNextAdapter
from vlmscope.models.registry import ADAPTERS, TINY
from vlmscope.models.tiny_parts import (
    init_generative,
    save_checkpoint,
    tiny_lm_config,
    tiny_siglip_vision_config,
)

__all__ = ["LlavaOnevisionAdapter", "build_tiny_llava_onevision"]


@ADAPTERS.register("llava-onevision")
class LlavaOnevisionAdapter(LlavaNextAdapter):
    """``LlavaOnevisionForConditionalGeneration``; ChatML prompts, answers follow ``assistant\\n``."""

    family: ClassVar[str] = "llava-onevision"
    model_types: ClassVar[tuple[str, ...]] = ("llava_onevision",)
    examples: ClassVar[tuple[str, ...]] = (
        "llava-hf/llava-onevision-qwen2-7b-ov-hf",
        "llava-hf/llava-onevision-qwen2-0.5b-ov-hf",
    )
    default_prompt: ClassVar[str] = "<|im_start|>user\n{image}\n{question}<|im_end|>\n<|im_start|>assistant\n"


TINY_PINPOINTS = [[32, 32], [32, 64], [64, 32], [64, 64], [96, 96]]


@TINY.register("llava-onevision")
def build_tiny_llava_onevision(out: Path, seed: int) -> None:
    """SigLIP 32 px / patch 8 (16 tokens per crop), anyres up to 96 x 96, Qwen2 LM, ChatML."""
    from transformers import (
        LlavaOnevisionConfig,
        LlavaOnevisionForConditionalGeneration,
        LlavaOnevisionImageProcessor,
        LlavaOnevisionProcessor,
        LlavaOnevisionVideoProcessor,
    )

    from vlmscope.models.tokenizer import build_tokenizer

    tok = build_tokenizer(
        ["<image>", "<video>", *CHATML_SPECIALS], bos_token=None, eos_token="<|im_end|>",
        pad_token="<|endoftext|>", chat_template=CHATML_TEMPLATE, extra_words=CHATML_WORDS,
    )  # fmt: skip
    image_size, patch = 32, 8
    config = LlavaOnevisionConfig(
        vision_config=tiny_siglip_vision_config(image_size=image_size, patch_size=patch),
        text_config=tiny_lm_config("qwen2", tok),
        image_token_index=tok.convert_tokens_to_ids("<image>"),
        video_token_index=tok.convert_tokens_to_ids("<video>"),
        image_grid_pinpoints=TINY_PINPOINTS,
        vision_feature_layer=-1,
        vision_feature_select_strategy="full",
        vision_aspect_ratio="anyres_max_9",
    )
    model = init_generative(LlavaOnevisionForConditionalGeneration, config, tok, seed)
    size = {"height": image_size, "width": image_size}
    processor = LlavaOnevisionProcessor(
        image_processor=LlavaOnevisionImageProcessor(size=size, image_grid_pinpoints=TINY_PINPOINTS),
        tokenizer=tok,
        video_processor=LlavaOnevisionVideoProcessor(size=size),
        num_image_tokens=(image_size // patch) ** 2,
        vision_feature_select_strategy="full",
        vision_aspect_ratio="anyres_max_9",
        chat_template=CHATML_TEMPLATE,
    )
    save_checkpoint(model, processor, out, "llava-onevision", lm="qwen2", tower="siglip")
