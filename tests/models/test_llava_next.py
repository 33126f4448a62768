"""LLaVA-NeXT (anyres) and LLaVA-NeXT-Interleave-like tiny checkpoints pass the conformance suite."""

from __future__ import annotations

from tests.models.conformance import AdapterConformance, make_image


class TestLlavaNext(AdapterConformance):
    tiny = "llava-next"
    family = "llava-next"

    def test_image_segments_cover_every_image_token(self, adapter) -> None:
        # a wide image picks the 32x64 pinpoint: base 4x4 plus a high-res grid with a newline column
        images = [make_image(5, (120, 40)), make_image(6, (40, 40))]
        batch = adapter.encode(images, ["What is this?", "And this?"])
        for b, segs in enumerate(batch.extras["image_segments"]):
            n = int(batch.image_mask[b].sum())
            assert segs[0][0] == 0 and segs[0][1:] == batch.patch_grids[b] == (4, 4)
            assert sum(r * c for _, r, c in segs) == n
            assert segs[1][0] == 16


class TestLlavaInterleave(AdapterConformance):
    tiny = "llava-interleave"
    family = "llava"

    def test_full_strategy_keeps_every_patch(self, adapter) -> None:
        batch = adapter.encode([make_image(0)], ["What is this?"])
        assert int(batch.image_mask.sum()) == 16 and batch.patch_grids == [(4, 4)]
        assert adapter.format_prompt("q").endswith("<|im_start|>assistant\n")
