"""Reading single tensors from safetensors checkpoints (single file, sharded, pinned)."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

from vlmscope.errors import ModelError, NotFound
from vlmscope.lens.projection import apply_final_norm
from vlmscope.lens.weights import FinalNorm, SafetensorsReader, open_lens_model, resolve_model_dir
from vlmscope.models.ref import ModelRef, write_ref


def test_sharded_checkpoint_through_its_index(tmp_path):
    a, b = torch.randn(4, 3), torch.randn(5).to(torch.bfloat16)
    save_file({"x.weight": a}, str(tmp_path / "model-00001-of-00002.safetensors"))
    save_file({"y.weight": b}, str(tmp_path / "model-00002-of-00002.safetensors"))
    index = {"metadata": {}, "weight_map": {"x.weight": "model-00001-of-00002.safetensors",
                                            "y.weight": "model-00002-of-00002.safetensors"}}  # fmt: skip
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
    r = SafetensorsReader(tmp_path)
    assert torch.equal(r.read("x.weight"), a)
    assert r.read("y.weight").dtype == torch.float32 and torch.equal(r.read("y.weight"), b.float())
    assert r.shape("x.weight") == (4, 3)
    with pytest.raises(ModelError, match="tensor 'z' is in none of its safetensors files"):
        r.read("z")
    (tmp_path / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(NotFound, match="missing"):
        SafetensorsReader(tmp_path).read("y.weight")


def test_unindexed_shards_and_bad_index(tmp_path):
    save_file({"x": torch.ones(2)}, str(tmp_path / "a.safetensors"))
    save_file({"y": torch.zeros(3)}, str(tmp_path / "b.safetensors"))
    r = SafetensorsReader(tmp_path)
    assert r.read("y").shape == (3,) and r.read("x").sum() == 2
    (tmp_path / "model.safetensors.index.json").write_text("{}")
    with pytest.raises(ModelError, match="no 'weight_map'"):
        SafetensorsReader(tmp_path)


def test_pin_resolves_to_its_local_checkpoint(tiny_checkpoint, tmp_path):
    ckpt = tiny_checkpoint("paligemma")
    pin = tmp_path / "pinned"
    write_ref(pin, ModelRef(source=str(ckpt)))
    assert resolve_model_dir(pin) == (ckpt, None)
    lm = open_lens_model(pin)
    assert lm.family == "paligemma" and lm.names.norm_kind == "rms_plus_one"
    assert lm.hidden_size == 32 and lm.num_layers == 2
    write_ref(pin, ModelRef(source="not-cached/model", revision="abc"))
    with pytest.raises(ModelError, match=r"'not-cached/model' \(revision abc\).*local Hugging Face cache"):
        resolve_model_dir(pin)


@pytest.mark.parametrize("kind", ["rms", "rms_plus_one", "layer"])
def test_final_norm_kinds_match_torch_modules(kind):
    from transformers.models.gemma.modeling_gemma import GemmaRMSNorm
    from transformers.models.llama.modeling_llama import LlamaRMSNorm

    torch.manual_seed(0)
    h = torch.randn(6, 16) * 3
    if kind == "rms":
        mod = LlamaRMSNorm(16, eps=1e-5)
    elif kind == "rms_plus_one":
        mod = GemmaRMSNorm(16, eps=1e-5)
    else:
        mod = torch.nn.LayerNorm(16, eps=1e-5)
        mod.bias.data = torch.randn(16)
    mod.weight.data = torch.randn(16)
    bias = mod.bias.data if kind == "layer" else None
    got = apply_final_norm(h, FinalNorm(mod.weight.data, bias, kind, 1e-5))
    with torch.no_grad():
        torch.testing.assert_close(got, mod(h))
