"""LLaVA-1.5 (``llava-hf/llava-1.5-7b-hf``) and Mistral-based LLaVA such as LLaVA-Med.

Module tree (transformers 5): ``model.vision_tower`` (CLIP vision),
``model.multi_modal_projector`` (linear_1, act, linear_2),
``model.language_model`` (Llama / Mistral decoder: ``layers``, ``norm``),
``lm_head``. One image becomes (H/p) x (W/p) image tokens (CLS dropped with
``vision_feature_select_strategy="default"``): 24 x 24 = 576 for 336 px / 14.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from vlmscope.models.lm_adapter import ImageTextAdapter
from vlmscope.models.registry import ADAPTERS
from vlmscope.models.tiny_parts import (
    init_generative,
    register_variants,
    save_checkpoint,
    tiny_clip_image_processor,
    tiny_clip_vision_config,
    tiny_lm_config,
)

__all__ = [
    "LlavaAdapter",
    "LLAVA_CHAT_TEMPLATE",
    "build_tiny_llava",
    "CHAT_WORDS",
]

LLAVA_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] != 'system' %}{{ message['role'].upper() + ': ' }}{% endif %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}{{ '<image>\n' }}{% endfor %}"
    "{% if message['role'] != 'assistant' %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{{ content['text'] + ' ' }}{% endfor %}"
    "{% else %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{% generation %}{{ content['text'] + ' ' }}{% endgeneration %}{% endfor %}"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)
"""Same structure as llava-hf/llava-1.5-7b-hf: ``USER: <image>\\n{question} ASSISTANT:``."""

CHAT_WORDS = ("USER", "ASSISTANT", "user", "assistant", "system")


@ADAPTERS.register("llava")
class LlavaAdapter(ImageTextAdapter):
    """LLaVA-1.5-style ``LlavaForConditionalGeneration`` (Llama or Mistral LM)."""

    family: ClassVar[str] = "llava"
    model_types: ClassVar[tuple[str, ...]] = ("llava",)
    examples: ClassVar[tuple[str, ...]] = (
        "llava-hf/llava-1.5-7b-hf",
        "llava-hf/llava-1.5-13b-hf",
        "chaoyinshe/llava-med-v1.5-mistral-7b-hf",
    )
    default_prompt: ClassVar[str] = "USER: {image}\n{question} ASSISTANT:"
    direct_vision_feed: ClassVar[bool] = True


# -- tiny checkpoints -----------------------------------------------------------


def build_tiny_llava(out: Path, seed: int, *, lm: str = "llama") -> None:
    """LlavaForConditionalGeneration: CLIP vision (32 px, patch 8 -> 16 image tokens) + a 2-layer LM."""
    from transformers import LlavaConfig, LlavaForConditionalGeneration, LlavaProcessor

    from vlmscope.models.tokenizer import build_tokenizer

    tok = build_tokenizer(["<image>"], chat_template=LLAVA_CHAT_TEMPLATE, extra_words=CHAT_WORDS)
    image_size, patch = 32, 8
    config = LlavaConfig(
        vision_config=tiny_clip_vision_config(image_size=image_size, patch_size=patch),
        text_config=tiny_lm_config(lm, tok),
        image_token_index=tok.convert_tokens_to_ids("<image>"),
        image_seq_length=(image_size // patch) ** 2,
        vision_feature_layer=-2,
        vision_feature_select_strategy="default",
    )
    model = init_generative(LlavaForConditionalGeneration, config, tok, seed)
    processor = LlavaProcessor(
        image_processor=tiny_clip_image_processor(image_size),
        tokenizer=tok,
        patch_size=patch,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        chat_template=LLAVA_CHAT_TEMPLATE,
    )
    save_checkpoint(model, processor, out, "llava", lm=lm)


register_variants(build_tiny_llava, "lm", {"llava": "llama", "llava-mistral": "mistral"})
"""``llava-mistral`` is LLaVA-Med-like: the same LLaVA wrapper around a Mistral LM."""
