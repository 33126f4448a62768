"""Qwen2-VL, Qwen2.5-VL and Qwen3-VL (``Qwen/Qwen2-VL-7B-Instruct``, ``Qwen/Qwen3-VL-4B-Instruct``, ...).

Module tree (transformers 5): ``model.visual`` (the ViT, with the patch
``merger`` (and for Qwen3-VL the ``deepstack_merger_list``) inside it; these
mergers are the projector), ``model.language_model`` (Qwen2 / Qwen3 decoder:
``layers``, ``norm``), ``lm_head``.

What differs from the LLaVA-like default:

- dynamic resolution: the image processor resizes each image to a multiple of
  ``patch_size * merge_size`` within ``[min_pixels, max_pixels]`` and reports
  ``image_grid_thw`` (t, h, w) in patches; the LM sees ``(h / merge) x (w /
  merge)`` image tokens in row-major order, which is the patch grid;
- multimodal RoPE: the model computes 3-D position ids itself from
  ``input_ids``, ``mm_token_type_ids``, ``image_grid_thw`` and
  ``attention_mask`` (left padding excluded), so the adapter must NOT pass
  1-D ``position_ids`` (``positions_from_mask = False``); the conformance test
  checks that left padding leaves the last prompt token's hidden states
  unchanged;
- ChatML prompts: the generation prefix is ``<|im_start|>assistant\\n``, so
  an appended answer needs no leading space (``answer_prefix = ""``);
- Qwen3-VL's deepstack adds merged features of early vision layers to the
  image-token hidden states after the first decoder layers. Hidden states
  are recorded at each decoder layer's output, i.e. before that addition:
  text positions (the last prompt token) are unaffected, image positions
  of layers 1..len(deepstack) exclude the injected features.

Shapes: B batch, T padded length.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from vlmscope.errors import ConfigError
from vlmscope.models.lm_adapter import ImageTextAdapter
from vlmscope.models.registry import ADAPTERS
from vlmscope.models.tiny_parts import TIED_LM_INIT, decoder_dims, init_generative, register_variants, save_checkpoint

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn

__all__ = [
    "QWEN2_VL_CHAT_TEMPLATE",
    "QWEN3_VL_CHAT_TEMPLATE",
    "QwenVLAdapter",
    "Qwen2VLAdapter",
    "Qwen25VLAdapter",
    "Qwen3VLAdapter",
    "TinyQwenSpec",
    "TINY_QWEN",
    "build_tiny_qwen_vl",
    "split_projector",
]

_CHATML_BODY = (
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif content['type'] == 'text' %}{{ content['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n"
)
QWEN2_VL_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    + _CHATML_BODY
    + "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
"""Qwen2-VL / Qwen2.5-VL Instruct's structure: default system turn, ChatML, vision markers around the image pad."""
QWEN3_VL_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    + _CHATML_BODY
    + "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
"""Qwen3-VL Instruct's structure: no default system turn."""

QWEN_SPECIAL_TOKENS = ("<|im_start|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>")
"""Besides pad ``<|endoftext|>`` and eos ``<|im_end|>``; the processor finds the pads by name."""
CHAT_WORDS = ("user", "assistant", "system", "You", "are", "helpful")


def split_projector(adapter: ImageTextAdapter) -> dict[str, list[nn.Parameter]]:
    """:meth:`ImageTextAdapter.parameter_groups` with projector modules that sit INSIDE the vision tower.

    The generic grouping takes the vision tower first, so a merger nested in
    ``model.visual`` would land in ``vision``; this moves every parameter of
    ``adapter.projector_paths`` to ``projector`` (order kept).
    """
    groups = ImageTextAdapter.parameter_groups(adapter)
    proj = {id(p) for path in adapter.projector_paths for p in adapter._module(path).parameters()}
    moved = [p for p in groups["vision"] if id(p) in proj]
    groups["vision"] = [p for p in groups["vision"] if id(p) not in proj]
    groups["projector"] = moved + [p for p in groups["projector"] if id(p) not in proj]
    return groups


