"""LLaVA-1.5 (Llama LM) and LLaVA-Med-like (Mistral LM) tiny checkpoints pass the conformance suite."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from tests.models.conformance import AdapterConformance


class TestLlava(AdapterConformance):
    tiny = "llava"
    family = "llava"


class TestLlavaMistral(AdapterConformance):
    tiny = "llava-mistral"
    family = "llava"


def test_mistral_variant_has_a_mistral_text_config(tiny_checkpoint: Callable[[str], Path]) -> None:
    cfg = json.loads((tiny_checkpoint("llava-mistral") / "config.json").read_text())
    assert cfg["model_type"] == "llava"
    assert cfg["text_config"]["model_type"] == "mistral"
