"""PaliGemma and PaliGemma 2 (``google/paligemma-3b-mix-224``, ``google/paligemma2-3b-pt-224``, ...).

Module tree (transformers 5): ``model.vision_tower`` (SigLIP vision),
``model.multi_modal_projector`` (one linear), ``model.language_model``
(Gemma or Gemma 2 decoder: ``layers``, ``norm``), ``lm_head`` (tied to the
input embedding). One image becomes ``(image_size / patch)^2`` image tokens
(16 x 16 = 256 at 224 px), row-major, no CLS.

What differs from the chat-template families:

- the prompt is PaliGemma's own prefix format, not a chat template:
  ``<image> x n`` + ``<bos>`` + task prefix + question + ``"\\n"``, so the
  last prompt token is that ``"\\n"``. ``format_prompt`` writes it with one
  unexpanded ``<image>``; since ``PaliGemmaProcessor`` always inserts the
  bos and the newline itself, ``processor_inputs`` hands it the text without
  them and the processor's output is exactly ``format_prompt``'s layout;
- prefix-LM attention: image + prompt tokens (``token_type_ids == 0``) attend
  to each other bidirectionally, answer tokens (``token_type_ids == 1``) are
  causal. Appended answers get ``token_type_ids = 1`` exactly like the
  processor's ``suffix=`` (otherwise the prompt would see the answer);
  left padding has type 0 but is masked by ``attention_mask``;
- Gemma positions are 1-indexed: ``position_ids = cumsum(attention_mask)``
  for the forward pass (exact left-padding invariance); ``generate`` drops
  them because PaliGemma builds its own (from the mask, + 1) while decoding;
- Gemma's RMSNorm scales by ``(1 + weight)``: ``norm_kind="rms_plus_one"``;
  PaliGemma 2 (Gemma 2) also soft-caps the final logits
  (``text_config.final_logit_softcapping``), which a CPU lens must apply too.

Shapes: B batch, T padded length.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from vlmscope.errors import ConfigError, ModelError
from vlmscope.models.adapter import EncodedBatch, TensorNames, text_config
from vlmscope.models.lm_adapter import ImageTextAdapter
from vlmscope.models.registry import ADAPTERS
from vlmscope.models.tiny_parts import TIED_LM_INIT, decoder_dims, init_generative, register_variants, save_checkpoint

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from PIL.Image import Image

__all__ = ["PaliGemmaAdapter", "build_tiny_paligemma", "prefix_positions"]


def prefix_positions(attention_mask: torch.Tensor) -> torch.Tensor:
    """(B, T) 1-indexed positions of the real tokens (Gemma/PaliGemma convention), 0 on left padding."""
    m = attention_mask.long()
    return m.cumsum(-1) * m


@ADAPTERS.register("paligemma")
class PaliGemmaAdapter(ImageTextAdapter):
    """``PaliGemmaForConditionalGeneration`` with a Gemma or Gemma 2 LM (see the module docstring)."""

    family: ClassVar[str] = "paligemma"
    model_types: ClassVar[tuple[str, ...]] = ("paligemma",)
    examples: ClassVar[tuple[str, ...]] = (
        "google/paligemma-3b-mix-224",
        "google/paligemma2-3b-pt-224",
        "google/paligemma2-10b-pt-224",
        "google/paligemma2-3b-mix-448",
    )
    answer_prefix: ClassVar[str] = ""
    positions_from_mask: ClassVar[bool] = False
    task_prefix: ClassVar[str] = ""
    """Text before the question. The ``mix`` checkpoints were trained on prefixes such as
    ``"answer en "``; subclass and set it to evaluate them zero-shot. Empty for fine-tuned ``pt`` use."""

    def format_prompt(self, question: str) -> str:
        """``<image><bos>`` + task prefix + question + ``\\n``: PaliGemma's layout, one unexpanded image token."""
        return f"{self._prompt_head}{self.task_prefix}{question}\n"

    @property
    def _prompt_head(self) -> str:
        return f"{self.image_token}{self.tokenizer.bos_token}"

    def processor_inputs(self, images: Sequence[Image], prompts: Sequence[str]) -> dict[str, Any]:
        """Hand the processor ``<image>`` + text (it re-inserts ``<bos>`` and the ``\\n`` itself).

        Drops the processor's ``labels`` (all -100 without a suffix; answers get their own).
        """
        head = self._prompt_head
        texts = []
        for p in prompts:
            if not (p.startswith(head) and p.endswith("\n")):
                raise ModelError(
                    f"PaliGemma prompt must be {head!r} + text + '\\n' (as format_prompt writes it), got {p!r}"
                )
            texts.append(self.image_token + p[len(head) : -1])
        with warnings.catch_warnings():
            # PaliGemmaProcessor builds its labels with np.array(<torch tensor>), which numpy 2 flags
            # because torch's __array__ lacks a copy= keyword; harmless, and the labels are dropped below.
            warnings.filterwarnings("ignore", message="__array__ implementation doesn't accept a copy keyword",
                                    category=DeprecationWarning)  # fmt: skip
            out = super().processor_inputs(images, texts)
        out.pop("labels", None)
        return out

    def finish_batch(self, batch: EncodedBatch) -> EncodedBatch:
        """The generic batch, answers marked causal (``token_type_ids = 1``), 1-indexed ``position_ids``."""
        if batch.answer_mask is not None and "token_type_ids" in batch.inputs:
            token_types = batch.inputs["token_type_ids"].clone()
            token_types[batch.answer_mask] = 1
            batch.inputs["token_type_ids"] = token_types
        batch.inputs["position_ids"] = prefix_positions(batch.inputs["attention_mask"])
        return batch

    def generate(self, batch: EncodedBatch, *, max_new_tokens: int = 5) -> list[str]:
        """Greedy decoding; ``position_ids`` are left to PaliGemma's generation code (mask-based, + 1)."""
        inputs = {k: v for k, v in batch.inputs.items() if k != "position_ids"}
        return super().generate(dataclasses.replace(batch, inputs=inputs), max_new_tokens=max_new_tokens)

    @classmethod
    def tensor_names(cls, config: Any) -> TensorNames:
        """The generic names with Gemma's ``(1 + weight)`` RMSNorm and Gemma 2's final soft cap."""
        text = text_config(config)
        cap = getattr(text, "final_logit_softcapping", None)
        return dataclasses.replace(
            super().tensor_names(config),
            norm_kind="rms_plus_one",
            final_logit_softcapping=float(cap) if cap else None,
        )


