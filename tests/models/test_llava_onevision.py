"""LLaVA-OneVision tiny checkpoint passes the conformance suite; anyres segments add up."""

from __future__ import annotations

from tests.models.conformance import AdapterConformance, make_image


class TestLlavaOnevision(AdapterConformance):
    tiny = "llava-onevision"
    family = "llava-onevision"

    def test_image_segments_cover_every_image_token(self, adapter) -> None:
        images = [make_image(5, (150, 40)), make_image(6, (40, 40)), make_image(7, (200, 200))]
        batch = adapter.encode(images, ["What is this?", "And this?", "And that?"])
        for b, segs in enumerate(batch.extras["image_segments"]):
            n = int(batch.image_mask[b].sum())
            assert segs[0] == (0, 4, 4) and batch.patch_grids[b] == (4, 4)
            assert sum(r * c for _, r, c in segs) == n
            assert segs[1][0] == 16
        # the 200 x 200 image fits the 96 x 96 pinpoint: 3 x 3 crops of 4 x 4 patches, no unpadding
        assert batch.extras["image_segments"][2] == [(0, 4, 4), (16, 12, 13)]
