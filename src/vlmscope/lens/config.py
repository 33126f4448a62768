"""``LogitLensConfig`` and ``FfnConfig``: the knobs of ``vlmscope lens logit`` / ``lens ffn``.

Field names match the CLI options (``top_k`` is ``--top-k``) and the
``lens`` / ``ffn`` sections of ``params.yaml``, so a validation error names
the option the user typed.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["LogitLensConfig", "FfnConfig"]


class LogitLensConfig(BaseModel):
    """How to read each stored layer through the model's output head (``params.yaml`` section ``lens``)."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    top_k: int = Field(10, ge=1, le=1000)
    """Tokens kept per (sample, layer) in ``topk.parquet``."""
    final_norm: bool = True
    """Apply the LM's final norm before the unembedding at every layer (the store holds the residual
    stream *before* the final norm at every layer, the last included). ``False`` reproduces the
    original counting study, which fed the raw residual to the head."""
    target_column: str = "answer"
    """Store coordinate (manifest column) whose first answer token is the lens target."""
    variable: str = Field("hidden", pattern=r"^hidden(_[a-z_]+)?$")
    """Store variable with dims ``(sample, layer, dim)``: ``hidden`` (last prompt token) or
    ``hidden_<position>`` (``text_mean``, ``image_mean``, ``image_last``)."""
    batch_size: int = Field(256, ge=1, le=65536)
    """Samples per matmul; bounds memory at ``batch_size x vocabulary`` floats."""


class FfnConfig(BaseModel):
    """FFN value-vector analysis of the unseen-class study (``params.yaml`` section ``ffn``)."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    neurons: int = Field(3, ge=1, le=1000)
    """Top neurons (by activation value) per (sample, layer), and random neurons in the baseline."""
    tokens: int = Field(3, ge=1, le=1000)
    """Top tokens kept per neuron value vector."""
    seed: int = Field(0, ge=0)
    """Seed of the random-neuron baseline (same seed, same neurons)."""
    label_column: str = "answer"
    """Store coordinate holding the ground-truth label (the class name in the unseen-class study)."""
    batch_size: int = Field(1024, ge=1, le=65536)
    """Neuron value vectors per matmul; bounds memory at ``batch_size x vocabulary`` floats."""