class QwenVLAdapter(ImageTextAdapter):
    """Shared behaviour of the three Qwen-VL generations (see the module docstring)."""

    family: ClassVar[str] = "qwen-vl"
    vision_paths: ClassVar[tuple[str, ...]] = ("model.visual",)
    projector_paths: ClassVar[tuple[str, ...]] = ("model.visual.merger",)
    default_prompt: ClassVar[str] = (
        "<|im_start|>user\n<|vision_start|>{image}<|vision_end|>{question}<|im_end|>\n<|im_start|>assistant\n"
    )
    answer_prefix: ClassVar[str] = ""
    positions_from_mask: ClassVar[bool] = False

    def patch_grid(self, inputs: dict[str, Any], index: int, n_image_tokens: int) -> tuple[int, int]:
        """(h / merge, w / merge) from ``image_grid_thw[index]`` (one image per sample, in batch order)."""
        thw = inputs.get("image_grid_thw")
        merge = int(getattr(self.config.vision_config, "spatial_merge_size", 1))
        if thw is not None and index < len(thw):
            t, h, w = (int(x) for x in thw[index])
            rows, cols = h // merge, w // merge
            if t * rows * cols == n_image_tokens:
                return (t * rows, cols)
        return (1, n_image_tokens)

    def vision_blocks(self) -> nn.ModuleList:
        """``model.visual.blocks`` (the deepstack merger list beside them is projector, not blocks)."""
        return self.vision_tower.blocks  # type: ignore[no-any-return]

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """``vision`` (ViT blocks), ``projector`` (the patch merger(s) inside ``model.visual``), ``language``."""
        return split_projector(self)


@ADAPTERS.register("qwen2-vl")
class Qwen2VLAdapter(QwenVLAdapter):
    """``Qwen2VLForConditionalGeneration``."""

    family: ClassVar[str] = "qwen2-vl"
    model_types: ClassVar[tuple[str, ...]] = ("qwen2_vl",)
    examples: ClassVar[tuple[str, ...]] = ("Qwen/Qwen2-VL-2B-Instruct", "Qwen/Qwen2-VL-7B-Instruct")


@ADAPTERS.register("qwen2.5-vl")
class Qwen25VLAdapter(QwenVLAdapter):
    """``Qwen2_5_VLForConditionalGeneration`` (windowed ViT attention, SwiGLU vision MLP)."""

    family: ClassVar[str] = "qwen2.5-vl"
    model_types: ClassVar[tuple[str, ...]] = ("qwen2_5_vl",)
    examples: ClassVar[tuple[str, ...]] = ("Qwen/Qwen2.5-VL-3B-Instruct", "Qwen/Qwen2.5-VL-7B-Instruct")


@ADAPTERS.register("qwen3-vl")
class Qwen3VLAdapter(QwenVLAdapter):
    """``Qwen3VLForConditionalGeneration`` (deepstack mergers are part of the projector)."""

    family: ClassVar[str] = "qwen3-vl"
    model_types: ClassVar[tuple[str, ...]] = ("qwen3_vl",)
    examples: ClassVar[tuple[str, ...]] = ("Qwen/Qwen3-VL-2B-Instruct", "Qwen/Qwen3-VL-4B-Instruct")
    projector_paths: ClassVar[tuple[str, ...]] = ("model.visual.merger", "model.visual.deepstack_merger_list")


# -- tiny checkpoints ------------------------------------------------------------


@dataclass(frozen=True)
class TinyQwenSpec:
    """How one Qwen-VL generation's tiny checkpoint differs from the others."""

    family: str
    patch_size: int
    """Vision patch size in pixels (14 for Qwen2/2.5-VL, 16 for Qwen3-VL)."""
    tie_word_embeddings: bool
    chat_template: str


TINY_QWEN: dict[str, TinyQwenSpec] = {
    "qwen2-vl": TinyQwenSpec("qwen2-vl", 14, False, QWEN2_VL_CHAT_TEMPLATE),
    "qwen2.5-vl": TinyQwenSpec("qwen2.5-vl", 14, True, QWEN2_VL_CHAT_TEMPLATE),
    "qwen3-vl": TinyQwenSpec("qwen3-vl", 16, True, QWEN3_VL_CHAT_TEMPLATE),
}
"""Tied embeddings on two of the three so both unembedding branches are exercised."""

_MERGE = 2
_HIDDEN, _HEADS, _KV_HEADS, _LAYERS, _FFN = 32, 4, 2, 2, 64


