"""Per-layer linear probes off cached activation stores, with control tasks and bootstrap CIs.

``run_probes(store, ProbeConfig(label=...), out)`` is the operation behind
``vlmscope probe`` and the DVC probe stages: ``compute_probes`` (the labelled
result in memory, nothing written) then ``write_probe_run``; ``LogisticProbe`` and
``LinearSVMProbe`` are the estimators (sklearn's contract, batched over
layers); ``fit_linear`` is the batched torch solver under both. Heavy
imports (torch, sklearn) happen on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vlmscope._lazy import lazy_exports

__all__ = [
    "LinearSVMProbe",
    "LogisticProbe",
    "ProbeConfig",
    "ProbeResult",
    "ProbeRun",
    "compute_probes",
    "control_labels",
    "fit_layers",
    "fit_linear",
    "planted_dataset",
    "run_probes",
    "write_probe_run",
]

if TYPE_CHECKING:  # pragma: no cover
    from vlmscope.probing.backends import fit_layers
    from vlmscope.probing.config import ProbeConfig
    from vlmscope.probing.controls import control_labels
    from vlmscope.probing.estimators import LinearSVMProbe, LogisticProbe
    from vlmscope.probing.run import ProbeResult, ProbeRun, compute_probes, run_probes, write_probe_run
    from vlmscope.probing.solver import fit_linear
    from vlmscope.probing.synthetic import planted_dataset

_WHERE, __getattr__ = lazy_exports(
    __name__,
    {
        "config": ("ProbeConfig",),
        "run": ("ProbeResult", "run_probes", "ProbeRun", "compute_probes", "write_probe_run"),
        "estimators": ("LogisticProbe", "LinearSVMProbe"),
        "backends": ("fit_layers",),
        "solver": ("fit_linear",),
        "controls": ("control_labels",),
        "synthetic": ("planted_dataset",),
    },
)
