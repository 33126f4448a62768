"""Logit lens and FFN value-vector analysis off cached activation stores (CPU, no model load).

``logit_lens(store, model_dir, config, out)`` reads every stored layer through
the model's final norm and unembedding; ``ffn_analysis(store, model_dir,
config, out)`` projects the top (and random) FFN neurons' value vectors
through the unembedding. Both read only the needed tensors from the
checkpoint's safetensors files (:mod:`vlmscope.lens.weights`). Public names
are re-exported lazily so ``import vlmscope.lens`` does not import torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["FfnConfig", "LogitLensConfig", "LensModel", "ffn_analysis", "logit_lens", "open_lens_model"]

if TYPE_CHECKING:  # pragma: no cover
    from vlmscope.lens.config import FfnConfig, LogitLensConfig
    from vlmscope.lens.ffn import ffn_analysis
    from vlmscope.lens.logit import logit_lens
    from vlmscope.lens.weights import LensModel, open_lens_model

_WHERE = {
    "FfnConfig": "vlmscope.lens.config",
    "LogitLensConfig": "vlmscope.lens.config",
    "ffn_analysis": "vlmscope.lens.ffn",
    "logit_lens": "vlmscope.lens.logit",
    "LensModel": "vlmscope.lens.weights",
    "open_lens_model": "vlmscope.lens.weights",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'vlmscope.lens' has no attribute {name!r}")
