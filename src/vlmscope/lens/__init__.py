"""Logit lens and FFN value-vector analysis off cached activation stores (CPU, no model load).

``logit_lens(store, model_dir, config, out)`` reads every stored layer through
the model's final norm and unembedding; ``ffn_analysis(store, model_dir,
config, out)`` projects the top (and random) FFN neurons' value vectors
through the unembedding. Each is ``compute_*`` (a labelled xarray Dataset
with the provenance record in ``attrs``; nothing written) then ``write_*``.
Both read only the needed tensors from the
checkpoint's safetensors files (:mod:`vlmscope.lens.weights`). Public names
are re-exported lazily so ``import vlmscope.lens`` does not import torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vlmscope._lazy import lazy_exports

__all__ = [
    "FfnConfig",
    "LensModel",
    "LogitLensConfig",
    "compute_ffn",
    "compute_logit_lens",
    "ffn_analysis",
    "logit_lens",
    "open_lens_model",
    "write_ffn",
    "write_logit_lens",
]

if TYPE_CHECKING:  # pragma: no cover
    from vlmscope.lens.config import FfnConfig, LogitLensConfig
    from vlmscope.lens.ffn import compute_ffn, ffn_analysis, write_ffn
    from vlmscope.lens.logit import compute_logit_lens, logit_lens, write_logit_lens
    from vlmscope.lens.weights import LensModel, open_lens_model

_WHERE, __getattr__ = lazy_exports(
    __name__,
    {
        "config": ("FfnConfig", "LogitLensConfig"),
        "ffn": ("ffn_analysis", "compute_ffn", "write_ffn"),
        "logit": ("logit_lens", "compute_logit_lens", "write_logit_lens"),
        "weights": ("LensModel", "open_lens_model"),
    },
)
