"""The one interface every later stage asks model questions through.

No module outside ``vlmscope.models`` may special-case a family: extraction,
evaluation, lens and training only talk to a ``ModelAdapter``. Each family
(``llava``, ``qwen2-vl``, ``paligemma``, ...) is one small subclass registered
in ``ADAPTERS``; the generic behaviour (left padding, positions from the
processor's outputs and the config's image token id) lives here once.

Shapes: B batch, T padded sequence length, D hidden size, F FFN width,
V vocabulary, L number of decoder layers (hidden states have L + 1 entries,
the embedding output first).
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from vlmscope.models.registry import ADAPTERS

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from PIL.Image import Image
    from torch import nn

__all__ = [
    "ADAPTERS",
    "Capabilities",
    "EncodedBatch",
    "ModelAdapter",
    "ContrastiveAdapter",
    "LoadOptions",
    "TensorNames",
]


@dataclass(frozen=True)
class Capabilities:
    """What a family supports; ``vlmscope models list`` prints these."""

    generation: bool = True
    """Greedy generation / next-token logits (False for CLIP-like models)."""
    attention: bool = True
    """Eager attention maps from the last prompt token to the image tokens."""
    mlp: bool = True
    """FFN activation capture at the MLP down projection's input."""
    contrastive: bool = False
    """Image-text similarity scores (CLIP, SigLIP)."""


@dataclass(frozen=True)
class LoadOptions:
    """How to load weights; every field maps onto a ``from_pretrained`` argument."""

    dtype: str = "float32"
    """``float32``, ``float16``, ``bfloat16`` or ``auto``."""
    device_map: str | None = None
    """``None`` (CPU), ``cuda``, ``auto`` ... passed to transformers."""
    attn_implementation: str | None = None
    """``eager`` / ``sdpa`` / ``flash_attention_2``; ``None`` lets transformers choose."""
    revision: str | None = None
    """Hub revision (commit, tag, branch); ignored for local directories."""


@dataclass(frozen=True)
class TensorNames:
    """Where the lens-relevant tensors live in a checkpoint's safetensors files.

    Lets CPU analyses (logit lens, FFN analysis) read a handful of tensors
    from disk without instantiating the model.
    """

    final_norm_weight: str
    unembedding_weight: str
    """With tied embeddings this is the input embedding's name."""
    down_proj_weight: str
    """Format string with ``{layer}``: the MLP down projection of decoder layer ``layer`` (D, F)."""
    final_norm_bias: str | None = None
    norm_kind: str = "rms"
    """``rms`` (x * rsqrt(mean(x^2) + eps) * w) or ``layer`` (LayerNorm); Gemma-style ``rms_plus_one`` uses (1 + w)."""
    norm_eps: float = 1e-6
    text_config_key: str | None = "text_config"
    """Where the LM config sits inside config.json (None when at top level)."""
    final_logit_softcapping: float | None = None
    """Gemma 2 style soft cap: logits = c * tanh(unembedding(x) / c); None when the model has none."""


@dataclass
class EncodedBatch:
    """A left-padded batch plus the token positions every stage needs.

    All masks come from the processor's own ``input_ids`` and the config's
    image token id; nothing here is a hard-coded id.
    """

    inputs: dict[str, Any]
    """Keyword arguments for ``model(**inputs)`` (``input_ids``, ``attention_mask``, ``pixel_values``, ...)."""
    attention_mask: torch.Tensor
    """(B, T) 1 for real tokens, 0 for left padding."""
    image_mask: torch.Tensor
    """(B, T) bool, True at image-token positions of the expanded sequence."""
    last_index: torch.Tensor
    """(B,) long, index of the last prompt token (after the generation prefix)."""
    patch_grids: list[tuple[int, int]]
    """Per sample (rows, cols) of the image tokens as the LM sees them, for attention maps."""
    labels: torch.Tensor | None = None
    """(B, T) long with -100 outside the answer span, when answers were given."""
    answer_mask: torch.Tensor | None = None
    """(B, T) bool, True on answer tokens, when answers were given."""
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def text_mask(self) -> torch.Tensor:
        """(B, T) bool: real tokens that are not image tokens (padding never included)."""
        return self.attention_mask.bool() & ~self.image_mask

    def to(self, device: Any) -> EncodedBatch:
        import torch

        def mv(x: Any) -> Any:
            return x.to(device) if isinstance(x, torch.Tensor) else x

        return EncodedBatch(
            inputs={k: mv(v) for k, v in self.inputs.items()},
            attention_mask=mv(self.attention_mask),
            image_mask=mv(self.image_mask),
            last_index=mv(self.last_index),
            patch_grids=self.patch_grids,
            labels=mv(self.labels),
            answer_mask=mv(self.answer_mask),
            extras=self.extras,
        )


