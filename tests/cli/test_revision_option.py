"""Every verb that takes a model passes ``--revision`` on to its library call (and None when not given).

The library calls are replaced by spies: that each honours ``revision`` is
tests/models/test_revision.py's job; here only the CLI edge is checked.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from vlmscope.cli.app import app

runner = CliRunner()

_METRICS = {
    "best_layer": 1, "best_layer_top1_accuracy": 0.5, "final_layer": 1, "final_layer_top1_accuracy": 0.5,
    "gt_in_top": 0.5, "gt_in_random": 0.1, "first_layer_above_baseline": 1,
}  # fmt: skip
"""Enough metrics for every verb's printed summary."""

VERBS: dict[str, tuple[str, list[str], Any]] = {
    "extract": ("vlmscope.activations.extract:extract", ["extract", "--model", "M", "--dataset", "{d}", "--out", "{o}"], "{o}"),
    "evaluate": ("vlmscope.evaluation:evaluate", ["evaluate", "--model", "M", "--dataset", "{d}", "--out", "{o}"], {}),
    "train projector": ("vlmscope.training.trainers.projector:train_projector",
                        ["train", "projector", "--model", "M", "--dataset", "{d}", "--out", "{o}"], {}),
    "train lora": ("vlmscope.training.trainers.lora:train_lora",
                   ["train", "lora", "--model", "M", "--dataset", "{d}", "--out", "{o}"], {}),
    "train clip": ("vlmscope.training.trainers.clip:train_clip",
                   ["train", "clip", "--model", "M", "--dataset", "{d}", "--out", "{o}"], {}),
    "train default": ("vlmscope.training.trainers.default_model:train_default",
                      ["train", "default", "--model", "M", "--dataset", "{d}", "--out", "{o}"], {}),
    "train output-layer": ("vlmscope.training.trainers.output_layer:train_output_layer",
                           ["train", "output-layer", "--store", "{d}", "--model", "M", "--out", "{o}"], {}),
    "merge adapter": ("vlmscope.models.merge:merge_adapter", ["merge", "--base", "M", "--adapter", "{d}", "--out", "{o}"], {}),
    "merge tensors": ("vlmscope.models.merge:merge_tensors", ["merge", "--base", "M", "--tensors", "{d}", "--out", "{o}"], {}),
    "merge projector": ("vlmscope.models.merge:merge_tensors",
                        ["merge", "--base", "M", "--projector", "{d}/p.safetensors", "--out", "{o}"], {}),
    "merge projector bin": ("vlmscope.models.projector_bin:merge_projector_bin",
                            ["merge", "--base", "M", "--projector", "{d}/mm_projector.bin", "--out", "{o}"], {}),
    "merge vision tower": ("vlmscope.models.tower_swap:merge_vision_tower",
                           ["merge", "--base", "M", "--vision-tower", "{d}", "--out", "{o}"], {}),
    "gradcam": ("vlmscope.attribution.gradcam:gradcam", ["gradcam", "--model", "M", "--dataset", "{d}", "--out", "{o}"], []),
    "lens logit": ("vlmscope.lens.logit:logit_lens", ["lens", "logit", "{d}", "--model", "M", "--out", "{o}"], _METRICS),
    "lens ffn": ("vlmscope.lens.ffn:ffn_analysis", ["lens", "ffn", "{d}", "--model", "M", "--out", "{o}"], _METRICS),
}  # fmt: skip
"""verb -> (library function it calls, argv with {d} an existing input and {o} the output, what the spy returns)."""


@pytest.mark.parametrize("verb", list(VERBS))
@pytest.mark.parametrize("revision", [None, "v2"])
def test_revision_reaches_the_library(verb: str, revision: str | None, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    import importlib

    target, argv, returned = VERBS[verb]
    module, name = target.split(":")
    seen: list[Any] = []

    def spy(*args: Any, **kwargs: Any) -> Any:
        seen.append(kwargs.get("revision", "<not passed>"))
        return returned.replace("{o}", str(tmp_path / "o")) if isinstance(returned, str) else returned

    monkeypatch.setattr(importlib.import_module(module), name, spy)
    args = [a.replace("{d}", str(tmp_path)).replace("{o}", str(tmp_path / "o")) for a in argv]
    res = runner.invoke(app, args + ([] if revision is None else ["--revision", revision]))
    assert res.exit_code == 0, res.output
    assert seen == [revision]
