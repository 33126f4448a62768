"""The conformance suite every generative family's tiny checkpoint must pass.

Subclass :class:`AdapterConformance` in ``tests/models/test_<family>.py``
(``from tests.models.conformance import AdapterConformance``)::

    class TestLlava(AdapterConformance):
        tiny = "llava"          # name passed to build_tiny / tiny_checkpoint
        family = "llava"        # the adapter family load_model must pick

Override ``make_images`` when a family needs other image sizes, and set
``contiguous_image_tokens = False`` when its image tokens are interleaved
with text (none so far). Everything runs in float32 on CPU with eager
attention, so batch-invariance tolerances are tight.
"""

from __future__ import annotations

import json
import operator
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open

from vlmscope.models import ADAPTERS, LoadOptions, load_model
from vlmscope.models.lm_adapter import ImageTextAdapter

__all__ = ["AdapterConformance", "make_image", "safetensors_shapes"]

ATOL = 1e-4


def make_image(seed: int, size: tuple[int, int] = (48, 40)) -> Image.Image:
    """A deterministic RGB image with coloured blocks (width, height = size)."""
    rng = np.random.default_rng(seed)
    w, h = size
    arr = np.full((h, w, 3), 255, dtype=np.uint8)
    for _ in range(3):
        x, y = rng.integers(0, w - 8), rng.integers(0, h - 8)
        arr[y : y + 8, x : x + 8] = rng.integers(0, 255, size=3)
    return Image.fromarray(arr)


def safetensors_shapes(directory: Path) -> dict[str, tuple[int, ...]]:
    """Every tensor name -> shape across a checkpoint's safetensors files."""
    shapes: dict[str, tuple[int, ...]] = {}
    for f in sorted(directory.glob("*.safetensors")):
        with safe_open(str(f), framework="pt") as fh:
            for k in fh.keys():
                shapes[k] = tuple(fh.get_slice(k).get_shape())
    return shapes


