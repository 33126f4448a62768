"""CLIP as a prototype classifier (keep-best by validation), and Grad-CAM reading its prototypes."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from PIL import Image

from vlmscope.attribution.gradcam import GradcamConfig, gradcam
from vlmscope.models import load_model
from vlmscope.models.weights import read_tensors, tensor_names
from vlmscope.training.config import LoopConfig
from vlmscope.training.data import load_examples
from vlmscope.training.trainers.clip import ClipTrainConfig, class_names, train_clip


@pytest.fixture(scope="module")
def clip_out(tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint: Callable[[str], Path],
             color_ds: Path) -> tuple[Path, dict]:  # fmt: skip
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("clip") / "out"
    cfg = ClipTrainConfig(metric="mae", loop=LoopConfig(max_steps=8, batch_size=8, lr=1e-3, eval_every=2,
                                                        checkpoint_every=0))  # fmt: skip
    return out, train_clip(tiny_checkpoint("clip"), [color_ds], out, cfg)


def test_clip_trains_the_image_tower_only(clip_out: tuple[Path, dict], tiny_checkpoint: Callable[[str], Path],
                                          color_ds: Path) -> None:  # fmt: skip
    out, m = clip_out
    base = tiny_checkpoint("clip")
    names = tensor_names(base)
    a, b = read_tensors(base, names), read_tensors(out, names)
    changed = {n for n in names if not torch.equal(a[n], b[n])}
    assert changed and all(n.startswith(("vision_model.", "visual_projection.")) for n in changed)
    protos = json.loads((out / "prototypes.json").read_text())
    assert protos["classes"] == class_names(load_examples(color_ds, ["train", "test"]), None)
    assert protos["texts"][0] == "a photo of " + protos["classes"][0]
    assert {"valid_mae", "test_accuracy", "test_accuracy_zero_shot", "best_step"} <= set(m)
    state = json.loads((out / "train_state.json").read_text())
    assert state["best"]["metric"] == "mae" and state["best"]["step"] in (2, 4, 6, 8)
    assert load_model(out).family == "clip"


def test_gradcam_scores_against_the_trained_prototypes(clip_out: tuple[Path, dict], color_ds: Path,
                                                        tmp_path: Path) -> None:  # fmt: skip
    out, _ = clip_out
    df = gradcam(out, color_ds, tmp_path / "clip", GradcamConfig(max_samples=2, size=64))
    assert df.height == 2 and set(df["grid"]) == {"4x4"}
    classes = json.loads((out / "prototypes.json").read_text())["classes"]
    assert set(df["predicted"]) <= set(classes) and set(df["target"]) <= set(classes)
    with Image.open(tmp_path / "clip" / df["file"][0]) as im:
        assert im.size == (64, 64)
