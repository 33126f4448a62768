"""A `train clip` tower swapped into a LLaVA-style composite, tensor by tensor, then a projector trained on it."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from vlmscope.errors import ModelError
from vlmscope.models.merge import MERGE_INFO
from vlmscope.models.tower_swap import check_tower_config, map_tower, merge_vision_tower
from vlmscope.models.weights import read_tensors, tensor_names, tensor_shapes

CLIP_SIZED = {"image_size": 32, "patch_size": 8, "hidden": 32, "layers": 2, "heads": 4, "intermediate": 64}
"""The tiny CLIP's vision tower sizes, so its tower fits the composite's."""


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from vlmscope.models.families.composite import build_tiny_composite

    out = tmp_path_factory.mktemp("swap") / "composite"
    return build_tiny_composite(out, projector="mlp2x_gelu", tower_kwargs=CLIP_SIZED, seed=3)


@pytest.fixture(scope="module")
def clip_out(tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint: Callable[[str], Path],
             tiny_dataset: Callable[..., Path]) -> Path:  # fmt: skip
    from vlmscope.training.config import LoopConfig
    from vlmscope.training.trainers.clip import ClipTrainConfig, train_clip

    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("clip") / "out"
    cfg = ClipTrainConfig(loop=LoopConfig(max_steps=3, batch_size=8, lr=1e-2, eval_every=0, checkpoint_every=0))
    train_clip(tiny_checkpoint("clip"), [tiny_dataset("color", 16)], out, cfg)
    return out


@pytest.fixture(scope="module")
def swapped(tmp_path_factory: pytest.TempPathFactory, base: Path, clip_out: Path) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("merged") / "model"
    return out, merge_vision_tower(base, clip_out, out)


def test_every_tower_tensor_is_the_clip_outputs(swapped: tuple[Path, dict], base: Path, clip_out: Path,
                                                tiny_checkpoint: Callable[[str], Path]) -> None:  # fmt: skip
    out, info = swapped
    names = tensor_names(base)
    assert tensor_names(out) == names
    tower = [n for n in names if n.startswith("vision_tower.")]
    assert sorted(info["replaced"]) == tower
    assert info["vision_tower"] == str(clip_out) and info["base"] == str(base)
    assert info["ignored"] == ["logit_scale", "text_model", "text_projection", "visual_projection"]
    got, before = read_tensors(out, names), read_tensors(base, names)
    clip = read_tensors(clip_out, [n.replace("vision_tower.", "vision_model.", 1) for n in tower])
    original = read_tensors(tiny_checkpoint("clip"), list(clip))
    assert any(not torch.equal(clip[n], original[n]) for n in clip)  # train clip did move the tower
    for n in names:
        if n in tower:
            assert torch.equal(got[n], clip[n.replace("vision_tower.", "vision_model.", 1)]), n
        else:
            assert torch.equal(got[n], before[n]), n  # LM and projector untouched
    assert json.loads((out / MERGE_INFO).read_text())["replaced"] == info["replaced"]


def test_projector_trains_on_the_swapped_tower(swapped: tuple[Path, dict], clip_out: Path,
                                               tiny_dataset: Callable[..., Path], tmp_path: Path) -> None:  # fmt: skip
    from vlmscope.training.config import LoopConfig
    from vlmscope.training.trainers.projector import ProjectorTrainConfig, train_projector

    merged, info = swapped
    cfg = ProjectorTrainConfig(loop=LoopConfig(max_steps=2, batch_size=4, lr=1e-3, checkpoint_every=0))
    metrics = train_projector(merged, [tiny_dataset("color", 16)], tmp_path / "proj", cfg)
    assert metrics and (tmp_path / "proj" / "projector.safetensors").is_file()
    tower = info["replaced"]
    got, clip = read_tensors(tmp_path / "proj", tower), read_tensors(clip_out, [n.replace("vision_tower.", "vision_model.", 1) for n in tower])
    for n in tower:  # the tower stays frozen: still the fine-tuned CLIP's
        assert torch.equal(got[n], clip[n.replace("vision_tower.", "vision_model.", 1)]), n


def test_llava_hf_layout_with_vision_model_level_maps_too() -> None:
    """Older llava-hf checkpoints keep ``vision_tower.vision_model.*`` (and >= 4.52 a ``model.`` prefix)."""
    source = {"vision_model.a.weight": (2, 2), "text_model.b": (3,), "logit_scale": ()}
    base = {"model.vision_tower.vision_model.a.weight": (2, 2), "model.language_model.x": (4,)}
    assert map_tower(source, base) == ({"vision_model.a.weight": "model.vision_tower.vision_model.a.weight"},
                                       ["logit_scale", "text_model.b"])  # fmt: skip


def test_refusals_name_what_does_not_fit(tiny_checkpoint: Callable[[str], Path], clip_out: Path, base: Path,
                                         tmp_path: Path) -> None:  # fmt: skip
    # the default tiny composite's tower has 3 layers, the tiny CLIP's 2: uncovered tensors are listed
    with pytest.raises(ModelError, match=r"does not cover 16 of the base's vision-tower tensors: \['vision_tower.encoder.layers.2"):
        merge_vision_tower(tiny_checkpoint("composite"), clip_out, tmp_path / "a")
    assert not (tmp_path / "a").exists()
    shapes = tensor_shapes(clip_out)
    shapes["vision_model.post_layernorm.weight"] = (33,)
    with pytest.raises(ModelError, match=r"tensor vision_model.post_layernorm.weight: shape \(33,\) vs \(32,\) of vision_tower.post_layernorm.weight"):
        map_tower(shapes, tensor_shapes(base), where="t")
    with pytest.raises(ModelError, match=r"vision tensor\(s\) \['vision_model.extra'\] have no place"):
        map_tower({**tensor_shapes(clip_out), "vision_model.extra": (1,)}, tensor_shapes(base), where="t")
    with pytest.raises(ModelError, match=r"no vision_model\.\* tensors"):
        merge_vision_tower(base, base, tmp_path / "b")  # a LLaVA checkpoint is not a tower
    with pytest.raises(ModelError, match="expected one LLaVA-style vision_tower"):
        merge_vision_tower(clip_out, clip_out, tmp_path / "c")


def test_a_tower_config_computing_another_function_is_refused(clip_out: Path, base: Path) -> None:
    tower = json.loads((clip_out / "config.json").read_text())
    target = json.loads((base / "config.json").read_text())
    check_tower_config(tower, target)  # the matching pair the swap test used
    tower["vision_config"]["hidden_act"] = "relu"
    with pytest.raises(ModelError, match=r"t: vision config differs from the base's \(hidden_act 'relu' vs '"):
        check_tower_config(tower, target, where="t")
    vision_only = {**tower["vision_config"], "hidden_act": target["vision_config"]["hidden_act"], "image_size": 64}
    with pytest.raises(ModelError, match=r"image_size 64 vs 32"):
        check_tower_config(vision_only, target)  # a CLIPVisionModel config: no vision_config level
