"""Qwen2-VL, Qwen2.5-VL and Qwen3-VL tiny checkpoints pass the conformance suite, plus Qwen specifics:
dynamic-resolution patch grids, M-RoPE positions under left padding, mergers as the projector."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from tests.models.conformance import AdapterConformance

from vlmscope.models.families.qwen_vl import QwenVLAdapter, build_tiny_qwen_vl
from vlmscope.models.lm_adapter import ImageTextAdapter


class QwenConformance(AdapterConformance):
    """The shared suite plus what only the Qwen-VL families do."""

    processor_class: str
    video_processor_class: str

    def test_real_processor_classes_round_trip(self, adapter: ImageTextAdapter, checkpoint: Path) -> None:
        assert type(adapter.processor).__name__ == self.processor_class
        assert type(adapter.processor.image_processor).__name__ == "Qwen2VLImageProcessor"
        assert type(adapter.processor.video_processor).__name__ == self.video_processor_class
        assert json.loads((checkpoint / "vlmscope.json").read_text())["family"] == self.family

    def test_patch_grid_is_the_merged_image_grid(self, adapter: ImageTextAdapter) -> None:
        # 48 x 40 (w x h), 40 x 56 and 64 x 64 px resize to different grids of merged 2 x 2 patches
        batch = adapter.encode(self.make_images(), list(self.questions))
        merge = adapter.config.vision_config.spatial_merge_size
        thw = batch.inputs["image_grid_thw"]
        for b, (rows, cols) in enumerate(batch.patch_grids):
            assert (rows, cols) == (int(thw[b, 1]) // merge, int(thw[b, 2]) // merge)
            assert rows * cols == int(batch.image_mask[b].sum())
        assert batch.patch_grids[0] == (2, 3)  # landscape 48 x 40 -> 56 x 84 px -> 2 x 3 tokens
        assert batch.patch_grids[1] == (3, 2)  # portrait 40 x 56 -> 84 x 56 px
        assert batch.patch_grids[2] == (2, 2)

    def test_mrope_positions_ignore_left_padding(self, adapter: ImageTextAdapter) -> None:
        """Why batch invariance holds: the model's 3-D rope index skips padded positions."""
        images = self.make_images()
        alone = adapter.encode(images[:1], list(self.questions[:1]))
        batch = adapter.encode(images, list(self.questions))
        assert "position_ids" not in batch.inputs  # 1-D positions would flatten the image grid

        def rope(b: object) -> torch.Tensor:
            inp = b.inputs  # type: ignore[attr-defined]
            pos, _ = adapter.model.model.get_rope_index(
                inp["input_ids"], inp["mm_token_type_ids"], image_grid_thw=inp["image_grid_thw"],
                attention_mask=inp["attention_mask"],
            )  # fmt: skip
            return pos  # (3, B, T)

        p1, pb = rope(alone), rope(batch)
        real = batch.attention_mask[0].bool()
        torch.testing.assert_close(pb[:, 0, real], p1[:, 0, :], atol=0, rtol=0)
        # the image tokens really are laid out on a 2-D grid (height and width components differ)
        img = batch.image_mask[0]
        assert not torch.equal(pb[1, 0, img], pb[2, 0, img])

    def test_mergers_are_the_projector(self, adapter: ImageTextAdapter) -> None:
        groups = {k: {id(p) for p in v} for k, v in adapter.parameter_groups().items()}
        visual = adapter.model.model.visual
        assert {id(p) for p in visual.merger.parameters()} <= groups["projector"]
        assert {id(p) for p in visual.blocks.parameters()} <= groups["vision"]
        assert {id(p) for p in visual.patch_embed.parameters()} <= groups["vision"]

    def test_answer_follows_the_chatml_prefix_without_space(self, adapter: ImageTextAdapter) -> None:
        batch = adapter.encode(self.make_images()[:1], list(self.questions[:1]), answers=["red"])
        tail = adapter.tokenizer.decode(batch.inputs["input_ids"][0, -8:])
        assert tail.endswith("<|im_end|>\n<|im_start|>assistant\nred<|im_end|>")


class TestQwen2VL(QwenConformance):
    tiny = "qwen2-vl"
    family = "qwen2-vl"
    processor_class = "Qwen2VLProcessor"
    video_processor_class = "Qwen2VLVideoProcessor"

    def test_untied_unembedding_is_the_lm_head(self, adapter: ImageTextAdapter) -> None:
        names = type(adapter).tensor_names(adapter.model.config)
        assert names.unembedding_weight == "lm_head.weight"
        assert adapter.unembedding.weight is not adapter.model.get_input_embeddings().weight


class TestQwen25VL(QwenConformance):
    tiny = "qwen2.5-vl"
    family = "qwen2.5-vl"
    processor_class = "Qwen2_5_VLProcessor"
    video_processor_class = "Qwen2VLVideoProcessor"

    def test_tied_unembedding_names_the_embedding(self, adapter: ImageTextAdapter) -> None:
        names = type(adapter).tensor_names(adapter.model.config)
        assert names.unembedding_weight.endswith("embed_tokens.weight")
        assert adapter.unembedding.weight is adapter.model.get_input_embeddings().weight


class TestQwen3VL(QwenConformance):
    tiny = "qwen3-vl"
    family = "qwen3-vl"
    processor_class = "Qwen3VLProcessor"
    video_processor_class = "Qwen3VLVideoProcessor"

    def test_deepstack_mergers_are_in_the_projector(self, adapter: ImageTextAdapter) -> None:
        groups = {id(p) for p in adapter.parameter_groups()["projector"]}
        deep = adapter.model.model.visual.deepstack_merger_list
        assert len(deep) == 1 and {id(p) for p in deep.parameters()} <= groups


def test_same_seed_gives_the_same_weight_bytes(tiny_checkpoint: Callable[[str], Path], tmp_path: Path) -> None:
    build_tiny_qwen_vl(tmp_path, 0, family="qwen2-vl")
    first = (tiny_checkpoint("qwen2-vl") / "model.safetensors").read_bytes()
    assert (tmp_path / "model.safetensors").read_bytes() == first


def test_unknown_tiny_family_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="valid: qwen2-vl, qwen2.5-vl, qwen3-vl"):
        build_tiny_qwen_vl(tmp_path, 0, family="qwen4-vl")


def test_patch_grid_falls_back_to_one_row_without_grid(tiny_checkpoint: Callable[[str], Path]) -> None:
    from vlmscope.models import load_model

    adapter = load_model(tiny_checkpoint("qwen2-vl"))
    assert isinstance(adapter, QwenVLAdapter)
    assert adapter.patch_grid({}, 0, 7) == (1, 7)
