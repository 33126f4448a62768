"""The generic adapter for image-text-to-text models whose LM is a standard decoder.

Every generative family (LLaVA, LLaVA-NeXT, LLaVA-OneVision, the composite,
and part B's Qwen-VL / InternVL / PaliGemma) subclasses
:class:`ImageTextAdapter` and overrides only the small hooks that differ:

- ``auto_class``: the transformers Auto class that loads the model;
- ``language_model_path`` / ``lm_head_path`` / ``vision_paths`` /
  ``projector_paths``: dotted module paths in the transformers 5 module tree
  (e.g. ``model.language_model`` for a ``LlavaForConditionalGeneration``);
- ``default_prompt``: the prompt format used when the processor has no chat
  template (real checkpoints ship one; the tiny ones do too);
- ``answer_prefix``: what separates the generation prefix from an appended
  answer; ``None`` (default) means ``""`` when the prompt ends in whitespace
  (ChatML's ``assistant\\n``) and ``" "`` otherwise (``ASSISTANT:``, ``[/INST]``);
- ``image_token_id``: from ``config.image_token_id`` / ``image_token_index``;
- ``patch_grid``: the (rows, cols) layout of one sample's image tokens;
- ``finish_batch``: what a family adds to the batch :meth:`encode` built
  (LLaVA-NeXT's anyres segments, PaliGemma's token types and positions),
  so no family re-wraps ``encode`` itself;
- ``direct_vision_feed``: whether the LM reads ``projector(tower hidden state)``
  with nothing in between (LLaVA-style), so :meth:`vision_feed` can describe it;
- ``positions_from_mask``: whether to pass ``position_ids = cumsum(mask) - 1``
  (exact batch invariance under left padding for 1-D RoPE LMs; families with
  their own multimodal RoPE, e.g. Qwen2-VL, turn it off).

Shapes: B batch, T padded length, D hidden size, V vocabulary.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from vlmscope.errors import ModelError
from vlmscope.models.adapter import EncodedBatch, LoadOptions, ModelAdapter, TensorNames, VisionFeed, text_config

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from PIL.Image import Image
    from torch import nn

__all__ = ["ImageTextAdapter", "torch_dtype", "load_processor", "model_kwargs"]

_DTYPES = ("float32", "float16", "bfloat16", "auto")


def torch_dtype(name: str) -> Any:
    """``LoadOptions.dtype`` -> what ``from_pretrained(dtype=...)`` takes."""
    import torch

    if name not in _DTYPES:
        raise ModelError(f"dtype must be one of {', '.join(_DTYPES)}, got {name!r}")
    return "auto" if name == "auto" else getattr(torch, name)


def model_kwargs(options: LoadOptions) -> dict[str, Any]:
    """``LoadOptions`` -> keyword arguments of a model class's ``from_pretrained``."""
    kwargs: dict[str, Any] = {"dtype": torch_dtype(options.dtype), "revision": options.revision}
    if options.device_map is not None:
        kwargs["device_map"] = options.device_map
    if options.attn_implementation is not None:
        kwargs["attn_implementation"] = options.attn_implementation
    return kwargs


def load_processor(path: str, options: LoadOptions) -> Any:
    """``AutoProcessor.from_pretrained`` with left padding forced on its tokenizer."""
    from transformers import AutoProcessor

    try:
        processor = AutoProcessor.from_pretrained(path, revision=options.revision)
    except OSError as e:
        raise ModelError(f"cannot load a processor from {path!r}: {e}") from e
    tok = getattr(processor, "tokenizer", None)
    if tok is not None:
        tok.padding_side = "left"
    return processor