def _text_config(vocab_size: int, tok: Any, spec: TinyQwenSpec) -> dict[str, Any]:
    """A 2-layer, 32-wide LM; M-RoPE sections sum to head_dim / 2 = 4."""
    head_dim = _HIDDEN // _HEADS
    rope: dict[str, Any] = {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 1, 1]}
    cfg: dict[str, Any] = dict(
        **decoder_dims(vocab_size, hidden=_HIDDEN, layers=_LAYERS, heads=_HEADS, kv_heads=_KV_HEADS,
                       intermediate=_FFN),  # fmt: skip
        rope_parameters=rope,
        bos_token_id=None,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        tie_word_embeddings=spec.tie_word_embeddings,
        initializer_range=TIED_LM_INIT,
    )
    if spec.family == "qwen3-vl":
        cfg["head_dim"] = head_dim
        rope["mrope_interleaved"] = True
    return cfg


def _vision_config(spec: TinyQwenSpec) -> dict[str, Any]:
    """One or two ViT blocks, 32 wide; merger output = LM width."""
    common = dict(patch_size=spec.patch_size, spatial_merge_size=_MERGE, temporal_patch_size=2, num_heads=2)
    if spec.family == "qwen2-vl":
        return dict(common, depth=1, embed_dim=32, hidden_size=_HIDDEN, mlp_ratio=2)
    if spec.family == "qwen2.5-vl":
        # window 56 px = 2 merged units, so the 3 x 3 token grid really is split into windows
        return dict(common, depth=2, hidden_size=32, intermediate_size=48, out_hidden_size=_HIDDEN,
                    window_size=2 * spec.patch_size * _MERGE, fullatt_block_indexes=[1])  # fmt: skip
    return dict(common, depth=2, hidden_size=32, intermediate_size=48, out_hidden_size=_HIDDEN,
                num_position_embeddings=16, deepstack_visual_indexes=[0])  # fmt: skip


def build_tiny_qwen_vl(out: Path, seed: int, *, family: str) -> None:
    """A complete tiny Qwen-VL checkpoint with the family's real processor classes.

    Images are resized to between 2 x 2 and 3 x 3 merged units (56-84 px for
    patch 14), i.e. 4-9 image tokens: a 224 px square gives a 3 x 3 grid.
    """
    import transformers as tf

    from vlmscope.models.tokenizer import build_tokenizer

    if family not in TINY_QWEN:
        raise ConfigError(f"unknown tiny Qwen-VL family {family!r}; valid: {', '.join(TINY_QWEN)}")
    spec = TINY_QWEN[family]
    tok = build_tokenizer(
        list(QWEN_SPECIAL_TOKENS),
        pad_token="<|endoftext|>",
        bos_token=None,
        eos_token="<|im_end|>",
        chat_template=spec.chat_template,
        extra_words=CHAT_WORDS,
    )
    ids = {t: int(tok.convert_tokens_to_ids(t)) for t in QWEN_SPECIAL_TOKENS}
    classes = {
        "qwen2-vl": ("Qwen2VLConfig", "Qwen2VLForConditionalGeneration", "Qwen2VLProcessor", "Qwen2VLVideoProcessor"),
        "qwen2.5-vl": ("Qwen2_5_VLConfig", "Qwen2_5_VLForConditionalGeneration", "Qwen2_5_VLProcessor",
                       "Qwen2VLVideoProcessor"),  # fmt: skip
        "qwen3-vl": ("Qwen3VLConfig", "Qwen3VLForConditionalGeneration", "Qwen3VLProcessor", "Qwen3VLVideoProcessor"),
    }
    config_cls, model_cls, processor_cls, video_cls = (getattr(tf, n) for n in classes[family])
    config = config_cls(
        text_config=_text_config(len(tok), tok, spec),
        vision_config=_vision_config(spec),
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=spec.tie_word_embeddings,
    )
    model = init_generative(model_cls, config, tok, seed)  # bos None: the tokenizer has none

    unit = spec.patch_size * _MERGE
    size = {"shortest_edge": (2 * unit) ** 2, "longest_edge": (3 * unit) ** 2}
    sizes: dict[str, Any] = dict(size=size, patch_size=spec.patch_size, merge_size=_MERGE, temporal_patch_size=2)
    processor = processor_cls(
        image_processor=tf.Qwen2VLImageProcessor(**sizes),
        tokenizer=tok,
        video_processor=video_cls(**sizes),
        chat_template=spec.chat_template,
    )
    save_checkpoint(model, processor, out, family)


register_variants(build_tiny_qwen_vl, "family", {family: family for family in TINY_QWEN})
