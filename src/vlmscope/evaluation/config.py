"""``EvaluateConfig``: every knob of ``vlmscope evaluate``, validated at the boundary."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["EvaluateConfig", "Mode"]

Mode = Literal["generate", "option-loss", "contrastive"]


class EvaluateConfig(BaseModel):
    """How to score a model on a dataset (``params.yaml`` section ``evaluate``)."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    mode: Mode = "generate"
    """``generate``: greedy generation, then parse by ``answer_type``.
    ``option-loss``: each option scored by the mean NLL of its tokens after the prompt; lowest wins.
    ``contrastive``: CLIP/SigLIP image-text score of each templated option; highest wins."""
    batch_size: int = Field(default=8, ge=1, le=4096)
    """Samples per forward pass (option-loss: (sample, option) pairs per pass)."""
    max_new_tokens: int = Field(default=10, ge=1, le=1024)
    """Generation budget per answer (the counting study used 5)."""
    split: Literal["train", "valid", "test", "all"] = "test"
    """Which manifest rows to score."""
    limit: int | None = Field(default=None, ge=1)
    """Score only the first N rows of the split (smoke runs)."""
    contrastive_template: str = "a photo of {option}."
    """Text per option in contrastive mode; ``{option}`` is the option text."""
    group_by: list[str] | None = None
    """Label columns to break accuracy down by; ``None`` picks them (see ``pick_group_columns``)."""
    max_group_values: int = Field(default=30, ge=1)
    """Automatic group columns have at most this many distinct values."""
    class_column: str | None = None
    """Ground-truth class for macro accuracy; ``None``: the correct option text, else the normalised answer."""
    pair_key: list[str] = Field(default_factory=lambda: ["source_id"], min_length=1)
    """Columns linking an ``original`` row to its ``masked`` copy (relations study)."""
    pair_group_by: list[str] = Field(default_factory=lambda: ["query_type"])
    """Columns to break the original/masked pair stats down by (those present; the original row's value)."""
    dtype: Literal["float32", "float16", "bfloat16", "auto"] = "float32"
    device_map: str | None = None
    """``None`` = CPU; ``cuda``, ``auto``, ... as transformers takes it."""
    family: str | None = None
    """Model family; ``None`` detects it from the checkpoint."""
    max_image_pixels: int = Field(default=89_478_485, ge=1, le=178_956_970)
    """Images declaring more pixels are unreadable (a decompression bomb); PIL refuses over 178956970 anyway."""

    @field_validator("contrastive_template")
    @classmethod
    def _template(cls, v: str) -> str:
        if "{option}" not in v:
            raise ValueError(f"contrastive_template must contain {{option}}, got {v!r}")
        try:
            v.format(option="x")
        except (KeyError, IndexError, ValueError) as e:
            raise ValueError(f"contrastive_template {v!r} has an unknown placeholder: {e}") from None
        return v
