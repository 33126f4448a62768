"""`vlmscope models` through typer's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from vlmscope.cli.app import app

runner = CliRunner()


def test_list_shows_every_family_with_capabilities() -> None:
    res = runner.invoke(app, ["models", "list"])
    assert res.exit_code == 0, res.output
    for name in ("llava", "llava-next", "llava-onevision", "composite", "clip", "siglip"):
        assert name in res.output
    assert "llava-hf/llava-1.5-7b-hf" in res.output and "contrastive" in res.output


def test_tiny_writes_a_loadable_checkpoint(tmp_path: Path) -> None:
    res = runner.invoke(app, ["models", "tiny", "siglip", "--out", str(tmp_path / "m"), "--seed", "2"])
    assert res.exit_code == 0, res.output
    side = json.loads((tmp_path / "m" / "vlmscope.json").read_text())
    assert side == {**side, "family": "siglip", "seed": 2}
    from vlmscope.models import load_model

    assert load_model(tmp_path / "m").family == "siglip"


def test_user_errors_are_one_line_and_exit_1(tmp_path: Path) -> None:
    res = runner.invoke(app, ["models", "tiny", "nope", "--out", str(tmp_path / "m")])
    assert res.exit_code == 1 and "unknown tiny model family 'nope'; valid:" in res.output
    res = runner.invoke(app, ["models", "tiny", "clip", "--out", str(tmp_path / "m"), "--seed", "-1"])
    # a usage error (exit 2, click's own message), not a crash: a traceback would exit 1 with an exception
    assert res.exit_code == 2 and isinstance(res.exception, SystemExit), res.output
    assert "Invalid value for '--seed'" in res.output and not (tmp_path / "m").exists()
    res = runner.invoke(app, ["models", "composite", "--vision", str(tmp_path / "none"), "--lm", "x",
                              "--out", str(tmp_path / "c")])  # fmt: skip
    assert res.exit_code == 1 and "no such checkpoint directory" in res.output
    res = runner.invoke(app, ["models", "composite", "--vision", str(tmp_path), "--lm", "x",
                              "--out", str(tmp_path / "c"), "--projector", "mlp9"])  # fmt: skip
    assert res.exit_code == 1 and "--projector" in res.output
    assert not (tmp_path / "c").exists()


def test_composite_assembles_local_parts(tmp_path: Path) -> None:
    import torch
    from transformers import LlamaForCausalLM, SiglipImageProcessor, SiglipVisionModel

    from vlmscope.models.families.composite import tiny_tower_config
    from vlmscope.models.tiny_parts import tiny_text_config
    from vlmscope.models.tokenizer import build_tokenizer

    tok = build_tokenizer(["<image>"])
    torch.manual_seed(0)
    LlamaForCausalLM(tiny_text_config("llama", len(tok))).save_pretrained(tmp_path / "lm")
    tok.save_pretrained(tmp_path / "lm")
    SiglipVisionModel(tiny_tower_config("siglip")).save_pretrained(tmp_path / "tower")
    SiglipImageProcessor(size={"height": 32, "width": 32}).save_pretrained(tmp_path / "tower")
    res = runner.invoke(app, ["models", "composite", "--vision", str(tmp_path / "tower"), "--lm", str(tmp_path / "lm"),
                              "--out", str(tmp_path / "c"), "--projector", "mlp2x_gelu", "--feature-layer", "-1"])  # fmt: skip
    assert res.exit_code == 0, res.output
    side = json.loads((tmp_path / "c" / "vlmscope.json").read_text())
    assert side["projector"] == "mlp2x_gelu" and side["feature_layer"] == -1 and side["drop_cls"] is False