class ImageTextAdapter(ModelAdapter):
    """A decoder-LM VLM loaded through transformers' Auto classes; see the module docstring."""

    family: ClassVar[str] = "image-text"
    auto_class: ClassVar[str] = "AutoModelForImageTextToText"
    language_model_path: ClassVar[str] = "model.language_model"
    lm_head_path: ClassVar[str] = "lm_head"
    vision_paths: ClassVar[tuple[str, ...]] = ("model.vision_tower",)
    projector_paths: ClassVar[tuple[str, ...]] = ("model.multi_modal_projector",)
    default_prompt: ClassVar[str] = "USER: {image}\n{question} ASSISTANT:"
    answer_prefix: ClassVar[str | None] = None
    positions_from_mask: ClassVar[bool] = True
    direct_vision_feed: ClassVar[bool] = False
    # -- loading -------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, path: str, options: LoadOptions = LoadOptions()) -> ImageTextAdapter:
        """Load with ``AutoProcessor`` and ``cls.auto_class`` from a hub id or a local directory."""
        import transformers

        processor = load_processor(path, options)
        auto = getattr(transformers, cls.auto_class)
        try:
            model = auto.from_pretrained(path, **model_kwargs(options))
        except (OSError, ValueError) as e:
            raise ModelError(f"cannot load {cls.family} model from {path!r} with {cls.auto_class}: {e}") from e
        model.eval()
        return cls(model, processor, source=str(path), revision=options.revision)

    def save_pretrained(self, out: str) -> None:
        """Weights (safetensors), config, processor and the ``vlmscope.json`` sidecar naming the family."""
        from vlmscope.models.sidecar import write_sidecar

        self.model.save_pretrained(out)
        self.processor.save_pretrained(out)
        write_sidecar(out, self.family)

    # -- ids and prompts -----------------------------------------------------
    @property
    def config(self) -> Any:
        return self.model.config

    @property
    def text_config(self) -> Any:
        return text_config(self.config)

    @property
    def tokenizer(self) -> Any:
        return self.processor.tokenizer

    @property
    def image_token_id(self) -> int:
        """From the config (``image_token_id`` or ``image_token_index``), never hard-coded."""
        for key in ("image_token_id", "image_token_index"):
            val = getattr(self.config, key, None)
            if val is not None:
                return int(val)
        raise ModelError(f"{self.source}: config has neither image_token_id nor image_token_index")

    @property
    def image_token(self) -> str:
        tok = getattr(self.processor, "image_token", None)
        return tok if tok is not None else self.tokenizer.convert_ids_to_tokens(self.image_token_id)

    def format_prompt(self, question: str) -> str:
        """The processor's chat template with one image and the question, plus the generation prefix."""
        template = getattr(self.processor, "chat_template", None)
        if template:
            messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}]
            return str(self.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False))
        return self.default_prompt.format(image=self.image_token, question=question)

    # -- batches -------------------------------------------------------------
    def processor_inputs(self, images: Sequence[Image], prompts: Sequence[str]) -> dict[str, Any]:
        """Run the processor on the batch (left padding); families add their own kwargs here."""
        out = self.processor(images=list(images), text=list(prompts), return_tensors="pt", padding=True)
        return dict(out)

    def encode(
        self,
        images: Sequence[Image],
        questions: Sequence[str],
        *,
        answers: Sequence[str] | None = None,
    ) -> EncodedBatch:
        """Left-padded batch; ``last_index`` is T-1 of the prompt (before any answer).

        With ``answers``, each sample's answer tokens (``answer_prefix + answer``,
        tokenized alone, then eos) are appended after its prompt tokens and the
        batch is left-padded again, so the prompt part is token-for-token what
        the model sees at inference; ``labels`` hold the answer ids (-100
        elsewhere) aligned with ``input_ids`` (the model shifts them).
        """
        import torch

        if len(images) != len(questions):
            raise ModelError(f"got {len(images)} images but {len(questions)} questions; pass one image per question")
        if answers is not None and len(answers) != len(questions):
            raise ModelError(f"got {len(answers)} answers for {len(questions)} questions")
        if not questions:
            raise ModelError("cannot encode an empty batch")
        prompts = [self.format_prompt(q) for q in questions]
        inputs = self.processor_inputs(images, prompts)
        ids: torch.Tensor = inputs["input_ids"]  # (B, T)
        mask: torch.Tensor = inputs["attention_mask"]  # (B, T)
        if bool((mask[:, -1] == 0).any()):
            raise ModelError("processor did not pad on the left; set tokenizer.padding_side='left'")
        image_mask = ids == self.image_token_id
        B, T = ids.shape
        last_index = torch.full((B,), T - 1, dtype=torch.long)
        labels = answer_mask = None
        if answers is not None:
            inputs, labels, answer_mask, image_mask = self._append_answers(inputs, answers, prompts)
            T2 = inputs["input_ids"].shape[1]
            n_answer = answer_mask.sum(1)
            last_index = T2 - 1 - n_answer
        if self.positions_from_mask:
            m = inputs["attention_mask"].long()
            inputs["position_ids"] = (m.cumsum(-1) - 1).clamp(min=0) * m
        grids = [self.patch_grid(inputs, i, int(image_mask[i].sum())) for i in range(B)]
        batch = EncodedBatch(
            inputs=inputs,
            attention_mask=inputs["attention_mask"],
            image_mask=image_mask,
            last_index=last_index,
            patch_grids=grids,
            labels=labels,
            answer_mask=answer_mask,
        )
        return self.finish_batch(batch)

    def finish_batch(self, batch: EncodedBatch) -> EncodedBatch:
        """What a family adds to the generic batch :meth:`encode` built (extras, token types, positions).

        The hook keeps :meth:`encode`'s checks, padding and answer layout in one
        place: families change the finished batch instead of re-wrapping
        ``encode``. The generic batch is returned as it is.
        """
        return batch

    def answer_ids(self, answer: str, prompt: str | None = None) -> list[int]:
        """Token ids appended after ``prompt`` for one answer: separator + ``answer``, then eos."""
        if self.answer_prefix is not None:
            sep = self.answer_prefix
        else:
            prompt = prompt if prompt is not None else self.format_prompt("")
            sep = "" if prompt[-1:].isspace() else " "
        ids = list(self.tokenizer(sep + answer, add_special_tokens=False)["input_ids"])
        eos = self.tokenizer.eos_token_id
        if eos is None:
            raise ModelError(f"{self.source}: tokenizer has no eos token; cannot build answer labels")
        return ids + [int(eos)]

    def _append_answers(
        self, inputs: dict[str, Any], answers: Sequence[str], prompts: Sequence[str]
    ) -> tuple[dict[str, Any], torch.Tensor, torch.Tensor, torch.Tensor]:
        """Append answer ids after each prompt and re-pad on the left.

        Every (B, T) tensor of ``inputs`` (``input_ids``, ``attention_mask``,
        ``token_type_ids``, ``mm_token_type_ids``, ...) is extended: answer
        positions get 1 in ``attention_mask``, the answer ids in ``input_ids`` and
        0 elsewhere; other tensors are kept as they are.
        """
        import torch

        ids, mask = inputs["input_ids"], inputs["attention_mask"]
        B, T = ids.shape
        extra = [self.answer_ids(a, p) for a, p in zip(answers, prompts)]
        lengths = mask.sum(1).tolist()
        T2 = max(int(n) + len(e) for n, e in zip(lengths, extra))
        pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        per_token = [k for k, v in inputs.items() if isinstance(v, torch.Tensor) and v.shape[:2] == (B, T)]
        out = dict(inputs)
        for k in per_token:
            fill = pad_id if k == "input_ids" else 0
            out[k] = torch.full((B, T2), fill, dtype=inputs[k].dtype)
        labels = torch.full((B, T2), -100, dtype=torch.long)
        answer_mask = torch.zeros((B, T2), dtype=torch.bool)
        for b in range(B):
            n, e = int(lengths[b]), extra[b]
            start = T2 - n - len(e)
            for k in per_token:
                out[k][b, start : start + n] = inputs[k][b, T - n :]
            a0 = start + n
            out["input_ids"][b, a0:] = torch.tensor(e, dtype=ids.dtype)
            out["attention_mask"][b, a0:] = 1
            labels[b, a0:] = torch.tensor(e, dtype=torch.long)
            answer_mask[b, a0:] = True
        image_mask = out["input_ids"] == self.image_token_id
        return out, labels, answer_mask, image_mask

    def patch_grid(self, inputs: dict[str, Any], index: int, n_image_tokens: int) -> tuple[int, int]:
        """(rows, cols) of sample ``index``'s image tokens; rows * cols == n_image_tokens.

        Default: a square-ish grid from the processed image size and the vision
        patch size (LLaVA-1.5: 336/14 -> 24 x 24), falling back to (1, n).
        """
        pv = inputs.get("pixel_values")
        patch = getattr(getattr(self.config, "vision_config", None), "patch_size", None)
        if pv is not None and patch and pv.ndim == 4:
            rows, cols = int(pv.shape[-2]) // int(patch), int(pv.shape[-1]) // int(patch)
            if rows * cols == n_image_tokens:
                return rows, cols
        return (1, n_image_tokens)

    # -- structure -----------------------------------------------------------
    def _module(self, path: str) -> Any:
        try:
            return operator.attrgetter(path)(self.model)
        except AttributeError as e:
            raise ModelError(f"{type(self.model).__name__} has no module {path!r} ({self.family} adapter)") from e

    @property
    def language_model(self) -> nn.Module:
        return self._module(self.language_model_path)

    @property
    def vision_tower(self) -> nn.Module:
        """The module at ``vision_paths[0]``."""
        return self._module(self.vision_paths[0])  # type: ignore[no-any-return]

    def projector_module_paths(self) -> tuple[str, ...]:
        return tuple(self.projector_paths)

    @property
    def vision_feature_layer(self) -> int:
        """The tower ``hidden_states`` index the LM's image tokens come from (the last one when several)."""
        layer = getattr(self.config, "vision_feature_layer", -1)
        return int(layer if isinstance(layer, int) else layer[-1])

    def vision_feed(self) -> VisionFeed | None:
        """``projector_paths[0](tower.hidden_states[vision_feature_layer])``, CLS dropped under the
        ``default`` select strategy; None unless the family sets ``direct_vision_feed``."""
        if not self.direct_vision_feed:
            return None
        return VisionFeed(
            tower=self.vision_tower,
            projector=self._module(self.projector_paths[0]),
            feature_layer=self.vision_feature_layer,
            drop_cls=str(getattr(self.config, "vision_feature_select_strategy", "default")) == "default",
        )

    def vision_feature_block(self) -> nn.Module:
        """The block whose output is ``hidden_states[vision_feature_layer]`` (index i >= 1 is block i - 1)."""
        blocks = self.vision_blocks()
        layer = self.vision_feature_layer
        idx = layer % (len(blocks) + 1) - 1
        if idx < 0:
            raise ModelError(f"vision_feature_layer {layer} is the embedding output; no vision block feeds the LM")
        return blocks[idx]  # type: ignore[no-any-return]

    @property
    def decoder_layers(self) -> Sequence[nn.Module]:
        return self.language_model.layers  # type: ignore[return-value]

    def mlp_down_proj(self, layer: int) -> nn.Linear:
        n = self.num_layers
        if not -n <= layer < n:
            raise ModelError(f"layer {layer} out of range for a {n}-layer LM")
        return self.decoder_layers[layer].mlp.down_proj  # type: ignore[no-any-return]

    @property
    def final_norm(self) -> nn.Module:
        return self.language_model.norm  # type: ignore[return-value]

    @property
    def unembedding(self) -> nn.Linear:
        return self._module(self.lm_head_path)  # type: ignore[no-any-return]

    @property
    def hidden_size(self) -> int:
        return int(self.text_config.hidden_size)

    @classmethod
    def tensor_names(cls, config: Any) -> TensorNames:
        """Names as stored in the safetensors files of a checkpoint of this config.

        transformers 5 renames weights on load and reverts the renaming on save
        (a LLaVA stores ``language_model.model.norm.weight`` for the runtime
        ``model.language_model.norm.weight``), so the runtime names are mapped
        through transformers' own save-time reversion on a meta-device model.
        """
        text = text_config(config)
        lm = cls.language_model_path
        tied = bool(getattr(config, "tie_word_embeddings", False) or getattr(text, "tie_word_embeddings", False))
        unembed = f"{lm}.embed_tokens.weight" if tied else f"{cls.lm_head_path}.weight"
        eps = getattr(text, "rms_norm_eps", None) or getattr(text, "layer_norm_eps", None) or 1e-6
        key = "text_config" if text is not config else None
        sentinel = 987654321
        runtime = {
            "norm": f"{lm}.norm.weight",
            "unembed": unembed,
            "down": f"{lm}.layers.{sentinel}.mlp.down_proj.weight",
        }
        disk = cls.checkpoint_names(config, runtime)
        return TensorNames(
            final_norm_weight=disk["norm"],
            unembedding_weight=disk["unembed"],
            down_proj_weight=disk["down"].replace(f".{sentinel}.", ".{layer}."),
            norm_kind="rms",
            norm_eps=float(eps),
            text_config_key=key,
        )

    @classmethod
    def checkpoint_names(cls, config: Any, runtime: dict[str, str]) -> dict[str, str]:
        """Map runtime parameter names (values of ``runtime``) to their on-disk names."""
        import torch
        import transformers
        from transformers.core_model_loading import revert_weight_conversion

        with torch.device("meta"):
            model = getattr(transformers, cls.auto_class).from_config(config)
        out = {}
        for k, name in runtime.items():
            reverted = revert_weight_conversion(model, {name: torch.empty(0, device="meta")})
            if len(reverted) != 1:
                raise ModelError(f"cannot map {name!r} to a checkpoint name for {type(model).__name__}")
            out[k] = next(iter(reverted))
        return out

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """``vision`` / ``projector`` / ``language`` (LM incl. head); every parameter exactly once."""
        import torch

        seen: set[int] = set()
        groups: dict[str, list[Any]] = {"vision": [], "projector": [], "language": []}

        def take(mod: Any, group: str) -> None:
            params = [mod] if isinstance(mod, torch.nn.Parameter) else mod.parameters()
            for p in params:
                if id(p) not in seen:
                    seen.add(id(p))
                    groups[group].append(p)

        for path in self.vision_paths:
            take(self._module(path), "vision")
        for path in self.projector_paths:
            take(self._module(path), "projector")
        take(self.language_model, "language")
        take(self.unembedding, "language")
        rest = [n for n, p in self.model.named_parameters() if id(p) not in seen]
        if rest:
            raise ModelError(f"{self.family} adapter leaves parameters outside every group: {rest[:5]}")
        return groups
