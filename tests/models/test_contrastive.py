"""CLIP and SigLIP: load through AutoModel/AutoProcessor; scores equal the model's own logits
and do not depend on how the candidate texts are padded."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from tests.models.conformance import make_image

from vlmscope.errors import ModelError
from vlmscope.models import ContrastiveAdapter, classifier_names, load_model


@pytest.fixture(scope="module", params=["clip", "siglip"])
def adapter(request: pytest.FixtureRequest, tiny_checkpoint: Callable[[str], Path]) -> ContrastiveAdapter:
    a = load_model(tiny_checkpoint(request.param))
    assert isinstance(a, ContrastiveAdapter) and a.family == request.param
    return a


def test_capabilities_say_contrastive_only(adapter: ContrastiveAdapter) -> None:
    c = adapter.capabilities
    assert c.contrastive and not (c.generation or c.attention or c.mlp)


def test_scores_are_the_model_logits_of_each_image_with_its_own_texts(adapter: ContrastiveAdapter) -> None:
    images = [make_image(0), make_image(1, (60, 30))]
    texts = [["a red circle", "a blue star", "3"], ["two squares", "one", "a photo of 7 green triangles"]]
    scores = adapter.score(images, texts)
    assert scores.shape == (2, 3)
    flat = [t for c in texts for t in c]
    pv = adapter.processor.image_processor(images=images, return_tensors="pt")["pixel_values"]
    with torch.inference_mode():
        out = adapter.model(pixel_values=pv, **adapter._text_inputs(flat))
    full = out.logits_per_image  # (2, 6)
    torch.testing.assert_close(scores[0], full[0, :3], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(scores[1], full[1, 3:], atol=1e-5, rtol=1e-5)


def test_text_embedding_does_not_depend_on_padding(adapter: ContrastiveAdapter) -> None:
    alone = adapter.text_embeddings(["two"])
    padded = adapter.text_embeddings(["two", "a much longer caption of several red circles above a star"])
    torch.testing.assert_close(padded[0], alone[0], atol=1e-5, rtol=1e-5)
    assert abs(float(alone.norm()) - 1.0) < 1e-5


def test_mismatched_candidates_are_refused(adapter: ContrastiveAdapter) -> None:
    with pytest.raises(ModelError, match="one list per image"):
        adapter.score([make_image(0)], [["a"], ["b"]])
    with pytest.raises(ModelError, match="same, non-zero number"):
        adapter.score([make_image(0), make_image(1)], [["a"], ["b", "c"]])


# -- the declared interface (what `train clip`, Grad-CAM and the report ask) ----------------


def test_declares_kind_and_model_type(adapter: ContrastiveAdapter) -> None:
    cls = type(adapter)
    assert cls.is_classifier and not cls.is_generator
    assert adapter.model_type in cls.model_types
    assert {adapter.family, adapter.model_type} <= classifier_names()
    assert not classifier_names() & {"llava", "composite", "qwen2_vl"}


def test_vision_parameters_are_the_image_side_only(adapter: ContrastiveAdapter) -> None:
    params = adapter.vision_parameters()
    ids = {id(p) for p in params}
    assert len(ids) == len(params) > 0
    assert {id(p) for p in adapter.vision_tower.parameters()} <= ids
    text = {id(p) for n, p in adapter.model.named_parameters() if n.startswith("text_model.")}
    assert text and not ids & text


def test_vision_feature_block_is_the_last_tower_block_and_runs(adapter: ContrastiveAdapter) -> None:
    blocks = adapter.vision_blocks()
    assert len(blocks) == adapter.model.config.vision_config.num_hidden_layers
    assert all(any(b is m for m in adapter.vision_tower.modules()) for b in blocks)
    block = adapter.vision_feature_block()
    assert block is blocks[-1]
    seen = []
    handle = block.register_forward_hook(lambda _m, _i, out: seen.append(out))
    try:
        adapter.score([make_image(0)], [["a", "b"]])
    finally:
        handle.remove()
    assert len(seen) == 1


def test_image_features_and_similarity_logits_reproduce_the_scores(adapter: ContrastiveAdapter) -> None:
    images = [make_image(0), make_image(1, (60, 30))]
    texts = ["a red circle", "two squares"]
    pv = adapter.processor.image_processor(images=images, return_tensors="pt")["pixel_values"]
    with torch.inference_mode():
        emb = torch.nn.functional.normalize(type(adapter).image_features(adapter.model, pv).float(), dim=-1)
        logits = type(adapter).similarity_logits(adapter.model, emb @ adapter.text_embeddings(texts).T)
    torch.testing.assert_close(logits, adapter.score(images, [texts, texts]), atol=1e-5, rtol=1e-5)
