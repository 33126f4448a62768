"""LoRA on the tiny composite: only LM linears are adapted; merging gives the adapter-on logits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from peft import PeftModel

from vlmscope.errors import TrainingError
from vlmscope.models import load_model
from vlmscope.models.merge import merge_adapter
from vlmscope.models.weights import read_tensors, tensor_names
from vlmscope.training.config import LoopConfig
from vlmscope.training.data import ImageCache, load_examples
from vlmscope.training.trainers.lora import LoraTrainConfig, lora_targets, train_lora


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, composite: Path, color_ds: Path) -> tuple[Path, dict]:
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("lora") / "out"
    cfg = LoraTrainConfig(r=4, alpha=8, dropout=0.0,
                          loop=LoopConfig(max_steps=4, batch_size=4, lr=2e-2, checkpoint_every=0))  # fmt: skip
    return out, train_lora(composite, [color_ds], out, cfg)


def test_targets_stay_inside_the_language_model(composite: Path) -> None:
    adapter = load_model(composite)
    targets = lora_targets(adapter, ["q_proj", "v_proj"])
    n_layers = adapter.num_layers
    assert len(targets) == 2 * n_layers  # the CLIP tower's q_proj/v_proj are not adapted
    assert all("language_model" in t for t in targets)
    with pytest.raises(TrainingError, match="no trainable parameters selected.*named"):
        lora_targets(adapter, ["qkv"])


@pytest.mark.filterwarnings("ignore:.*is_gradient_checkpointing.*:FutureWarning")
def test_merge_matches_adapter_on(trained: tuple[Path, dict], composite: Path, color_ds: Path,
                                  tmp_path: Path) -> None:  # fmt: skip
    out, metrics = trained
    assert metrics["lora_parameters"] > 0
    cfg = json.loads((out / "adapter" / "adapter_config.json").read_text())
    assert cfg["r"] == 4
    merge_adapter(composite, out, tmp_path / "merged")
    merged, base = load_model(tmp_path / "merged"), load_model(composite)
    assert merged.family == "composite"
    with_adapter = PeftModel.from_pretrained(load_model(composite).model, str(out / "adapter")).eval()
    rows = load_examples(color_ds, ["test"])
    batch = merged.encode(ImageCache().many([r.image for r in rows]), [r.prompt for r in rows])
    with torch.no_grad():
        on = with_adapter(**batch.inputs).logits
        folded = merged.model(**batch.inputs).logits
        trained_out = load_model(out).model(**batch.inputs).logits
        plain = base.model(**batch.inputs).logits
    torch.testing.assert_close(folded, on, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(trained_out, folded, rtol=1e-4, atol=1e-4)  # train lora's own merged output
    assert (plain - on).abs().max() > 1e-2  # the adapter did change the model


def test_lora_leaves_the_vision_tower_alone(trained: tuple[Path, dict], composite: Path) -> None:
    out, _ = trained
    names = [n for n in tensor_names(composite) if "vision_tower" in n]
    a, b = read_tensors(composite, names), read_tensors(out, names)
    assert all(torch.equal(a[n], b[n]) for n in names)
