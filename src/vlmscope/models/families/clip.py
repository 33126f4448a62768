"""CLIP (``openai/clip-vit-large-patch14-336``): image-text similarity, no generation.

Used by the counting study (zero-shot count by scoring "a photo of N ..."
prompts) and the medical study (classification over fixed text prototypes).
:class:`DualEncoderAdapter` holds everything CLIP and SigLIP share; a family
only says how its texts are padded.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from vlmscope.errors import ModelError
from vlmscope.models.adapter import ContrastiveAdapter, LoadOptions
from vlmscope.models.lm_adapter import model_kwargs
from vlmscope.models.registry import ADAPTERS, TINY
from vlmscope.models.tiny_parts import save_checkpoint, seeded

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from PIL.Image import Image
    from torch import nn

__all__ = ["DualEncoderAdapter", "ClipAdapter", "build_tiny_clip"]


class DualEncoderAdapter(ContrastiveAdapter):
    """An ``AutoModel`` with ``get_image_features`` / ``get_text_features`` and a logit scale.

    Module tree: ``vision_model`` (the image encoder), ``visual_projection``
    (CLIP only; SigLIP pools inside ``vision_model``), ``logit_scale`` and,
    for SigLIP, ``logit_bias``.
    """

    family: ClassVar[str] = "dual-encoder"
    vision_module_names: ClassVar[tuple[str, ...]] = ("vision_model", "visual_projection")
    """Children of the model that map pixels to the image embedding (those present are trained)."""
    text_kwargs: ClassVar[dict[str, Any]] = {"padding": True, "truncation": True}

    @classmethod
    def from_pretrained(cls, path: str, options: LoadOptions = LoadOptions()) -> DualEncoderAdapter:
        """``AutoModel`` + ``AutoProcessor`` from a hub id or local directory."""
        from transformers import AutoModel, AutoProcessor

        try:
            processor = AutoProcessor.from_pretrained(path, revision=options.revision)
            model = AutoModel.from_pretrained(path, **model_kwargs(options))
        except (OSError, ValueError) as e:
            raise ModelError(f"cannot load {cls.family} model from {path!r} with AutoModel: {e}") from e
        model.eval()
        return cls(model, processor, source=str(path), revision=options.revision)

    @property
    def tokenizer(self) -> Any:
        return self.processor.tokenizer

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def _text_inputs(self, texts: Sequence[str]) -> dict[str, Any]:
        kw = dict(self.text_kwargs)
        if kw.get("padding") == "max_length" and "max_length" not in kw:
            kw["max_length"] = int(self.model.config.text_config.max_position_embeddings)
        enc = self.tokenizer(list(texts), return_tensors="pt", **kw)
        return {k: v.to(self.device) for k, v in enc.items()}

    @property
    def vision_tower(self) -> nn.Module:
        return self.model.vision_model  # type: ignore[no-any-return]

    def vision_parameters(self) -> list[nn.Parameter]:
        """Parameters of the :attr:`vision_module_names` children the model has, in that order."""
        from torch import nn

        params: list[nn.Parameter] = []
        for name in self.vision_module_names:
            mod = getattr(self.model, name, None)
            if isinstance(mod, nn.Module):
                params.extend(mod.parameters())
        return params

    @classmethod
    def image_features(cls, model: nn.Module, pixel_values: torch.Tensor) -> torch.Tensor:
        """(B, E) ``get_image_features`` (tensor or pooled output), not normalised, with gradients."""
        import torch

        out = model.get_image_features(pixel_values=pixel_values)
        return out if isinstance(out, torch.Tensor) else out.pooler_output

    @classmethod
    def similarity_logits(cls, model: nn.Module, cos: torch.Tensor) -> torch.Tensor:
        """``cos * exp(logit_scale) (+ logit_bias)``, scale and bias detached, in float32."""
        scale = model.logit_scale.detach().float().exp().to(cos.device)
        bias = getattr(model, "logit_bias", None)
        return cos * scale + (bias.detach().float().to(cos.device) if bias is not None else 0.0)

    def image_embeddings(self, images: Sequence[Image]) -> torch.Tensor:
        """(B, E) L2-normalised image embeddings."""
        import torch

        pv = self.processor.image_processor(images=list(images), return_tensors="pt")["pixel_values"]
        with torch.inference_mode():
            emb = self.image_features(self.model, pv.to(self.device, self.model.dtype))
        return torch.nn.functional.normalize(emb.float(), dim=-1)

    def text_embeddings(self, texts: Sequence[str]) -> torch.Tensor:
        """(N, E) L2-normalised text embeddings."""
        import torch

        with torch.inference_mode():
            out = self.model.get_text_features(**self._text_inputs(texts))
        emb = out if isinstance(out, torch.Tensor) else out.pooler_output
        return torch.nn.functional.normalize(emb.float(), dim=-1)

    def score(self, images: Sequence[Image], texts: Sequence[Sequence[str]]) -> torch.Tensor:
        """(B, K) logits of image b against its own K candidate texts (the model's scale and bias)."""
        import torch

        if len(images) != len(texts):
            raise ModelError(f"got {len(images)} images but {len(texts)} candidate lists; pass one list per image")
        ks = {len(t) for t in texts}
        if len(ks) != 1 or 0 in ks:
            raise ModelError(f"every image needs the same, non-zero number of candidate texts; got sizes {sorted(ks)}")
        (K,) = ks
        img = self.image_embeddings(images)  # (B, E)
        txt = self.text_embeddings([t for cands in texts for t in cands]).view(len(images), K, -1)  # (B, K, E)
        cos = torch.einsum("be,bke->bk", img, txt)
        return self.similarity_logits(self.model, cos)


@ADAPTERS.register("clip")
class ClipAdapter(DualEncoderAdapter):
    family: ClassVar[str] = "clip"
    model_types: ClassVar[tuple[str, ...]] = ("clip",)
    examples: ClassVar[tuple[str, ...]] = ("openai/clip-vit-large-patch14-336", "openai/clip-vit-base-patch32")
    related_model_types: ClassVar[tuple[str, ...]] = ("clip_vision_model",)


@TINY.register("clip")
def build_tiny_clip(out: Path, seed: int) -> None:
    """CLIPModel (32 px / patch 8 vision, 2-layer text) + CLIPProcessor; texts end in eos, right padding."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

    from vlmscope.models.tokenizer import build_tokenizer

    tok = build_tokenizer(
        bos_token="<|startoftext|>", eos_token="<|endoftext|>", pad_token="<|endoftext|>",
        add_eos_token=True, padding_side="right", model_max_length=32,
    )  # fmt: skip
    small = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4}
    config = CLIPConfig(
        text_config={**small, "vocab_size": len(tok), "max_position_embeddings": 32, "pad_token_id": tok.pad_token_id,
                     "bos_token_id": tok.bos_token_id, "eos_token_id": tok.eos_token_id},  # fmt: skip
        vision_config={**small, "image_size": 32, "patch_size": 8},
        projection_dim=32,
    )
    with seeded(seed):
        model = CLIPModel(config)
    processor = CLIPProcessor(
        image_processor=CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}),
        tokenizer=tok,
    )
    save_checkpoint(model, processor, out, "clip")
