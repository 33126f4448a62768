"""``compose``: tiny kinds build random stand-ins, anything else loads a real part; the two mix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vlmscope.cli.app import app
from vlmscope.errors import ConfigError
from vlmscope.models.compose import ComposeConfig, compose


def _side(path: Path) -> dict:
    return json.loads((path / "vlmscope.json").read_text())


def test_tiny_kinds_build_the_named_architectures(tmp_path: Path) -> None:
    from vlmscope.models import load_model

    out = compose(ComposeConfig(tower="dinov2", lm="qwen3", seed=3), tmp_path / "c")
    side = _side(out)
    assert (side["tower"], side["lm_type"], side["projector"], side["seed"]) == ("dinov2", "qwen3", "linear", 3)
    assert side["vision"] == "random:dinov2"
    model = load_model(out)
    assert model.family == "composite"
    assert type(model.model.model.vision_tower).__name__ == "Dinov2Model"


def test_a_real_tower_directory_joins_a_tiny_lm(tmp_path: Path) -> None:
    """The medical study's shape: the tiny CLIP checkpoint (a full CLIPModel) is the tower."""
    import torch
    from safetensors.torch import load_file

    from vlmscope.models.tiny import build_tiny

    clip = build_tiny("clip", tmp_path / "clip", seed=1)
    out = compose(ComposeConfig(tower=str(clip), lm="llama", lm_sizes={"layers": 1}), tmp_path / "c")
    side = _side(out)
    assert side["vision"] == str(clip) and side["tower"] == "clip_vision_model"
    composite = load_file(str(out / "model.safetensors"))
    tower = load_file(str(clip / "model.safetensors"))
    name = "encoder.layers.0.mlp.fc1.weight"
    mine = next(v for k, v in composite.items() if k.startswith("vision_tower") and k.endswith(name))
    assert torch.equal(mine, tower[f"vision_model.{name}"])  # the real tower's weights, copied unchanged


def test_sizes_are_refused_for_real_parts_and_unknown_sizes_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="tower_sizes apply to a tiny tower only"):
        compose(ComposeConfig(tower=str(tmp_path), tower_sizes={"hidden": 8}), tmp_path / "c")
    with pytest.raises(ConfigError, match=r"compose: lm_sizes has unknown size\(s\) \['depth'\]"):
        compose(ComposeConfig(lm_sizes={"depth": 2}), tmp_path / "c")
    assert not (tmp_path / "c").exists()


def test_cli_compose(tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["models", "compose", "--tower", "vit", "--lm", "mistral", "--out", str(tmp_path / "c"),
                                   "--projector", "mlp2x_gelu"])  # fmt: skip
    assert res.exit_code == 0, res.output
    side = _side(tmp_path / "c")
    assert (side["tower"], side["lm_type"], side["projector"]) == ("vit", "mistral", "mlp2x_gelu")
