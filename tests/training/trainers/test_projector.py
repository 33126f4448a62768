"""Projector-only training on the tiny composite: only projector tensors move, the loss falls."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors import safe_open

from vlmscope.errors import TrainingError
from vlmscope.models import load_model
from vlmscope.models.merge import merge_tensors
from vlmscope.models.weights import read_tensors, tensor_names
from vlmscope.scoring.answer_span import mask_bbox
from vlmscope.training.config import LoopConfig, SubsampleConfig
from vlmscope.training.data import load_examples, subsample
from vlmscope.training.trainers.projector import ProjectorTrainConfig, train_projector


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, composite: Path, bbox_ds: Path) -> tuple[Path, dict]:
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("proj") / "out"
    cfg = ProjectorTrainConfig(loop=LoopConfig(max_steps=12, batch_size=6, lr=5e-3, checkpoint_every=0, seed=1))
    return out, train_projector(composite, [bbox_ds], out, cfg)


def test_only_projector_tensors_change(trained: tuple[Path, dict], composite: Path) -> None:
    out, _ = trained
    names = tensor_names(composite)
    assert tensor_names(out) == names  # the full model's tensor names: loads like any checkpoint
    before, after = read_tensors(composite, names), read_tensors(out, names)
    changed = {n for n in names if not torch.equal(before[n], after[n])}
    with safe_open(str(out / "projector.safetensors"), "pt") as fh:
        projector = set(fh.keys())
    assert projector and all("projector" in n for n in projector)
    assert changed == projector  # every projector tensor moved, nothing else did


def test_loss_falls_and_artifact_is_complete(trained: tuple[Path, dict]) -> None:
    out, metrics = trained
    assert metrics["steps"] == 12
    assert metrics["train_loss_after"] < metrics["train_loss_before"] - 0.1
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["train_loss_after"] == pytest.approx(metrics["train_loss_after"])
    args = json.loads((out / "training_args.json").read_text())
    assert args["trainer"] == "projector" and args["config"]["loop"]["max_steps"] == 12
    assert (out / "dvclive" / "plots" / "metrics" / "train" / "loss.tsv").is_file()
    assert not (out.parent / f".{out.name}.run").exists()  # checkpoints deleted after success
    adapter = load_model(out)
    assert adapter.family == "composite"


def test_merge_projector_by_name_reproduces_trained(trained: tuple[Path, dict], composite: Path,
                                                    tmp_path: Path) -> None:  # fmt: skip
    out, _ = trained
    info = merge_tensors(composite, out, tmp_path / "merged")
    assert info["replaced"] and all("projector" in n for n in info["replaced"])
    names = tensor_names(out)
    a, b = read_tensors(out, names), read_tensors(tmp_path / "merged", names)
    assert all(torch.equal(a[n], b[n]) for n in names)
    assert load_model(tmp_path / "merged").family == "composite"


def test_bbox_prefix_is_masked_from_the_loss(composite: Path, bbox_ds: Path) -> None:
    adapter = load_model(composite)
    ex = load_examples(bbox_ds, ["train"])[0]
    with Image.open(ex.image) as im:
        img = im.convert("RGB")
    enc = adapter.encode([img], [ex.prompt], answers=[ex.answer])
    masked = mask_bbox(enc.labels, ex.answer, adapter.tokenizer, "t")
    kept = masked[0][masked[0] != -100].tolist()
    text = adapter.tokenizer.decode(kept, skip_special_tokens=True).strip()
    assert text == ex.label and (enc.labels != -100).sum() > len(kept)
    with pytest.raises(TrainingError, match="no class name"):
        bad = adapter.encode([img], [ex.prompt], answers=["[0.1, 0.2]"])
        mask_bbox(bad.labels, "[0.1, 0.2]", adapter.tokenizer, "t")


def test_subsample_modes(bbox_ds: Path) -> None:
    rows = load_examples(bbox_ds, ["train"])  # 12 rows, 6 classes x 2
    keep, rec = subsample(rows, SubsampleConfig(proportion=0.5, mode="class-preserving", seed=3))
    assert rec["classes_after"] == 6 and len(keep) == 6
    keep, rec = subsample(rows, SubsampleConfig(proportion=0.5, mode="class-exclusive", seed=3))
    assert rec["classes_after"] == 3 and len(keep) == 6
    assert {r.label for r in keep} == set(rec["kept_classes"])
    again, _ = subsample(rows, SubsampleConfig(proportion=0.5, mode="class-exclusive", seed=3))
    assert [r.sample_id for r in again] == [r.sample_id for r in keep]
    other, _ = subsample(rows, SubsampleConfig(proportion=0.5, mode="class-exclusive", seed=4))
    assert {r.label for r in other} != {r.label for r in keep}  # the seed matters


def test_merge_into_a_sharded_checkpoint_goes_through_the_index(trained: tuple[Path, dict], composite: Path,
                                                                 tmp_path: Path) -> None:  # fmt: skip
    base = load_model(composite)
    sharded = tmp_path / "sharded"
    base.model.save_pretrained(sharded, max_shard_size="300KB")
    base.processor.save_pretrained(sharded)
    (sharded / "vlmscope.json").write_bytes((composite / "vlmscope.json").read_bytes())
    index = json.loads((sharded / "model.safetensors.index.json").read_text())
    assert len(set(index["weight_map"].values())) > 1
    out, _ = trained
    info = merge_tensors(sharded, out / "projector.safetensors", tmp_path / "merged")
    assert len(info["shards"]) < len(set(index["weight_map"].values()))  # only the shards holding the projector
    assert json.loads((tmp_path / "merged" / "model.safetensors.index.json").read_text()) == index
    names = tensor_names(out)
    a, b = read_tensors(out, names), read_tensors(tmp_path / "merged", names)
    assert all(torch.equal(a[n], b[n]) for n in names)
    assert load_model(tmp_path / "merged").family == "composite"
