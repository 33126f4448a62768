"""Grad-CAM: overlays for a VLM's answer, and the CAM arithmetic itself."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import polars as pl
import torch

from vlmscope.attribution.gradcam import GradcamConfig, cam_from, gradcam
from vlmscope.training.data import load_examples


def test_gradcam_composite_answer(tiny_checkpoint: Callable[[str], Path], tiny_dataset: Callable[..., Path],
                                  tmp_path: Path) -> None:  # fmt: skip
    composite, color_ds = tiny_checkpoint("composite"), tiny_dataset("color", 16)
    ids = load_examples(color_ds, ["test"])
    df = gradcam(composite, color_ds, tmp_path / "vlm", GradcamConfig(samples=(ids[0].sample_id,), target="answer"))
    assert df["grid"].to_list() == ["9x9"] and df["target"][0] == ids[0].answer
    assert pl.read_csv(tmp_path / "vlm" / "gradcam.csv").height == 1


def test_cam_drops_cls_and_weights_channels_by_mean_gradient() -> None:
    act = torch.zeros(5, 2)  # CLS + 2x2 patches, 2 channels
    act[1:, 0] = torch.tensor([1.0, 2.0, 3.0, 4.0])
    act[1:, 1] = torch.tensor([4.0, 0.0, 0.0, 0.0])
    grad = torch.zeros(5, 2)
    grad[:, 0] = 1.0  # only channel 0 matters for the target
    cam = cam_from(act, grad)
    assert cam.shape == (2, 2)
    torch.testing.assert_close(torch.from_numpy(cam).flatten(), torch.tensor([0.25, 0.5, 0.75, 1.0]))
