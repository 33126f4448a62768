"""Composites: the embedded default passes the conformance suite; every tower x LM pair
loads and runs; the feature layer, CLS drop and the linear projector do what they say;
the pretrained path copies tower and LM weights unchanged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from tests.models.conformance import AdapterConformance, make_image

from vlmscope.errors import ConfigError
from vlmscope.models import detect_family, load_model
from vlmscope.models.families.composite import LMS, TOWERS, build_composite, build_tiny_composite


class TestCompositeDefault(AdapterConformance):
    tiny = "composite"
    family = "composite"

    def test_default_is_sized_for_the_pipeline(self, adapter, checkpoint: Path) -> None:
        side = json.loads((checkpoint / "vlmscope.json").read_text())
        assert side["family"] == "composite" and side["projector"] == "mlp2x_gelu" and side["drop_cls"] is True
        batch = adapter.encode([make_image(0, (448, 448))], ["What color is the star?"])
        assert batch.patch_grids == [(9, 9)] and int(batch.image_mask.sum()) == 81
        assert adapter.num_layers == 4 and adapter.hidden_size == 128
        assert sum(p.numel() for p in adapter.model.parameters()) < 3_000_000


@pytest.fixture(scope="module")
def pairs(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], Path]:
    root = tmp_path_factory.mktemp("composites")
    return {(t, m): build_tiny_composite(root / f"{t}-{m}", tower=t, lm=m) for t in TOWERS for m in LMS}


@pytest.mark.parametrize("tower", TOWERS)
@pytest.mark.parametrize("lm", LMS)
def test_every_tower_lm_pair_loads_and_runs(pairs: dict[tuple[str, str], Path], tower: str, lm: str) -> None:
    path = pairs[(tower, lm)]
    assert detect_family(path) == "composite"
    adapter = load_model(path)
    cfg = adapter.model.config
    assert cfg.text_config.model_type == lm
    assert cfg.vision_config.model_type == {"clip": "clip_vision_model", "siglip": "siglip_vision_model",
                                            "dinov2": "dinov2", "vit": "vit", "mae": "vit"}[tower]  # fmt: skip
    batch = adapter.encode([make_image(1), make_image(2, (64, 32))], ["What color?", "How many stars are there?"],
                           answers=["red", "3"])  # fmt: skip
    # 32 px / patch 8 = 4 x 4 patches; CLS (clip, dinov2, vit, mae) dropped, SigLIP has none
    assert batch.image_mask.sum(1).tolist() == [16, 16] and batch.patch_grids == [(4, 4), (4, 4)]
    with torch.inference_mode():
        out = adapter.model(**batch.inputs, labels=batch.labels)
    assert torch.isfinite(out.loss)
    # generation is the greedy argmax continuation of the forward pass, two steps, decoded
    enc = adapter.encode([make_image(1)], ["What color?"])
    texts = adapter.generate(enc, max_new_tokens=2)
    inputs = dict(enc.inputs)
    tokens = []
    with torch.inference_mode():
        for _ in range(2):
            nxt = adapter.model(**inputs).logits[:, -1].argmax(-1, keepdim=True)  # (1, 1)
            tokens.append(int(nxt))
            inputs["input_ids"] = torch.cat([inputs["input_ids"], nxt], 1)
            inputs["attention_mask"] = torch.cat([inputs["attention_mask"], torch.ones_like(nxt)], 1)
            if "position_ids" in inputs:  # left-padding-aware positions: the next one follows the last
                inputs["position_ids"] = torch.cat([inputs["position_ids"], inputs["position_ids"][:, -1:] + 1], 1)
    assert isinstance(texts, list) and len(texts) == 1
    assert texts[0] == adapter.tokenizer.decode(tokens, skip_special_tokens=True).strip()


def _features(adapter, image) -> tuple[torch.Tensor, torch.Tensor]:
    """(projector input as the model builds it, the tower's full hidden states)."""
    pv = adapter.processor.image_processor(images=[image], return_tensors="pt")["pixel_values"]
    captured = {}
    proj = adapter.model.model.multi_modal_projector
    handle = proj.register_forward_hook(lambda m, i, o: captured.setdefault("x", i[0]))
    with torch.inference_mode():
        adapter.model.model.get_image_features(pixel_values=pv)
        hs = adapter.model.model.vision_tower(pv, output_hidden_states=True).hidden_states
    handle.remove()
    return captured["x"], hs


@pytest.mark.parametrize("tower,layer", [("clip", -2), ("clip", 1), ("dinov2", -1), ("siglip", -2), ("mae", -2)])
def test_feature_layer_and_cls_drop_are_honoured(tmp_path: Path, tower: str, layer: int) -> None:
    path = build_tiny_composite(tmp_path / "c", tower=tower, lm="llama", feature_layer=layer)
    adapter = load_model(path)
    x, hs = _features(adapter, make_image(3))
    start = 0 if tower == "siglip" else 1
    torch.testing.assert_close(x, hs[layer][:, start:])
    assert x.shape[1] == 16


def test_mae_tower_keeps_patch_order_and_is_deterministic(tmp_path: Path) -> None:
    adapter = load_model(build_tiny_composite(tmp_path / "c", tower="mae", lm="qwen3"))
    a, _ = _features(adapter, make_image(4))
    b, _ = _features(adapter, make_image(4))
    torch.testing.assert_close(a, b, atol=0, rtol=0)


def test_linear_projector_is_one_affine_map(tmp_path: Path) -> None:
    adapter = load_model(build_tiny_composite(tmp_path / "c", projector="linear"))
    proj = adapter.model.model.multi_modal_projector
    assert adapter.model.config.projector_hidden_act == "linear"
    torch.testing.assert_close(proj.linear_2.weight, torch.eye(proj.linear_2.out_features))
    x = torch.randn(2, 5, proj.linear_1.in_features)
    with torch.inference_mode():
        torch.testing.assert_close(proj(x), proj.linear_1(x))


def test_pretrained_parts_are_copied_unchanged(tmp_path: Path) -> None:
    """The hub path, offline: towers and LMs saved as ordinary checkpoints, then assembled by path."""
    from transformers import CLIPConfig, CLIPModel, LlamaForCausalLM, ViTMAEModel

    from vlmscope.models.families.composite import tiny_tower_config
    from vlmscope.models.tiny_parts import tiny_text_config
    from vlmscope.models.tokenizer import build_tokenizer

    tok = build_tokenizer([])  # an LM tokenizer without <image>: the builder adds it
    torch.manual_seed(1)
    lm = LlamaForCausalLM(tiny_text_config("llama", len(tok), pad_token_id=0, bos_token_id=1, eos_token_id=2))
    lm.save_pretrained(tmp_path / "lm")
    tok.save_pretrained(tmp_path / "lm")
    vision = tiny_tower_config("clip")
    clip = CLIPModel(CLIPConfig(vision_config=vision.to_dict(), text_config={"hidden_size": 32, "intermediate_size": 64,
                                "num_hidden_layers": 1, "num_attention_heads": 4, "vocab_size": 99}))  # fmt: skip
    clip.save_pretrained(tmp_path / "clip")
    from transformers import CLIPImageProcessor

    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(tmp_path / "clip")
    mae = ViTMAEModel(tiny_tower_config("mae"))
    mae.save_pretrained(tmp_path / "mae")
    from transformers import ViTImageProcessor

    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(tmp_path / "mae")

    for name, src_tower in (("clip", clip.vision_model), ("mae", mae)):
        out = build_composite(str(tmp_path / name), str(tmp_path / "lm"), out=tmp_path / f"out-{name}")
        side = json.loads((out / "vlmscope.json").read_text())
        assert side["vision"] == str(tmp_path / name) and side["lm"] == str(tmp_path / "lm")
        adapter = load_model(out)
        sd = adapter.model.state_dict()
        ref = lm.state_dict()
        torch.testing.assert_close(sd["model.language_model.layers.1.mlp.down_proj.weight"],
                                   ref["model.layers.1.mlp.down_proj.weight"])  # fmt: skip
        torch.testing.assert_close(adapter.unembedding.weight[: len(tok)], lm.lm_head.weight)
        assert len(adapter.tokenizer) == len(tok) + 1 and adapter.image_token_id == len(tok)
        tower_sd = adapter.model.model.vision_tower.state_dict()
        for k, v in src_tower.state_dict().items():
            torch.testing.assert_close(tower_sd[k.removeprefix("vision_model.")], v)
        batch = adapter.encode([make_image(0)], ["What color?"])
        assert int(batch.image_mask.sum()) == 16
        with torch.inference_mode():
            adapter.model(**batch.inputs)


def test_bad_composite_requests_fail_with_the_fix(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="feature_layer 7 out of range for a 2-layer tower"):
        build_tiny_composite(tmp_path / "a", feature_layer=7)
    with pytest.raises(ConfigError, match="unknown tower 'resnet'"):
        build_tiny_composite(tmp_path / "b", tower="resnet")
    with pytest.raises(Exception, match="projector"):
        build_tiny_composite(tmp_path / "c", projector="mlp3x")
    assert not (tmp_path / "a").exists()
