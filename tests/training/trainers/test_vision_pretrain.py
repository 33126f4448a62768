"""Vision-tower pre-training on image-level labels: only tower and projector move, bad heads fail clearly."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from vlmscope.errors import ConfigError, TrainingError
from vlmscope.models.trained import load_generative
from vlmscope.training.data import load_examples
from vlmscope.training.trainers.vision_pretrain import (
    PretrainHead,
    VisionPretrainConfig,
    head_rows,
    pooled_patch_features,
    pretrain_vision,
)


@pytest.fixture(scope="module")
def single_shape(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One large shape per image, so ``color`` and ``shape`` are properties of the whole image."""
    from vlmscope.data.generators import generate_dataset

    out = tmp_path_factory.mktemp("pretrain") / "single"
    generate_dataset("color", out, n=60, seed=0, max_shapes=1, size_min=48, size_max=96, margin=100)
    return out


def _state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def test_only_tower_and_projector_train_and_the_loss_falls(composite: Path, single_shape: Path) -> None:
    adapter = load_generative(composite)
    rows = load_examples(single_shape, ["train", "test"])
    before = _state(adapter.model)
    flags = {n: p.requires_grad for n, p in adapter.model.named_parameters()}
    cfg = VisionPretrainConfig(heads=(PretrainHead(column="color"),), steps=60, batch_size=16, lr=3e-3, holdout=0.2)
    m = pretrain_vision(adapter, rows, cfg, progress=False)

    after = _state(adapter.model)
    moved = {n for n in before if not torch.equal(before[n], after[n])}
    parts = ("model.vision_tower.", "model.multi_modal_projector.")
    assert moved and all(n.startswith(parts) for n in moved), sorted(moved)[:5]
    assert any("vision_tower.encoder.layers.0" in n for n in moved) and any("projector" in n for n in moved)
    assert {n: p.requires_grad for n, p in adapter.model.named_parameters()} == flags
    assert all(p.grad is None for p in adapter.model.parameters())
    # ten colours, one per image: read off the mean patch feature within a few dozen steps
    assert m["pretrain/color/chance"] == pytest.approx(0.1)
    assert m["pretrain/loss_last"] < 0.7 * m["pretrain/loss_first"]
    assert m["pretrain/color/accuracy"] > 0.3  # 12 held-out images, chance .1


def test_pools_of_the_image_tokens(composite: Path) -> None:
    """mean+max is the two pools side by side; the max is the max over patches of the LM's image tokens."""
    adapter = load_generative(composite)
    model = adapter.model.eval()
    feed = adapter.vision_feed()
    assert feed is not None and feed.drop_cls and feed.feature_layer == model.config.vision_feature_layer
    size = model.config.vision_config.image_size
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        mean, top, both = (pooled_patch_features(feed, x, p) for p in ("mean", "max", "mean+max"))
        hidden = model.model.vision_tower(pixel_values=x, output_hidden_states=True).hidden_states
        tokens = model.model.multi_modal_projector(hidden[model.config.vision_feature_layer][:, 1:])
    assert mean.shape == top.shape == (2, model.config.text_config.hidden_size)
    torch.testing.assert_close(both, torch.cat([mean, top], dim=-1))
    torch.testing.assert_close(top, tokens.max(dim=1).values)
    torch.testing.assert_close(mean, tokens.mean(dim=1))
    with pytest.raises(ValueError, match="unknown pool 'sum'"):
        pooled_patch_features(feed, x, "sum")


def test_same_seed_same_tower(composite: Path, single_shape: Path) -> None:
    rows = load_examples(single_shape, ["train"])
    heads = (PretrainHead(column="shape", pool="max"), PretrainHead(column="color", pool="mean+max"))
    cfg = VisionPretrainConfig(heads=heads, steps=6, batch_size=4)
    towers = []
    for _ in range(2):
        adapter = load_generative(composite)
        pretrain_vision(adapter, rows, cfg, progress=False)
        towers.append(_state(adapter.model))
    assert all(torch.equal(towers[0][n], towers[1][n]) for n in towers[0])
    adapter = load_generative(composite)
    torch.manual_seed(0)
    expect = torch.rand(1)
    torch.manual_seed(0)
    pretrain_vision(adapter, rows, cfg, progress=False)
    assert torch.equal(torch.rand(1), expect), "pre-training must not consume the global RNG"


def test_heads_filter_rows_and_reject_bad_columns(single_shape: Path, tiny_dataset: Callable[..., Path]) -> None:
    color_rows = load_examples(single_shape, ["train"])
    relations = tiny_dataset("relations", 2)
    rel_rows = load_examples(relations, ["train", "test"], allow_empty=True)
    images, labels = head_rows(color_rows, PretrainHead(column="shape", datasets=("color",)))  # type: ignore[misc]
    assert len(images) == len({r.image for r in color_rows}) and len(labels) == len(images)
    assert head_rows(color_rows, PretrainHead(column="shape", datasets=("counting",))) is None
    # a question-level column is not a property of the image: several values per image
    with pytest.raises(ConfigError, match="not a property of the whole image"):
        head_rows(rel_rows, PretrainHead(column="query_type"))
    with pytest.raises(ConfigError, match=rf"dataset {relations.name!r} has no column 'shape'"):
        head_rows(color_rows + rel_rows, PretrainHead(column="shape"))


def test_missing_rows_fail_unless_optional(composite: Path, single_shape: Path) -> None:
    adapter = load_generative(composite)
    rows = load_examples(single_shape, ["train"])
    head = PretrainHead(column="count", datasets=("counting",))
    with pytest.raises(ConfigError, match="matches no training row"):
        pretrain_vision(adapter, rows, VisionPretrainConfig(heads=(head,), steps=2), progress=False)
    optional = head.model_copy(update={"optional": True})
    with pytest.warns(UserWarning, match="skipped"):
        assert pretrain_vision(adapter, rows, VisionPretrainConfig(heads=(optional,), steps=2), progress=False) == {}


def test_a_model_without_a_llava_tower_is_refused(tiny_checkpoint: Callable[[str], Path], single_shape: Path) -> None:
    adapter = load_generative(tiny_checkpoint("qwen2-vl"))
    rows = load_examples(single_shape, ["train"])
    with pytest.raises(TrainingError, match=r"vision_feed\(\)\); the qwen2-vl family is not one"):
        pretrain_vision(adapter, rows, VisionPretrainConfig(heads=(PretrainHead(column="color"),), steps=2),
                        progress=False)  # fmt: skip
