"""The report's knobs, validated once at the boundary (CLI options or ``params.yaml``)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["ReportConfig"]


class ReportConfig(BaseModel):
    """How much of each artifact the HTML report shows.

    The report reads whatever exists under the artifacts root; these fields
    only bound how many examples and pixels it spends on each part, so the
    page stays a few MB even for real-scale runs.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    title: str = Field("vlmscope report", min_length=1, max_length=200)
    """Page title and top heading."""
    attention_examples: int = Field(3, ge=0, le=32)
    """Samples (first test-split samples by ``sample_id``) drawn with attention overlays; 0 skips the overlays."""
    attention_layers: int = Field(4, ge=1, le=16)
    """Evenly spaced layers (first and last included) shown per overlay sample."""
    attention_stat: Literal["mean", "max"] = "mean"
    """Head reduction of the stored attention map drawn in the overlays."""
    ffn_examples: int = Field(3, ge=0, le=50)
    """Rows of ``ffn.jsonl`` shown as examples per model x dataset."""
    ffn_layers: int = Field(4, ge=1, le=64)
    """Evenly spaced layers (last included) whose top / random tokens each FFN example shows."""
    max_table_rows: int = Field(60, ge=1, le=10_000)
    """Rows shown of a long table (per-group tables); the rest is counted, not printed."""
    dpi: int = Field(80, ge=40, le=300)
    """Resolution of every PNG; the embedded page grows with its square."""
