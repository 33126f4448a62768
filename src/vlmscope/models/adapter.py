"""The one interface every later stage asks model questions through.

No module outside ``vlmscope.models`` may special-case a family: extraction,
evaluation, lens and training only talk to a ``ModelAdapter`` (or a
``ContrastiveAdapter``). Everything they need to know about a model's parts
(vision blocks, the block feeding the LM, projector modules, attention
modules, the model type, generator or classifier) is declared here, so no
caller probes a model with ``getattr`` or reaches into private attributes;
``tests/models/conformance.py`` checks every member on every family. Each family
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

from vlmscope.errors import ModelError
from vlmscope.models.registry import ADAPTERS

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from PIL.Image import Image
    from torch import nn

__all__ = [
    "ADAPTERS",
    "Capabilities",
    "EncodedBatch",
    "LoadedModel",
    "ModelAdapter",
    "ContrastiveAdapter",
    "LoadOptions",
    "TensorNames",
    "VisionFeed",
    "encoder_blocks",
    "text_config",
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


@dataclass(frozen=True)
class VisionFeed:
    """How a LLaVA-style model turns pixels into the image tokens its LM reads.

    ``projector(tower(pixels).hidden_states[feature_layer][:, 1:] if drop_cls else ...)``
    is exactly what the model feeds its LM for one base image; vision
    pre-training trains tower and projector through this path alone.
    """

    tower: nn.Module
    """The vision tower; called as ``tower(pixel_values=..., output_hidden_states=True)``."""
    projector: nn.Module
    """Maps (B, P, D_vision) patch features to (B, P, D) LM inputs."""
    feature_layer: int
    """Index into the tower's ``hidden_states`` (0 = embeddings, -1 = last block)."""
    drop_cls: bool
    """Drop the first token (CLS) before the projector."""


def text_config(config: Any) -> Any:
    """The language model's config inside a transformers config (the config itself for a plain LM)."""
    return config.get_text_config() if hasattr(config, "get_text_config") else config


def encoder_blocks(vision: nn.Module) -> nn.ModuleList:
    """A vision tower's encoder blocks: its longest ``nn.ModuleList`` (CLIP, SigLIP, ViT, DINOv2 alike)."""
    from torch import nn

    lists = [m for m in vision.modules() if isinstance(m, nn.ModuleList) and len(m) > 0]
    if not lists:
        raise ModelError(f"{type(vision).__name__} has no list of encoder blocks")
    return max(lists, key=len)


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


class LoadedModel(abc.ABC):
    """What every adapter, generative or contrastive, declares: family facts and the vision side."""

    family: ClassVar[str]
    capabilities: ClassVar[Capabilities] = Capabilities()
    model_types: ClassVar[tuple[str, ...]] = ()
    """``config.json`` ``model_type`` values that map to this family."""
    examples: ClassVar[tuple[str, ...]] = ()
    """Hub ids the studies used."""
    default_for_model_type: ClassVar[bool] = True
    """False when another family sharing a ``model_type`` is the one detection picks."""
    related_model_types: ClassVar[tuple[str, ...]] = ()
    """Other ``model_type`` values of the same kind of model (a vision-only half, a newer version) that
    reports group with this family, though :func:`load_model` does not load them through it."""
    is_generator: ClassVar[bool] = True
    """Produces text (an LM head): generation, answer loss, logit lens."""
    is_classifier: ClassVar[bool] = False
    """Scores images against fixed texts (CLIP-like) instead of generating."""

    def __init__(self, model: nn.Module, processor: Any, *, source: str, revision: str | None = None) -> None:
        self.model = model
        self.processor = processor
        self.source = source
        self.revision = revision

    @property
    def model_type(self) -> str:
        """The loaded config's ``model_type`` (``llava``, ``qwen2_vl``, ``clip``, ...)."""
        return str(self.model.config.model_type)

    @property
    def commit_hash(self) -> str | None:
        """The hub commit the weights were resolved to (None for local directories)."""
        value = getattr(self.model.config, "_commit_hash", None)
        return str(value) if value else None

    @property
    @abc.abstractmethod
    def vision_tower(self) -> nn.Module:
        """The vision encoder (patch embedding and blocks; the projector excluded where it is separate)."""

    def vision_blocks(self) -> nn.ModuleList:
        """The vision tower's encoder blocks, in order."""
        return encoder_blocks(self.vision_tower)

    @abc.abstractmethod
    def vision_feature_block(self) -> nn.Module:
        """The vision block whose output becomes the image representation (Grad-CAM hooks it)."""


