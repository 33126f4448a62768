"""Capture everything a store needs in ONE forward pass, with hooks that keep only that.

Hooks sit on the adapter's modules only (``decoder_layers``, their attention
module, ``mlp_down_proj(i)``), so no family is special-cased. Each hook
reduces its (B, T, ...) tensor to the few positions the store keeps
(B, D) at once; full per-layer states and T x T attention maps are never
kept beyond the hook call.

Layer numbering (the store's ``layer`` coordinate; L decoder blocks):
layer 0 is the embedding output (the input of block 0), layer k >= 1 the
residual stream after block k-1, *before* the LM's final norm (transformers'
``output_hidden_states[-1]`` is ``final_norm`` of our layer L). Attention and
MLP values at layer k come from block k-1 (the block that produced hidden
layer k); at layer 0 they are NaN by definition.

Attention (``--attention``, eager attention): the query row of the last
prompt token, restricted to the image tokens, reduced over heads by mean and
max, in image-token order (row-major on the patch grid): ``(B, 2, P)``.
Entropy: the head-mean row restricted to image tokens, renormalised to sum
to 1, ``H = -sum p log p`` in nats (0 = all mass on one patch,
``log P`` = uniform).

When the highest stored layer is below L the forward pass stops right after
its block (later blocks and the LM head are skipped).
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from vlmscope.activations.config import position_variable
from vlmscope.errors import ModelError

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from vlmscope.models.adapter import EncodedBatch, ModelAdapter

__all__ = [
    "CaptureSpec",
    "ActivationCapture",
    "pool_positions",
    "reduce_attention",
    "attention_module",
    "forward_kwargs",
]


@dataclass(frozen=True)
class CaptureSpec:
    """What to capture: stored layer indices (0..L), positions, attention, mlp, patch count."""

    layers: tuple[int, ...]
    positions: tuple[str, ...]
    attention: bool = False
    mlp: bool = False
    patches: int = 0
    """P = rows * cols image tokens per sample (needed when ``attention``)."""


class _StopForward(Exception):
    """Raised by the hook of the last needed block to skip the rest of the forward pass."""


def attention_module(adapter: ModelAdapter, block: int) -> Any:
    """The self-attention module of decoder block ``block`` (returns ``(output, weights)`` when eager)."""
    return adapter.attention_module(block)


def forward_kwargs(model: Any) -> dict[str, Any]:
    """Extra ``model(...)`` kwargs that save work: no KV cache, logits of the last position only."""
    params = inspect.signature(model.forward).parameters
    out: dict[str, Any] = {"use_cache": False}
    if "logits_to_keep" in params:
        out["logits_to_keep"] = 1
    return out


def pool_positions(
    h: torch.Tensor,
    positions: Sequence[str],
    *,
    last_index: torch.Tensor,
    text_weights: torch.Tensor | None,
    image_weights: torch.Tensor | None,
    image_last: torch.Tensor | None,
) -> dict[str, torch.Tensor]:
    """Reduce a (B, T, D) hidden state to (B, D) per position.

    ``text_weights``/``image_weights``: (B, T) rows summing to 1 over the
    tokens averaged (zero on padding), so a mean is one batched matmul.
    """
    import torch

    ar = torch.arange(h.shape[0], device=h.device)
    out = {}
    for pos in positions:
        if pos == "last":
            out[pos] = h[ar, last_index.to(h.device)]
        elif pos == "image_last":
            assert image_last is not None
            out[pos] = h[ar, image_last.to(h.device)]
        else:
            w = text_weights if pos == "text_mean" else image_weights
            assert w is not None
            # float32 weights and sums: 1/count in bfloat16 would bias every mean by up to 0.4%
            hf = h if h.dtype == torch.float32 else h.float()
            out[pos] = torch.bmm(w.to(device=h.device, dtype=torch.float32).unsqueeze(1), hf).squeeze(1)
    return out


def reduce_attention(
    weights: torch.Tensor, last_index: torch.Tensor, image_index: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Last-token attention to the image tokens: ((B, 2, P) mean/max over heads, (B,) entropy).

    ``weights``: (B, H, T, T) softmax weights; ``image_index``: (B, P) token
    positions of each sample's image tokens in grid order.
    """
    import torch

    B, H = weights.shape[:2]
    ar = torch.arange(B, device=weights.device)
    row = weights[ar, :, last_index.to(weights.device), :]  # (B, H, T)
    idx = image_index.to(weights.device).unsqueeze(1).expand(B, H, -1)
    img = row.gather(-1, idx).float()  # (B, H, P)
    mean = img.mean(1)
    mx = img.amax(1)
    p = mean / mean.sum(-1, keepdim=True).clamp_min(torch.finfo(torch.float32).tiny)
    entropy = -torch.special.xlogy(p, p).sum(-1)
    return torch.stack([mean, mx], dim=1), entropy


