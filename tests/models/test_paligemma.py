"""PaliGemma (Gemma LM) and PaliGemma 2 (Gemma 2 LM) tiny checkpoints pass the conformance suite,
plus PaliGemma specifics: its prefix prompt format, prefix-LM attention with token_type_ids,
Gemma's (1 + w) RMSNorm and Gemma 2's final logit soft-capping."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from tests.models.conformance import ATOL, AdapterConformance

from vlmscope.errors import ModelError
from vlmscope.models.families.paligemma import build_tiny_paligemma, prefix_positions
from vlmscope.models.lm_adapter import ImageTextAdapter


def _rms_plus_one(h: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """Gemma's final norm written out: x * rsqrt(mean(x^2) + eps) * (1 + w)."""
    return h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + eps) * (1.0 + weight)


class PaliGemmaConformance(AdapterConformance):
    lm: str

    def test_prompt_layout_and_token_types(self, adapter: ImageTextAdapter) -> None:
        """``pad* <image>*n <bos> question \\n``, all of it prefix (type 0); answers are suffix (type 1)."""
        tok = adapter.tokenizer
        batch = adapter.encode(self.make_images(), list(self.questions), answers=["red", "left of", "3"])
        n = adapter.processor.image_seq_length
        for b, q in enumerate(self.questions):
            ids = batch.inputs["input_ids"][b]
            real = ids[batch.attention_mask[b].bool()]
            assert real[:n].tolist() == [adapter.image_token_id] * n
            assert int(real[n]) == tok.bos_token_id
            li = int(batch.last_index[b])
            assert tok.decode(ids[: li + 1], skip_special_tokens=True) == q + "\n"
            tt = batch.inputs["token_type_ids"][b]
            assert torch.equal(tt.bool(), batch.answer_mask[b])
        assert batch.patch_grids == [(3, 3)] * 3

    def test_prefix_attention_is_bidirectional(self, adapter: ImageTextAdapter) -> None:
        """Image tokens see the question after them (prefix-LM), so changing it changes their states."""
        image = self.make_images()[:1]
        a = adapter.encode(image, ["What color is the circle?"])
        b = adapter.encode(image, ["What color is the square?"])
        assert a.inputs["input_ids"].shape == b.inputs["input_ids"].shape
        first_image = int(torch.nonzero(a.image_mask[0])[0])
        ha = self._forward(adapter, a).hidden_states[-1][0, first_image]
        hb = self._forward(adapter, b).hidden_states[-1][0, first_image]
        assert float((ha - hb).abs().max()) > 1e-3

    def test_positions_are_one_indexed_from_the_mask(self, adapter: ImageTextAdapter) -> None:
        batch = adapter.encode(self.make_images(), list(self.questions))
        pos, mask = batch.inputs["position_ids"], batch.attention_mask.bool()
        for b in range(pos.shape[0]):
            assert pos[b, mask[b]].tolist() == list(range(1, int(mask[b].sum()) + 1))
            assert bool((pos[b, ~mask[b]] == 0).all())
        assert prefix_positions(torch.tensor([[0, 1, 1]])).tolist() == [[0, 1, 2]]

    def test_final_norm_is_rms_plus_one(self, adapter: ImageTextAdapter) -> None:
        names = type(adapter).tensor_names(adapter.model.config)
        assert names.norm_kind == "rms_plus_one"
        batch = adapter.encode(self.make_images()[:1], list(self.questions[:1]))
        captured: dict[str, torch.Tensor] = {}
        handle = adapter.decoder_layers[-1].register_forward_hook(
            lambda _m, _i, out: captured.update(h=out[0] if isinstance(out, tuple) else out)
        )
        try:
            out = self._forward(adapter, batch)
        finally:
            handle.remove()
        w = adapter.final_norm.weight.detach()
        torch.testing.assert_close(_rms_plus_one(captured["h"], w, names.norm_eps), out.hidden_states[-1],
                                   atol=ATOL, rtol=1e-4)  # fmt: skip

    def test_malformed_prompt_is_refused(self, adapter: ImageTextAdapter) -> None:
        with pytest.raises(ModelError, match="PaliGemma prompt must be"):
            adapter.processor_inputs(self.make_images()[:1], ["What color is the circle?"])

    def test_real_processor_and_sidecar(self, adapter: ImageTextAdapter, checkpoint: Path) -> None:
        assert type(adapter.processor).__name__ == "PaliGemmaProcessor"
        assert type(adapter.processor.image_processor).__name__ == "SiglipImageProcessor"
        side = json.loads((checkpoint / "vlmscope.json").read_text())
        assert (side["family"], side["lm"]) == ("paligemma", self.lm)
        cfg = json.loads((checkpoint / "config.json").read_text())
        assert cfg["text_config"]["model_type"] == self.lm
        assert cfg["text_config"]["vocab_size"] == len(adapter.tokenizer)  # incl. the 1152 loc/seg tokens


class TestPaliGemma(PaliGemmaConformance):
    tiny = "paligemma"
    family = "paligemma"
    lm = "gemma"

    def test_no_softcapping(self, adapter: ImageTextAdapter) -> None:
        assert type(adapter).tensor_names(adapter.model.config).final_logit_softcapping is None


class TestPaliGemma2(PaliGemmaConformance):
    tiny = "paligemma2"
    family = "paligemma"
    lm = "gemma2"

    def test_final_norm_and_unembedding_give_the_logits(self, adapter: ImageTextAdapter) -> None:
        """Gemma 2 soft-caps the head's output: logits = c * tanh(head(norm(h)) / c), c from TensorNames."""
        cap = type(adapter).tensor_names(adapter.model.config).final_logit_softcapping
        assert cap == adapter.text_config.final_logit_softcapping == 30.0
        batch = adapter.encode(self.make_images()[:1], list(self.questions[:1]))
        captured: dict[str, Any] = {}
        handle = adapter.decoder_layers[-1].register_forward_hook(
            lambda _m, _i, out: captured.update(h=out[0] if isinstance(out, tuple) else out)
        )
        try:
            out = self._forward(adapter, batch)
        finally:
            handle.remove()
        with torch.inference_mode():
            raw = adapter.unembedding(adapter.final_norm(captured["h"]))
        torch.testing.assert_close(cap * torch.tanh(raw / cap), out.logits.float(), atol=ATOL, rtol=1e-4)
        assert float((raw - out.logits).abs().max()) > 1e-3  # the cap really changes the logits


def test_same_seed_gives_the_same_weight_bytes(tiny_checkpoint: Callable[[str], Path], tmp_path: Path) -> None:
    build_tiny_paligemma(tmp_path, 0, lm="gemma")
    first = (tiny_checkpoint("paligemma") / "model.safetensors").read_bytes()
    assert (tmp_path / "model.safetensors").read_bytes() == first


def test_unknown_lm_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="valid: gemma, gemma2"):
        build_tiny_paligemma(tmp_path, 0, lm="gemma3")