class ModelAdapter(LoadedModel):
    """A loaded image-text-to-text model plus its family's answers.

    Build with :meth:`from_pretrained` (hub id or local directory, through
    transformers' Auto classes) or wrap an already-loaded model.
    """

    answer_prefix: ClassVar[str | None] = None
    """What separates the generation prefix from an appended answer; ``None``: decided per prompt
    (see :meth:`answer_ids`), so the answer's first token depends on the question's prompt."""

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

    @abc.abstractmethod
    def answer_ids(self, answer: str, prompt: str | None = None) -> list[int]:
        """Token ids appended after ``prompt`` for one answer (separator, answer, eos)."""

    def attention_module(self, layer: int) -> nn.Module:
        """Decoder block ``layer``'s self-attention; returns ``(output, weights)`` under eager attention."""
        block = self.decoder_layers[layer]
        mod = getattr(block, "self_attn", None)
        if mod is None:
            raise ModelError(
                f"{type(block).__name__} has no 'self_attn' module; the {self.family} adapter must override "
                "attention_module(i) for --attention to work"
            )
        return mod  # type: ignore[no-any-return]

    def use_eager_attention(self) -> None:
        """Switch the loaded model to eager attention (attention weights are only returned then)."""
        if getattr(self.model.config, "_attn_implementation", "eager") == "eager":
            return
        if not hasattr(self.model, "set_attn_implementation"):
            raise ModelError("--attention needs eager attention; load the model with attn_implementation='eager'")
        self.model.set_attn_implementation("eager")

    # -- vision side -----------------------------------------------------------
    @abc.abstractmethod
    def projector_module_paths(self) -> tuple[str, ...]:
        """Dotted paths (from ``self.model``) of the modules mapping vision features into the LM."""

    def vision_feed(self) -> VisionFeed | None:
        """Tower, projector, feature layer and CLS rule when the LM reads ``projector(tower layer)``
        directly (LLaVA-style); None for families with a different path (pixel shuffle, mergers)."""
        return None

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


class ContrastiveAdapter(LoadedModel):
    """CLIP/SigLIP-like models: image-text similarity, no generation."""

    family: ClassVar[str]
    capabilities: ClassVar[Capabilities] = Capabilities(
        generation=False, attention=False, mlp=False, contrastive=True
    )
    is_generator: ClassVar[bool] = False
    is_classifier: ClassVar[bool] = True

    @classmethod
    @abc.abstractmethod
    def from_pretrained(cls, path: str, options: LoadOptions = LoadOptions()) -> ContrastiveAdapter: ...

    @abc.abstractmethod
    def score(self, images: Sequence[Image], texts: Sequence[Sequence[str]]) -> torch.Tensor:
        """(B, K) logits of image b against its K candidate texts."""

    @abc.abstractmethod
    def text_embeddings(self, texts: Sequence[str]) -> torch.Tensor:
        """(N, E) L2-normalised text embeddings."""

    @classmethod
    @abc.abstractmethod
    def image_features(cls, model: nn.Module, pixel_values: torch.Tensor) -> torch.Tensor:
        """(B, E) un-normalised image embeddings of ``model`` (differentiable; a classmethod so a
        classifier module can hold the model alone and still ask the family)."""

    @classmethod
    @abc.abstractmethod
    def similarity_logits(cls, model: nn.Module, cos: torch.Tensor) -> torch.Tensor:
        """Cosine similarities -> logits with ``model``'s own (detached) scale and bias."""

    @abc.abstractmethod
    def vision_parameters(self) -> list[nn.Parameter]:
        """The image tower and its projection: what classifier fine-tuning trains."""

    def vision_feature_block(self) -> nn.Module:
        """The last image-encoder block (the pooled embedding is read from its output)."""
        return self.vision_blocks()[-1]