class ActivationCapture:
    """Hooks on an adapter's modules; :meth:`run` does one forward pass and returns the reductions.

    Use as a context manager (hooks are removed on exit). Outputs of
    :meth:`run` are float32 CPU tensors keyed by store variable name:
    ``hidden[_<pos>]`` (B, nL, D), ``attention`` (B, nL, 2, P),
    ``attention_entropy`` (B, nL), ``mlp`` (B, nL, F).
    """

    def __init__(self, adapter: ModelAdapter, spec: CaptureSpec) -> None:
        self.adapter = adapter
        self.spec = spec
        self.num_layers = adapter.num_layers
        self._handles: list[Any] = []
        self._state: dict[str, Any] | None = None
        self._fwd_kwargs = forward_kwargs(adapter.model)
        top = max(spec.layers)
        # block after which nothing more is needed (None: run the whole model)
        self._stop_block: int | None = top - 1 if top < self.num_layers else None

    # -- hooks ---------------------------------------------------------------
    def __enter__(self) -> ActivationCapture:
        layers = self.adapter.decoder_layers
        for j, k in enumerate(self.spec.layers):
            if k == 0:
                self._handles.append(layers[0].register_forward_pre_hook(self._embed_hook(j), with_kwargs=True))
                continue
            block = k - 1
            self._handles.append(layers[block].register_forward_hook(self._block_hook(j, block)))
            if self.spec.attention:
                mod = attention_module(self.adapter, block)
                self._handles.append(mod.register_forward_hook(self._attention_hook(j)))
            if self.spec.mlp:
                proj = self.adapter.mlp_down_proj(block)
                self._handles.append(proj.register_forward_pre_hook(self._mlp_hook(j)))
        return self

    def __exit__(self, *exc: object) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()

    def _store_hidden(self, j: int, h: torch.Tensor) -> None:
        st = self._state
        assert st is not None
        pooled = pool_positions(
            h,
            self.spec.positions,
            last_index=st["last_index"],
            text_weights=st["text_weights"],
            image_weights=st["image_weights"],
            image_last=st["image_last"],
        )
        for pos, v in pooled.items():
            buf = st["out"][position_variable(pos)]
            buf[:, j] = v.to(device=buf.device, dtype=buf.dtype)

    def _embed_hook(self, j: int) -> Any:
        def hook(module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            h = args[0] if args else kwargs["hidden_states"]
            self._store_hidden(j, h)
            if self._stop_block == -1:
                raise _StopForward

        return hook

    def _block_hook(self, j: int, block: int) -> Any:
        def hook(module: Any, args: Any, output: Any) -> None:
            h = output[0] if isinstance(output, (tuple, list)) else output
            self._store_hidden(j, h)
            if block == self._stop_block:
                raise _StopForward

        return hook

    def _attention_hook(self, j: int) -> Any:
        def hook(module: Any, args: Any, output: Any) -> None:
            st = self._state
            assert st is not None
            weights = output[1] if isinstance(output, (tuple, list)) and len(output) > 1 else None
            if weights is None:
                raise ModelError(
                    "the attention module returned no weights: load the model with "
                    "attn_implementation='eager' (extract does this for --attention)"
                )
            maps, ent = reduce_attention(weights, st["last_index"], st["image_index"])
            buf = st["out"]["attention"]
            buf[:, j] = maps.to(buf.device)
            st["out"]["attention_entropy"][:, j] = ent.to(buf.device)

        return hook

    def _mlp_hook(self, j: int) -> Any:
        def hook(module: Any, args: tuple[Any, ...]) -> None:
            st = self._state
            assert st is not None
            x = args[0]  # (B, T, F)
            ar = _arange(x)
            buf = st["out"]["mlp"]
            buf[:, j] = x[ar, st["last_index"].to(x.device)].to(device=buf.device, dtype=buf.dtype)

        return hook

    # -- running -------------------------------------------------------------
    def _prepare(self, batch: EncodedBatch, device: Any) -> dict[str, Any]:
        import torch

        B, T = batch.attention_mask.shape
        spec = self.spec
        nL = len(spec.layers)
        D = self.adapter.hidden_size
        state: dict[str, Any] = {"last_index": batch.last_index.to(device)}
        image_mask = batch.image_mask.to(device)
        n_img = image_mask.sum(1)
        needs_image = {"image_mean", "image_last"} & set(spec.positions) or spec.attention
        if needs_image and bool((n_img == 0).any()):
            raise ModelError("a sample has no image tokens; image positions and attention need them")
        state["text_weights"] = state["image_weights"] = state["image_last"] = state["image_index"] = None
        if "text_mean" in spec.positions:
            text = batch.text_mask.to(device).float()
            state["text_weights"] = text / text.sum(1, keepdim=True).clamp_min(1)
        if "image_mean" in spec.positions:
            img = image_mask.float()
            state["image_weights"] = img / img.sum(1, keepdim=True).clamp_min(1)
        if "image_last" in spec.positions:
            ar = torch.arange(T, device=device).expand(B, T)
            state["image_last"] = torch.where(image_mask, ar, -1).amax(1)
        if spec.attention:
            counts = n_img.tolist()
            if any(c != spec.patches for c in counts):
                raise ModelError(
                    f"image token counts {counts} differ from the store's patch grid ({spec.patches} tokens); "
                    "attention maps need the same grid for every sample (use a fixed image resolution)"
                )
            state["image_index"] = image_mask.nonzero()[:, 1].view(B, spec.patches)
        out: dict[str, torch.Tensor] = {}
        for pos in spec.positions:
            out[position_variable(pos)] = torch.empty((B, nL, D), dtype=torch.float32, device=device)
        nan = float("nan")
        if spec.attention:
            out["attention"] = torch.full((B, nL, 2, spec.patches), nan, dtype=torch.float32, device=device)
            out["attention_entropy"] = torch.full((B, nL), nan, dtype=torch.float32, device=device)
        if spec.mlp:
            F = int(self.adapter.mlp_down_proj(0).in_features)
            out["mlp"] = torch.full((B, nL, F), nan, dtype=torch.float32, device=device)
        state["out"] = out
        return state

    def run(self, batch: EncodedBatch) -> dict[str, torch.Tensor]:
        """One forward pass over ``batch``; returns float32 CPU tensors per variable (see class doc)."""
        import torch

        device = self.adapter.device
        batch = batch.to(device)
        self._state = self._prepare(batch, device)
        try:
            with torch.inference_mode():
                try:
                    self.adapter.model(**batch.inputs, **self._fwd_kwargs)
                except _StopForward:
                    pass
            out = self._state["out"]
            return {k: v.cpu() for k, v in out.items()}
        finally:
            self._state = None


def _arange(x: torch.Tensor) -> torch.Tensor:
    import torch

    return torch.arange(x.shape[0], device=x.device)