class ModelAdapter(abc.ABC):
    """A loaded image-text-to-text model plus its family's answers.

    Build with :meth:`from_pretrained` (hub id or local directory, through
    transformers' Auto classes) or wrap an already-loaded model.
    """

    family: ClassVar[str]
    capabilities: ClassVar[Capabilities] = Capabilities()

    def __init__(self, model: nn.Module, processor: Any, *, source: str, revision: str | None = None) -> None:
        self.model = model
        self.processor = processor
        self.source = source
        self.revision = revision

    # -- loading -------------------------------------------------------------
    @classmethod
    @abc.abstractmethod
    def from_pretrained(cls, path: str, options: LoadOptions = LoadOptions()) -> ModelAdapter:
        """Load model and processor from a hub id or local directory."""

    # -- prompts and batches --------------------------------------------------
    @abc.abstractmethod
    def format_prompt(self, question: str) -> str:
        """The full prompt text for one image + question, generation prefix included."""

    @abc.abstractmethod
    def encode(
        self,
        images: Sequence[Image],
        questions: Sequence[str],
        *,
        answers: Sequence[str] | None = None,
    ) -> EncodedBatch:
        """Left-padded batch; with ``answers`` the answer tokens follow the prompt and get ``labels``."""

    # -- structure -----------------------------------------------------------
    @property
    @abc.abstractmethod
    def decoder_layers(self) -> Sequence[nn.Module]:
        """The LM's decoder blocks, in order (length L)."""

    @abc.abstractmethod
    def mlp_down_proj(self, layer: int) -> nn.Linear:
        """Layer ``layer``'s MLP down projection; its input is the FFN activation (F)."""

    @property
    @abc.abstractmethod
    def final_norm(self) -> nn.Module:
        """The LM's final norm applied before the unembedding."""

    @property
    @abc.abstractmethod
    def unembedding(self) -> nn.Linear:
        """The LM head (D -> V)."""

    @property
    def num_layers(self) -> int:
        return len(self.decoder_layers)

    @property
    @abc.abstractmethod
    def hidden_size(self) -> int: ...

    @property
    @abc.abstractmethod
    def tokenizer(self) -> Any: ...

    @classmethod
    @abc.abstractmethod
    def tensor_names(cls, config: Any) -> TensorNames:
        """Checkpoint tensor names for the lens, from a loaded ``transformers`` config alone."""

    @abc.abstractmethod
    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """Parameters by part: keys ``vision``, ``projector``, ``language`` (training freezes by these)."""

    def save_pretrained(self, out: str) -> None:
        """Write a checkpoint (weights as safetensors, config, processor) that ``from_pretrained`` loads."""
        self.model.save_pretrained(out)
        self.processor.save_pretrained(out)

    # -- running -------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def generate(self, batch: EncodedBatch, *, max_new_tokens: int = 5) -> list[str]:
        """Greedy continuation of each prompt, decoded without special tokens."""
        import torch

        batch = batch.to(self.device)
        with torch.inference_mode():
            out = self.model.generate(
                **batch.inputs, max_new_tokens=max_new_tokens, do_sample=False, num_beams=1
            )
        new = out[:, batch.inputs["input_ids"].shape[1] :]
        return [t.strip() for t in self.tokenizer.batch_decode(new, skip_special_tokens=True)]


class ContrastiveAdapter(abc.ABC):
    """CLIP/SigLIP-like models: image-text similarity, no generation."""

    family: ClassVar[str]
    capabilities: ClassVar[Capabilities] = Capabilities(
        generation=False, attention=False, mlp=False, contrastive=True
    )

    def __init__(self, model: nn.Module, processor: Any, *, source: str, revision: str | None = None) -> None:
        self.model = model
        self.processor = processor
        self.source = source
        self.revision = revision

    @classmethod
    @abc.abstractmethod
    def from_pretrained(cls, path: str, options: LoadOptions = LoadOptions()) -> ContrastiveAdapter: ...

    @abc.abstractmethod
    def score(self, images: Sequence[Image], texts: Sequence[Sequence[str]]) -> torch.Tensor:
        """(B, K) logits of image b against its K candidate texts."""

