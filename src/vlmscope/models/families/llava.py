"""LLaVA-1.5 (``llava-hf/llava-1.5-7b-hf``) and Mistral-based LLaVA such as LLaVA-Med.

Module tree (transformers 5): ``model.vision_tower`` (CLIP vision),
``model.multi_modal_projector`` (linear_1, act, linear_2),
``model.language_model`` (Llama / Mistral decoder: ``layers``, ``norm``),
``lm_head``. One image becomes (H/p) x (W/p) image tokens (CLS dropped with
``vision_feature_select_strategy="default"``): 24 x 24 = 576 for 336 px / 14.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from vlmscope.errors import ConfigError
from vlmscope.models.adapter import ADAPTERS
from vlmscope.models.lm_adapter import ImageTextAdapter
from vlmscope.models.tiny import TINY, seeded, write_sidecar

__all__ = [
    "LlavaAdapter",
    "LLAVA_CHAT_TEMPLATE",
    "tiny_text_config",
    "tiny_clip_vision_config",
    "tiny_clip_image_processor",
    "build_tiny_llava",
    "set_generation_ids",
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


# -- tiny building blocks shared by the LLaVA-like families ---------------------


def tiny_text_config(lm: str, vocab_size: int, *, hidden: int = 32, layers: int = 2, heads: int = 4,
                     kv_heads: int = 2, intermediate: int = 64, **special: Any) -> Any:  # fmt: skip
    """A tiny decoder config: ``lm`` in llama / mistral / qwen2 / qwen3; no sliding window, untied head."""
    from transformers import LlamaConfig, MistralConfig, Qwen2Config, Qwen3Config

    classes = {"llama": LlamaConfig, "mistral": MistralConfig, "qwen2": Qwen2Config, "qwen3": Qwen3Config}
    if lm not in classes:
        raise ConfigError(f"unknown tiny LM {lm!r}; valid: {', '.join(classes)}")
    kwargs: dict[str, Any] = dict(
        vocab_size=vocab_size,
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        max_position_embeddings=2048,
        tie_word_embeddings=False,
        **special,
    )
    if lm in ("qwen2", "qwen3", "mistral"):
        kwargs["sliding_window"] = None
    if lm == "qwen3":
        kwargs["head_dim"] = hidden // heads
    return classes[lm](**kwargs)


def tiny_clip_vision_config(*, image_size: int = 32, patch_size: int = 8, hidden: int = 32, layers: int = 2,
                            heads: int = 4, intermediate: int = 64) -> Any:  # fmt: skip
    from transformers import CLIPVisionConfig

    return CLIPVisionConfig(
        image_size=image_size,
        patch_size=patch_size,
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        projection_dim=hidden,
    )


def tiny_clip_image_processor(image_size: int) -> Any:
    """CLIP's real image processor: resize shortest edge, centre crop, CLIP normalisation."""
    from transformers import CLIPImageProcessor

    return CLIPImageProcessor(
        size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size}
    )


def build_tiny_llava(out: Path, seed: int, *, lm: str = "llama") -> None:
    """LlavaForConditionalGeneration: CLIP vision (32 px, patch 8 -> 16 image tokens) + a 2-layer LM."""
    from transformers import LlavaConfig, LlavaForConditionalGeneration, LlavaProcessor

    from vlmscope.models.tokenizer import build_tokenizer

    tok = build_tokenizer(["<image>"], chat_template=LLAVA_CHAT_TEMPLATE, extra_words=CHAT_WORDS)
    image_size, patch = 32, 8
    config = LlavaConfig(
        vision_config=tiny_clip_vision_config(image_size=image_size, patch_size=patch),
        text_config=tiny_text_config(
            lm, len(tok), pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id
        ),
        image_token_index=tok.convert_tokens_to_ids("<image>"),
        image_seq_length=(image_size // patch) ** 2,
        vision_feature_layer=-2,
        vision_feature_select_strategy="default",
    )
    with seeded(seed):
        model = LlavaForConditionalGeneration(config)
    set_generation_ids(model, tok)
    processor = LlavaProcessor(
        image_processor=tiny_clip_image_processor(image_size),
        tokenizer=tok,
        patch_size=patch,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        chat_template=LLAVA_CHAT_TEMPLATE,
    )
    model.save_pretrained(out)
    processor.save_pretrained(out)
    write_sidecar(out, "llava", lm=lm)


def set_generation_ids(model: Any, tok: Any) -> None:
    """Greedy generation stops at the tokenizer's eos and pads with its pad token."""
    gc = model.generation_config
    gc.pad_token_id = tok.pad_token_id
    gc.eos_token_id = tok.eos_token_id
    gc.bos_token_id = tok.bos_token_id


@TINY.register("llava")
def _tiny_llava(out: Path, seed: int) -> None:
    build_tiny_llava(out, seed, lm="llama")


@TINY.register("llava-mistral")
def _tiny_llava_mistral(out: Path, seed: int) -> None:
    """LLaVA-Med-like: the same LLaVA wrapper around a Mistral LM."""
    build_tiny_llava(out, seed, lm="mistral")