class AdapterConformance:
    tiny: ClassVar[str]
    family: ClassVar[str]
    contiguous_image_tokens: ClassVar[bool] = True
    questions: ClassVar[tuple[str, str, str]] = (
        "What color is the circle?",
        "Is the red square left of, right of, above or below the blue triangle in this picture?",
        "How many?",
    )

    # -- fixtures --------------------------------------------------------------
    @pytest.fixture(scope="class")
    @classmethod
    def checkpoint(cls, tiny_checkpoint: Callable[[str], Path]) -> Path:
        return tiny_checkpoint(cls.tiny)

    @pytest.fixture(scope="class")
    @classmethod
    def adapter(cls, checkpoint: Path) -> ImageTextAdapter:
        a = load_model(checkpoint, options=LoadOptions(attn_implementation="eager"))
        assert isinstance(a, ImageTextAdapter)
        return a

    def make_images(self) -> list[Image.Image]:
        """Three images; the first is the one whose invariance is checked."""
        return [make_image(0, (48, 40)), make_image(1, (40, 56)), make_image(2, (64, 64))]

    def _forward(self, adapter: ImageTextAdapter, batch: Any, **kw: Any) -> Any:
        with torch.inference_mode():
            return adapter.model(**batch.inputs, output_hidden_states=True, **kw)

    # -- loading -----------------------------------------------------------------
    def test_loads_with_detected_family(self, adapter: ImageTextAdapter, checkpoint: Path) -> None:
        assert adapter.family == self.family
        assert adapter.source == str(checkpoint)
        assert adapter.tokenizer.padding_side == "left"
        assert adapter.model.training is False

    # -- positions -------------------------------------------------------------
    def test_hidden_states_count_and_shapes(self, adapter: ImageTextAdapter) -> None:
        images = self.make_images()
        batch = adapter.encode(images, list(self.questions))
        out = self._forward(adapter, batch)
        B, T = batch.inputs["input_ids"].shape
        assert len(out.hidden_states) == adapter.num_layers + 1
        for h in out.hidden_states:
            assert h.shape == (B, T, adapter.hidden_size)
        assert out.logits.shape[:2] == (B, T)

    def test_image_mask_and_last_index(self, adapter: ImageTextAdapter) -> None:
        images = self.make_images()
        batch = adapter.encode(images, list(self.questions))
        ids = batch.inputs["input_ids"]
        B, T = ids.shape
        assert batch.image_mask.dtype == torch.bool and batch.image_mask.shape == (B, T)
        assert torch.equal(batch.image_mask, ids == adapter.image_token_id)
        assert torch.equal(batch.last_index, torch.full((B,), T - 1))
        assert bool(batch.attention_mask[:, -1].all()), "left padding: every row ends on a real token"
        for b in range(B):
            pos = torch.nonzero(batch.image_mask[b]).flatten()
            assert len(pos) > 0
            assert bool(batch.attention_mask[b, pos].all()), "image tokens are never padding"
            if self.contiguous_image_tokens:
                assert int(pos[-1] - pos[0]) + 1 == len(pos), "image tokens form one span"
            rows, cols = batch.patch_grids[b]
            assert rows >= 1 and cols >= 1 and rows * cols <= len(pos)
            # the last prompt token is the end of the generation prefix, exactly as the template writes it
            prompt = adapter.format_prompt(self.questions[b])
            tail = adapter.tokenizer(prompt, add_special_tokens=False)["input_ids"][-3:]
            assert adapter.image_token_id not in tail
            assert ids[b, T - 3 :].tolist() == tail
        # the model accepted as many image tokens as the vision tower produced (it raises otherwise)
        self._forward(adapter, batch)

    def test_answers_append_labels_after_prompt(self, adapter: ImageTextAdapter) -> None:
        images = self.make_images()
        answers = ["red", "left of", "3"]
        plain = adapter.encode(images, list(self.questions))
        batch = adapter.encode(images, list(self.questions), answers=answers)
        assert batch.labels is not None and batch.answer_mask is not None
        for b, a in enumerate(answers):
            want = adapter.answer_ids(a, adapter.format_prompt(self.questions[b]))
            span = batch.inputs["input_ids"][b][batch.answer_mask[b]].tolist()
            assert span == want
            assert batch.labels[b][batch.answer_mask[b]].tolist() == want
            assert bool((batch.labels[b][~batch.answer_mask[b]] == -100).all())
            li = int(batch.last_index[b])
            assert bool(batch.answer_mask[b, li + 1 :].all()) and not bool(batch.answer_mask[b, li])
        # causal: the last prompt token's states do not see the appended answer
        h_plain = self._forward(adapter, plain).hidden_states
        h_ans = self._forward(adapter, batch).hidden_states
        for b in range(len(answers)):
            for layer in range(adapter.num_layers + 1):
                x = h_plain[layer][b, plain.last_index[b]]
                y = h_ans[layer][b, batch.last_index[b]]
                torch.testing.assert_close(y, x, atol=ATOL, rtol=1e-4)
        out = adapter.model(**batch.inputs, labels=batch.labels)
        assert torch.isfinite(out.loss)

    def test_batch_invariance_of_last_token_states(self, adapter: ImageTextAdapter) -> None:
        images = self.make_images()
        alone = adapter.encode(images[:1], list(self.questions[:1]))
        batch = adapter.encode(images, list(self.questions))
        assert int(batch.attention_mask[0].sum()) < batch.attention_mask.shape[1], "sample 0 must be padded"
        h1 = self._forward(adapter, alone).hidden_states
        hb = self._forward(adapter, batch).hidden_states
        for layer in range(adapter.num_layers + 1):
            torch.testing.assert_close(
                hb[layer][0, batch.last_index[0]], h1[layer][0, alone.last_index[0]], atol=ATOL, rtol=1e-4
            )

    def test_batch_invariance_with_default_attention(self, checkpoint: Path) -> None:
        """The same invariance with transformers' default (sdpa) attention, as extraction runs it."""
        adapter = load_model(checkpoint)
        images = self.make_images()
        alone = adapter.encode(images[:1], list(self.questions[:1]))
        batch = adapter.encode(images, list(self.questions))
        h1 = self._forward(adapter, alone).hidden_states
        hb = self._forward(adapter, batch).hidden_states
        for layer in range(adapter.num_layers + 1):
            torch.testing.assert_close(
                hb[layer][0, batch.last_index[0]], h1[layer][0, alone.last_index[0]], atol=ATOL, rtol=1e-4
            )

    def test_greedy_generation_batched_matches_unbatched(self, adapter: ImageTextAdapter) -> None:
        images = self.make_images()
        batched = adapter.generate(adapter.encode(images, list(self.questions)), max_new_tokens=4)
        single = [adapter.generate(adapter.encode([im], [q]), max_new_tokens=4)[0] for im, q in zip(images, self.questions)]
        assert len(batched) == len(images)
        assert all(isinstance(t, str) for t in batched)
        assert batched == single

    # -- structure -------------------------------------------------------------
    def test_final_norm_and_unembedding_give_the_logits(self, adapter: ImageTextAdapter) -> None:
        batch = adapter.encode(self.make_images()[:1], list(self.questions[:1]))
        captured: dict[str, torch.Tensor] = {}

        def hook(_m: Any, _i: Any, out: Any) -> None:
            captured["h"] = out[0] if isinstance(out, tuple) else out

        handle = adapter.decoder_layers[-1].register_forward_hook(hook)
        try:
            out = self._forward(adapter, batch)
        finally:
            handle.remove()
        with torch.inference_mode():
            normed = adapter.final_norm(captured["h"])
            logits = adapter.unembedding(normed)
        torch.testing.assert_close(normed, out.hidden_states[-1], atol=ATOL, rtol=1e-4)
        torch.testing.assert_close(logits, out.logits.float(), atol=ATOL, rtol=1e-4)

    def test_mlp_down_proj_input_is_the_ffn_activation(self, adapter: ImageTextAdapter) -> None:
        batch = adapter.encode(self.make_images()[:2], list(self.questions[:2]))
        shapes = []
        handles = []
        for i in range(adapter.num_layers):
            mod = adapter.mlp_down_proj(i)
            assert isinstance(mod, torch.nn.Linear) and mod.out_features == adapter.hidden_size
            handles.append(mod.register_forward_hook(lambda m, inp, out: shapes.append(tuple(inp[0].shape))))
        try:
            self._forward(adapter, batch)
        finally:
            for h in handles:
                h.remove()
        B, T = batch.inputs["input_ids"].shape
        F = adapter.mlp_down_proj(0).in_features
        assert shapes == [(B, T, F)] * adapter.num_layers

    def test_attention_maps_from_eager_attention(self, adapter: ImageTextAdapter) -> None:
        if not adapter.capabilities.attention:
            pytest.skip("family has no attention capture")
        batch = adapter.encode(self.make_images()[:2], list(self.questions[:2]))
        out = self._forward(adapter, batch, output_attentions=True)
        T = batch.inputs["input_ids"].shape[1]
        assert len(out.attentions) == adapter.num_layers
        a = out.attentions[-1]
        assert a.shape[0] == 2 and a.shape[-2:] == (T, T)
        rows = a[0, :, batch.last_index[0]]  # (heads, T)
        torch.testing.assert_close(rows.sum(-1), torch.ones(rows.shape[0]), atol=1e-4, rtol=0)
        pad = ~batch.attention_mask[0].bool()
        assert bool(pad.any()), "sample 0 must be padded"
        assert float(rows[:, pad].abs().max()) == 0.0, "no attention to left padding"

    def test_tensor_names_exist_with_right_shapes(self, adapter: ImageTextAdapter, checkpoint: Path) -> None:
        names = type(adapter).tensor_names(adapter.model.config)
        shapes = safetensors_shapes(checkpoint)
        D = adapter.hidden_size
        V = adapter.unembedding.weight.shape[0]
        assert shapes[names.final_norm_weight] == (D,)
        assert shapes[names.unembedding_weight] == (V, D)
        F = adapter.mlp_down_proj(0).in_features
        for i in range(adapter.num_layers):
            assert shapes[names.down_proj_weight.format(layer=i)] == (D, F)
        if names.final_norm_bias is not None:
            assert shapes[names.final_norm_bias] == (D,)
        # the stored tensors are the ones the adapter exposes
        files = sorted(checkpoint.glob("*.safetensors"))
        stored = {}
        for f in files:
            with safe_open(str(f), framework="pt") as fh:
                for k in (names.final_norm_weight, names.unembedding_weight, names.down_proj_weight.format(layer=0)):
                    if k in fh.keys():
                        stored[k] = fh.get_tensor(k)
        torch.testing.assert_close(stored[names.final_norm_weight], adapter.final_norm.weight.detach())
        torch.testing.assert_close(stored[names.unembedding_weight], adapter.unembedding.weight.detach())
        torch.testing.assert_close(
            stored[names.down_proj_weight.format(layer=0)], adapter.mlp_down_proj(0).weight.detach()
        )

    def test_parameter_groups_partition_all_parameters(self, adapter: ImageTextAdapter) -> None:
        groups = adapter.parameter_groups()
        assert set(groups) == {"vision", "projector", "language"}
        assert all(len(v) > 0 for v in groups.values())
        ids = [id(p) for ps in groups.values() for p in ps]
        assert len(ids) == len(set(ids))
        assert set(ids) == {id(p) for p in adapter.model.parameters()}
        assert any(p is adapter.unembedding.weight for p in groups["language"])
        assert any(p is adapter.decoder_layers[0].mlp.down_proj.weight for p in groups["language"])

    # -- extraction ----------------------------------------------------------------
    def test_extract_stores_the_forward_pass(self, adapter: ImageTextAdapter, tmp_path: Path) -> None:
        """``extract`` on this family's checkpoint: every stored value equals a batch-of-one forward pass.

        The dataset is this suite's own images (three sizes, so anyres tiling and dynamic grids give
        each sample a different number of image tokens) and questions (different lengths, so batches
        are left-padded). Layers 0..L-1 are transformers' hidden states at the last prompt token and
        the image/text means; layer L is the last block's output before the final norm, so
        ``final_norm`` of it is transformers' last hidden state.
        """
        import polars as pl

        from vlmscope import open_activations
        from vlmscope.activations.extract import ExtractConfig, extract
        from vlmscope.data.manifest import write_dataset

        images = self.make_images()

        def build(tmp: Path) -> pl.DataFrame:
            for i, im in enumerate(images):
                im.save(tmp / "images" / f"{i}.png")
            return pl.DataFrame({"sample_id": [f"s{i}" for i in range(3)],
                                 "image": [f"images/{i}.png" for i in range(3)], "prompt": list(self.questions),
                                 "answer": ["red", "left", "3"], "split": ["test"] * 3})  # fmt: skip

        dataset = tmp_path / "ds"
        write_dataset(dataset, generator="conformance", params={}, seed=None, build=build)
        cfg = ExtractConfig(batch_size=2, shard_samples=2, dtype="float32", device="cpu",
                            positions=("last", "text_mean", "image_mean"))  # fmt: skip
        store = open_activations(extract(cfg, adapter.source, dataset, tmp_path / "s.zarr", adapter=adapter))
        L = adapter.num_layers
        assert list(store.sample.values) == ["s0", "s1", "s2"] and list(store.layer.values) == list(range(L + 1))
        assert store.attrs["complete"] is True and store.attrs["family"] == adapter.family
        tol = dict(rtol=1e-4, atol=ATOL)
        for i, (im, q) in enumerate(zip(images, self.questions)):
            one = adapter.encode([im], [q])
            hs = self._forward(adapter, one).hidden_states
            last, img, text = int(one.last_index[0]), one.image_mask[0], one.text_mask[0]
            assert bool(img.any()) and bool(text.any())
            ref = {"hidden": torch.stack([h[0, last] for h in hs[:L]]),
                   "hidden_image_mean": torch.stack([h[0][img].mean(0) for h in hs[:L]]),
                   "hidden_text_mean": torch.stack([h[0][text].mean(0) for h in hs[:L]])}  # fmt: skip
            for name, want in ref.items():
                np.testing.assert_allclose(store[name].values[i, :L], want.numpy(), **tol, err_msg=name)
            with torch.inference_mode():
                normed = adapter.final_norm(torch.from_numpy(store.hidden.values[i, L]))
            np.testing.assert_allclose(normed.numpy(), hs[L][0, last].numpy(), **tol, err_msg="final norm")

    def test_save_pretrained_round_trips(self, adapter: ImageTextAdapter, tmp_path: Path) -> None:
        adapter.save_pretrained(str(tmp_path / "copy"))
        again = load_model(tmp_path / "copy", family=self.family)
        batch = adapter.encode(self.make_images()[:1], list(self.questions[:1]))
        torch.testing.assert_close(
            self._forward(again, batch).logits, self._forward(adapter, batch).logits, atol=ATOL, rtol=1e-4
        )

    # -- the declared interface (what training, Grad-CAM, capture and the report ask) ---------
    def test_declares_kind_family_and_model_type(self, adapter: ImageTextAdapter, checkpoint: Path) -> None:
        cls = type(adapter)
        assert ADAPTERS.get(adapter.family) is cls
        assert cls.is_generator and not cls.is_classifier
        config = json.loads((checkpoint / "config.json").read_text())
        assert adapter.model_type == config["model_type"]
        assert adapter.model_type in cls.model_types
        assert adapter.commit_hash is None, "a local directory resolves to no hub commit"

    def test_vision_blocks_are_the_towers_blocks(self, adapter: ImageTextAdapter) -> None:
        tower = adapter.vision_tower
        assert _contains(adapter.model, tower)
        blocks = adapter.vision_blocks()
        assert isinstance(blocks, torch.nn.ModuleList) and len(blocks) >= 1
        assert all(_contains(tower, b) for b in blocks)
        vision = {id(p) for p in adapter.parameter_groups()["vision"]}
        assert all(id(p) in vision for b in blocks for p in b.parameters()), "blocks train with the vision group"

    def test_vision_feature_block_runs_on_the_image(self, adapter: ImageTextAdapter) -> None:
        block = adapter.vision_feature_block()
        assert any(block is b for b in adapter.vision_blocks())
        seen: list[torch.Tensor] = []
        handle = block.register_forward_hook(lambda _m, _i, out: seen.append(out[0] if isinstance(out, tuple) else out))
        try:
            self._forward(adapter, adapter.encode(self.make_images()[:1], list(self.questions[:1])))
        finally:
            handle.remove()
        assert len(seen) == 1 and seen[0].requires_grad is False and seen[0].numel() > 0

    def test_projector_module_paths_name_projector_parts(self, adapter: ImageTextAdapter) -> None:
        paths = adapter.projector_module_paths()
        assert paths
        projector = {id(p) for p in adapter.parameter_groups()["projector"]}
        for path in paths:
            part = operator.attrgetter(path)(adapter.model)
            assert isinstance(part, torch.nn.Module | torch.nn.Parameter), path
            params = [part] if isinstance(part, torch.nn.Parameter) else list(part.parameters())
            assert params and all(id(p) in projector for p in params), path

    def test_attention_module_returns_the_attention_weights(self, adapter: ImageTextAdapter) -> None:
        batch = adapter.encode(self.make_images()[:2], list(self.questions[:2]))
        got: dict[int, Any] = {}
        handles = []
        for i in range(adapter.num_layers):
            mod = adapter.attention_module(i)
            assert _contains(adapter.decoder_layers[i], mod)
            handles.append(mod.register_forward_hook(lambda _m, _i, out, i=i: got.__setitem__(i, out)))
        try:
            out = self._forward(adapter, batch, output_attentions=True)
        finally:
            for h in handles:
                h.remove()
        assert sorted(got) == list(range(adapter.num_layers))
        for i, o in got.items():
            torch.testing.assert_close(o[1], out.attentions[i])

    def test_eager_attention_is_switched_on(self, checkpoint: Path) -> None:
        adapter = load_model(checkpoint)  # transformers' default (sdpa)
        adapter.use_eager_attention()
        assert adapter.model.config._attn_implementation == "eager"
        adapter.use_eager_attention()  # idempotent

    def test_vision_feed_is_what_the_projector_receives(self, adapter: ImageTextAdapter) -> None:
        feed = adapter.vision_feed()
        if not type(adapter).direct_vision_feed:
            assert feed is None
            return
        assert feed is not None and feed.tower is adapter.vision_tower
        batch = adapter.encode(self.make_images()[:1], list(self.questions[:1]))
        seen: list[torch.Tensor] = []
        handle = feed.projector.register_forward_hook(lambda _m, inp, _o: seen.append(inp[0]))
        try:
            self._forward(adapter, batch)
        finally:
            handle.remove()
        pv = batch.inputs["pixel_values"]
        pv = pv.reshape(-1, *pv.shape[-3:])  # anyres crops: (crops, C, H, W), as the model flattens them
        with torch.inference_mode():
            hidden = feed.tower(pixel_values=pv, output_hidden_states=True).hidden_states[feed.feature_layer]
        if feed.drop_cls:
            hidden = hidden[:, 1:]
        torch.testing.assert_close(seen[0], hidden, atol=ATOL, rtol=1e-4)


def _contains(parent: torch.nn.Module, child: torch.nn.Module) -> bool:
    return any(m is child for m in parent.modules())
