"""``ExtractConfig``: every knob of an extraction, validated at the boundary.

The CLI builds it from its options, DVC stages from the ``extract`` section of
``params.yaml``; :func:`vlmscope.activations.extract.extract` takes it plus
the model, dataset and output paths.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["ExtractConfig", "POSITIONS", "position_variable"]

POSITIONS: tuple[str, ...] = ("last", "text_mean", "image_mean", "image_last")
"""Token positions the residual stream can be read at (``last`` = last prompt token)."""


def position_variable(position: str) -> str:
    """Store variable of a position: ``hidden`` for ``last``, ``hidden_<position>`` otherwise."""
    return "hidden" if position == "last" else f"hidden_{position}"


class ExtractConfig(BaseModel):
    """What to capture and how; see ``vlmscope extract --help``."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    batch_size: int = Field(16, ge=1, le=4096)
    """Samples per forward pass (results do not depend on it beyond float rounding)."""
    positions: tuple[Literal["last", "text_mean", "image_mean", "image_last"], ...] = ("last",)
    """Token positions of the residual stream to store; ``last`` is always stored (as ``hidden``).

    ``text_mean``: mean over real (non-padding) non-image tokens; ``image_mean``:
    mean over image tokens; ``image_last``: the last image token."""
    layers: Literal["all"] | tuple[int, ...] = "all"
    """``all`` (0..L) or layer indices; 0 is the embedding output, k the output of decoder block k-1."""
    attention: bool = False
    """Store the last prompt token's attention to the image tokens (mean/max over heads) and its entropy.
    Loads the model with eager attention."""
    mlp: bool = False
    """Store the MLP down projection's input (the FFN activation) at the last prompt token."""
    dtype: Literal["float16", "bfloat16", "float32"] = "bfloat16"
    """Storage dtype. float16 refuses values beyond +-65504 (use bfloat16 then)."""
    model_dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    """Compute dtype of the model: ``auto`` is float32 on CPU and bfloat16 on CUDA."""
    device: Literal["cpu", "cuda", "auto"] = "auto"
    """``auto``: CUDA when available (``cuda:<LOCAL_RANK>`` under torchrun), else CPU."""
    on_error: Literal["stop", "skip"] = "stop"
    """Unreadable image: ``stop`` (name it; keep finished work) or ``skip`` (record it, NaN row)."""
    max_image_pixels: int = Field(89_478_485, ge=1, le=178_956_970)
    """Images declaring more pixels are unreadable (a decompression bomb); PIL refuses over 178956970 anyway."""
    shard_samples: int = Field(1024, ge=1, le=1_000_000)
    """Samples per shard file; also the unit of resumption and of the writer's memory."""
    prefetch_batches: int = Field(2, ge=1, le=64)
    """Batches loaded and encoded ahead of the forward pass (bounded queue)."""
    loader_threads: int = Field(4, ge=1, le=64)
    """Threads decoding images (PIL releases the GIL), two batches ahead of the processor."""
    seed: int = Field(0, ge=0)
    """Seeds torch before the run (extraction has no randomness; recorded for provenance)."""

    @field_validator("positions", mode="before")
    @classmethod
    def _split_positions(cls, v: object) -> object:
        if isinstance(v, str):
            v = [p.strip() for p in v.split(",") if p.strip()]
        return v

    @field_validator("positions")
    @classmethod
    def _normalise_positions(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        wanted = set(v) | {"last"}
        return tuple(p for p in POSITIONS if p in wanted)  # canonical order, no duplicates

    @field_validator("layers", mode="before")
    @classmethod
    def _parse_layers(cls, v: object) -> object:
        if isinstance(v, str) and v.strip() != "all":
            try:
                return tuple(int(x) for x in v.split(",") if x.strip())
            except ValueError:
                raise ValueError(f"layers must be 'all' or comma-separated integers like 0,4,8; got {v!r}") from None
        if isinstance(v, str):
            return "all"
        return v

    @field_validator("layers")
    @classmethod
    def _check_layers(cls, v: object) -> object:
        if v == "all":
            return v
        layers = tuple(v)  # type: ignore[arg-type]
        if not layers:
            raise ValueError("layers must not be empty; use 'all' or list indices")
        if any(i < 0 for i in layers):
            raise ValueError(f"layer indices must be >= 0 (0 = embedding output), got {list(layers)}")
        return tuple(sorted(set(layers)))

    def resolve_layers(self, num_layers: int) -> tuple[int, ...]:
        """Stored layer indices for an LM of ``num_layers`` decoder blocks (0..num_layers)."""
        from vlmscope.errors import ConfigError

        if self.layers == "all":
            return tuple(range(num_layers + 1))
        bad = [i for i in self.layers if i > num_layers]
        if bad:
            raise ConfigError(
                f"--layers {','.join(map(str, self.layers))}: {bad} out of range; this model has "
                f"{num_layers} decoder blocks, so layers are 0..{num_layers}"
            )
        return tuple(self.layers)
