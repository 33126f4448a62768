"""SigLIP (``google/siglip-so400m-patch14-384``): sigmoid image-text scores.

Texts must be padded to the model's full length (``padding="max_length"``),
as SigLIP was trained; the text tower pools the last position.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from vlmscope.models.families.clip import DualEncoderAdapter
from vlmscope.models.registry import ADAPTERS, TINY
from vlmscope.models.tiny_parts import save_checkpoint, seeded

__all__ = ["SiglipAdapter", "build_tiny_siglip"]


@ADAPTERS.register("siglip")
class SiglipAdapter(DualEncoderAdapter):
    family: ClassVar[str] = "siglip"
    model_types: ClassVar[tuple[str, ...]] = ("siglip",)
    examples: ClassVar[tuple[str, ...]] = ("google/siglip-so400m-patch14-384", "google/siglip-base-patch16-224")
    text_kwargs: ClassVar[dict[str, Any]] = {"padding": "max_length", "truncation": True}
    related_model_types: ClassVar[tuple[str, ...]] = ("siglip2",)


@TINY.register("siglip")
def build_tiny_siglip(out: Path, seed: int) -> None:
    """SiglipModel (32 px / patch 8 vision, 2-layer text, 32 text positions) + SiglipProcessor."""
    from transformers import SiglipConfig, SiglipImageProcessor, SiglipModel, SiglipProcessor

    from vlmscope.models.tokenizer import build_tokenizer

    tok = build_tokenizer(
        bos_token=None, eos_token="</s>", pad_token="</s>", add_eos_token=True, padding_side="right",
        model_max_length=32,
    )  # fmt: skip
    small = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4}
    config = SiglipConfig(
        text_config={**small, "vocab_size": len(tok), "max_position_embeddings": 32,
                     "pad_token_id": tok.pad_token_id, "eos_token_id": tok.eos_token_id},  # fmt: skip
        vision_config={**small, "image_size": 32, "patch_size": 8},
    )
    with seeded(seed):
        model = SiglipModel(config)
    processor = SiglipProcessor(
        image_processor=SiglipImageProcessor(size={"height": 32, "width": 32}), tokenizer=tok
    )
    save_checkpoint(model, processor, out, "siglip")