# -- tiny checkpoints ------------------------------------------------------------

_IMAGE, _PATCH = 24, 8
"""24 px, 8 px patches: 3 x 3 = 9 image tokens."""
_LMS = ("gemma", "gemma2")


def _text_config(lm: str, vocab_size: int, tok: Any) -> Any:
    """2-layer 32-wide Gemma (PaliGemma) or Gemma 2 (PaliGemma 2: sliding window, soft-capping)."""
    from transformers import Gemma2Config, GemmaConfig

    common: dict[str, Any] = dict(
        head_dim=8,
        initializer_range=TIED_LM_INIT,
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
    )
    if lm == "gemma":
        return GemmaConfig(**decoder_dims(vocab_size, kv_heads=1), **common)
    return Gemma2Config(
        **decoder_dims(vocab_size, kv_heads=2), sliding_window=16, query_pre_attn_scalar=8,
        final_logit_softcapping=30.0, attn_logit_softcapping=50.0, **common,
    )  # fmt: skip


def build_tiny_paligemma(out: Path, seed: int, *, lm: str = "gemma") -> None:
    """PaliGemmaForConditionalGeneration: 1-block SigLIP (24 px, 9 image tokens) + 2-layer Gemma/Gemma 2.

    The tokenizer never adds a bos itself (the processor writes ``<bos>`` into
    the text, as PaliGemma's does); the processor adds PaliGemma's 1024
    ``<locNNNN>`` and 128 ``<segNNN>`` tokens, so the vocabulary is sized after it.
    """
    from transformers import (
        PaliGemmaConfig,
        PaliGemmaForConditionalGeneration,
        PaliGemmaProcessor,
        SiglipImageProcessor,
        SiglipVisionConfig,
    )

    from vlmscope.models.tokenizer import build_tokenizer

    if lm not in _LMS:
        raise ConfigError(f"unknown PaliGemma LM {lm!r}; valid: {', '.join(_LMS)}")
    tok = build_tokenizer(["<image>"], pad_token="<pad>", bos_token="<bos>", eos_token="<eos>", add_bos_token=False)
    n_tokens = (_IMAGE // _PATCH) ** 2
    processor = PaliGemmaProcessor(
        image_processor=SiglipImageProcessor(size={"height": _IMAGE, "width": _IMAGE}, image_seq_length=n_tokens),
        tokenizer=tok,
    )
    vocab = len(processor.tokenizer)
    config = PaliGemmaConfig(
        vision_config=SiglipVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                         num_attention_heads=2, image_size=_IMAGE, patch_size=_PATCH,
                                         vision_use_head=False),  # fmt: skip
        text_config=_text_config(lm, vocab, tok),
        image_token_index=int(tok.convert_tokens_to_ids("<image>")),
        vocab_size=vocab,
        projection_dim=32,
        hidden_size=32,
    )
    model = init_generative(PaliGemmaForConditionalGeneration, config, tok, seed)
    save_checkpoint(model, processor, out, "paligemma", lm=lm)


register_variants(build_tiny_paligemma, "lm", {"paligemma": "gemma", "paligemma2": "gemma2"})
"""``paligemma2``: the same wrapper around a Gemma 2 LM (adapter family ``paligemma``)."""
