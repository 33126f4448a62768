"""The InternVL tiny checkpoint passes the conformance suite, plus InternVL specifics:
named image tokens in the tokenizer, one vs several tiles per image and their patch grid."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path

import torch
from tests.models.conformance import AdapterConformance, make_image

from vlmscope.models.families.internvl import InternVLAdapter, build_tiny_internvl, tile_grid
from vlmscope.models.lm_adapter import ImageTextAdapter


class TestInternVL(AdapterConformance):
    tiny = "internvl"
    family = "internvl"

    def test_real_processor_and_named_tokens_round_trip(self, adapter: ImageTextAdapter, checkpoint: Path) -> None:
        assert type(adapter.processor).__name__ == "InternVLProcessor"
        assert type(adapter.processor.image_processor).__name__ == "GotOcr2ImageProcessor"
        tok = adapter.tokenizer
        named = (tok.start_image_token, tok.end_image_token, tok.context_image_token)
        assert named == ("<img>", "</img>", "<IMG_CONTEXT>")
        assert tok.context_image_token_id == adapter.image_token_id == adapter.config.image_token_id
        assert json.loads((checkpoint / "vlmscope.json").read_text())["family"] == "internvl"

    def test_one_tile_is_a_square_grid_between_img_markers(self, adapter: ImageTextAdapter) -> None:
        batch = adapter.encode(self.make_images(), list(self.questions))
        tok = adapter.tokenizer
        for b in range(len(self.questions)):
            assert batch.patch_grids[b] == (3, 3)
            pos = torch.nonzero(batch.image_mask[b]).flatten()
            ids = batch.inputs["input_ids"][b]
            assert int(ids[pos[0] - 1]) == tok.start_image_token_id
            assert int(ids[pos[-1] + 1]) == tok.end_image_token_id

    def test_tiles_stack_into_the_patch_grid(self, adapter: InternVLAdapter) -> None:
        """A 2:1 image with up to 4 tiles: 2 tiles + thumbnail = 27 tokens -> (9, 3)."""
        processor = copy.deepcopy(adapter.processor)
        processor.image_processor.max_patches = 4
        tiled = InternVLAdapter(adapter.model, processor, source=adapter.source)
        images = [make_image(0, (96, 48)), make_image(1, (48, 48))]
        batch = tiled.encode(images, list(self.questions[:2]))
        assert batch.inputs["pixel_values"].shape[0] == 3 + 1
        assert [int(n) for n in batch.image_mask.sum(1)] == [27, 9]
        assert batch.patch_grids == [(9, 3), (3, 3)]
        with torch.inference_mode():
            out = tiled.model(**batch.inputs)  # the model accepts the tile count the processor produced
        assert torch.isfinite(out.logits).all()


def test_tile_grid() -> None:
    assert tile_grid(256, 256) == (16, 16)
    assert tile_grid(5 * 256, 256) == (80, 16)
    assert tile_grid(100, 256) is None
    assert tile_grid(18, 8) is None  # image_seq_length not a square


def test_same_seed_gives_the_same_weight_bytes(tiny_checkpoint: Callable[[str], Path], tmp_path: Path) -> None:
    build_tiny_internvl(tmp_path, 0)
    first = (tiny_checkpoint("internvl") / "model.safetensors").read_bytes()
    assert (tmp_path / "model.safetensors").read_bytes() == first
