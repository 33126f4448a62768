"""Logit lens and FFN value-vector analysis off cached activation stores (CPU, no model load).

``logit_lens(store, model_dir, config, out)`` reads every stored layer through
the model's final norm and unembedding; ``ffn_analysis(store, model_dir,
config, out)`` projects the top (and random) FFN neurons' value vectors
through the unembedding. Both read only the needed tensors from the
checkpoint's safetensors files (:mod:`vlmscope.lens.weights`). Public names
are re-exported lazily so ``import vlmscope.lens`` does not import torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vlmscope._lazy import lazy_exports

__all__ = ["FfnConfig", "LogitLensConfig", "LensModel", "ffn_analysis", "logit_lens", "open_lens_model"]

if TYPE_CHECKING:  # pragma: no cover
    from vlmscope.lens.config import FfnConfig, LogitLensConfig
    from vlmscope.lens.ffn import ffn_analysis
    from vlmscope.lens.logit import logit_lens
    from vlmscope.lens.weights import LensModel, open_lens_model

_WHERE, __getattr__ = lazy_exports(
    __name__,
    {
        "config": ("FfnConfig", "LogitLensConfig"),
        "ffn": ("ffn_analysis",),
        "logit": ("logit_lens",),
        "weights": ("LensModel", "open_lens_model"),
    },
)
