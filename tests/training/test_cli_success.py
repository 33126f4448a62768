"""The success paths of `vlmscope train default|lora|clip|output-layer`, `merge` and `gradcam` through the CLI.

test_cli.py beside it checks the failures at the CLI edge; here every command runs to the end on tiny
models (fixtures and one thread from this folder's conftest.py) and what it wrote is checked against
what its options asked for: the options reach the trainer's config, the printed metrics are the saved
ones, and the weights that should move (and only those) moved. A few optimizer steps each.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from vlmscope.cli.app import app

runner = CliRunner()


def _ok(*args: Any) -> str:
    res = runner.invoke(app, [str(a) for a in args])
    assert res.exit_code == 0 and res.exception is None, res.output
    return res.output


def _printed_metrics(output: str) -> dict[str, Any]:
    """The JSON block `train` prints before ``wrote <out>``."""
    start = output.index("{")
    end = output.index("\nwrote ")
    return json.loads(output[start:end])


def _saved_metrics_agree(printed: dict[str, Any], saved: dict[str, Any]) -> None:
    numbers = {k: v for k, v in saved.items() if isinstance(v, (int, float, bool)) and v is not None}
    assert set(printed) == set(numbers)
    for k, v in numbers.items():
        assert printed[k] == (pytest.approx(v, abs=1e-4) if isinstance(v, float) else v), k


def _changed(a_dir: Path, b_dir: Path) -> set[str]:
    from vlmscope.models.weights import read_tensors, tensor_names

    names = tensor_names(a_dir)
    a, b = read_tensors(a_dir, names), read_tensors(b_dir, names)
    return {n for n in names if not torch.equal(a[n], b[n])}


def test_train_default_writes_a_trained_checkpoint_and_logs(composite: Path, color_ds: Path, tmp_path: Path) -> None:
    out, logs = tmp_path / "default", tmp_path / "logs"
    output = _ok("train", "default", "--model", composite, "--dataset", color_ds, "--out", out, "--max-steps", 2,
                 "--batch-size", 4, "--pretrain-steps", 0, "--valid-rows", 0, "--eval-every", 0,
                 "--checkpoint-every", 0, "--seed", 3, "--logs", logs)  # fmt: skip
    assert output.rstrip().endswith(f"wrote {out}")
    saved = json.loads((out / "metrics.json").read_text())
    _saved_metrics_agree(_printed_metrics(output), saved)
    n_test = read_test_rows(color_ds)
    assert saved[f"{color_ds.name}/n"] == n_test and saved["test/n"] == n_test
    args = json.loads((out / "training_args.json").read_text())
    assert args["trainer"] == "default" and args["config"]["vision_pretrain"] is None
    assert args["config"]["loop"]["max_steps"] == 2 and args["config"]["loop"]["seed"] == 3
    assert args["config"]["valid_rows"] == 0 and args["valid_rows"] == 0
    moved = {".".join(n.split(".")[:2]) for n in _changed(composite, out)}
    assert any("projector" in n for n in moved) and any("language" in n for n in moved)
    assert not any("vision" in n for n in moved)  # no pre-training: the tower stays as it was
    assert json.loads((logs / "metrics.json").read_text()) == saved


def read_test_rows(dataset: Path) -> int:
    from vlmscope.data.manifest import read_manifest

    return read_manifest(dataset).filter(pl.col("split") == "test").height


@pytest.mark.filterwarnings("ignore:.*is_gradient_checkpointing.*:FutureWarning")
def test_train_lora_then_merge_the_adapter(composite: Path, color_ds: Path, tmp_path: Path) -> None:
    out = tmp_path / "lora"
    output = _ok("train", "lora", "--model", composite, "--dataset", color_ds, "--out", out, "--max-steps", 2,
                 "--batch-size", 4, "--lr", 2e-2, "--r", 4, "--alpha", 8, "--dropout", 0,
                 "--target-modules", "q_proj,v_proj", "--checkpoint-every", 0)  # fmt: skip
    _saved_metrics_agree(_printed_metrics(output), json.loads((out / "metrics.json").read_text()))
    adapter_cfg = json.loads((out / "adapter" / "adapter_config.json").read_text())
    assert adapter_cfg["r"] == 4 and adapter_cfg["lora_alpha"] == 8
    assert adapter_cfg["target_modules"] and all(t.endswith(("q_proj", "v_proj")) for t in adapter_cfg["target_modules"])
    changed = _changed(composite, out)
    assert changed and all("language" in n and n.endswith(("q_proj.weight", "v_proj.weight")) for n in changed)

    merged = tmp_path / "merged"
    output = _ok("merge", "--base", composite, "--adapter", out / "adapter", "--out", merged)
    assert output.rstrip().endswith(f"wrote {merged}")
    # merging the saved adapter into the base gives the checkpoint `train lora` wrote itself
    from vlmscope.models.weights import read_tensors, tensor_names

    names = tensor_names(out)
    a, b = read_tensors(out, names), read_tensors(merged, names)
    for n in names:
        torch.testing.assert_close(a[n], b[n], rtol=1e-5, atol=1e-6, msg=n)


def test_merge_an_original_llava_projector_bin(composite: Path, tmp_path: Path) -> None:
    from vlmscope.models.weights import read_tensors, tensor_shapes

    shapes = tensor_shapes(composite)
    gen = torch.Generator().manual_seed(0)
    layers = {0: "linear_1", 2: "linear_2"}
    state = {f"model.mm_projector.{i}.{p}": torch.randn(shapes[f"multi_modal_projector.{layer}.{p}"], generator=gen)
             for i, layer in layers.items() for p in ("weight", "bias")}  # fmt: skip
    torch.save(state, tmp_path / "mm_projector.bin")
    merged = tmp_path / "merged"
    output = _ok("merge", "--base", composite, "--projector", tmp_path / "mm_projector.bin", "--out", merged)
    assert '"projector_kind": "mlp2x_gelu"' in output and output.rstrip().endswith(f"wrote {merged}")
    got = read_tensors(merged, [f"multi_modal_projector.{layer}.weight" for layer in layers.values()])
    for i, layer in layers.items():
        assert torch.equal(got[f"multi_modal_projector.{layer}.weight"], state[f"model.mm_projector.{i}.weight"])


def test_train_clip_then_gradcam(tiny_checkpoint: Callable[[str], Path], color_ds: Path, tmp_path: Path) -> None:
    base, out = tiny_checkpoint("clip"), tmp_path / "clip"
    output = _ok("train", "clip", "--model", base, "--dataset", color_ds, "--out", out, "--max-steps", 2,
                 "--batch-size", 8, "--lr", 1e-3, "--eval-every", 1, "--checkpoint-every", 0,
                 "--prompts", "a {} shape")  # fmt: skip
    _saved_metrics_agree(_printed_metrics(output), json.loads((out / "metrics.json").read_text()))
    protos = json.loads((out / "prototypes.json").read_text())
    assert protos["texts"] == [f"a {c} shape" for c in protos["classes"]]
    changed = _changed(base, out)
    assert changed and all(n.startswith(("vision_model.", "visual_projection.")) for n in changed)

    cams = tmp_path / "cams"
    output = _ok("gradcam", "--model", out, "--dataset", color_ds, "--out", cams, "--max-samples", 2, "--size", 32,
                 "--alpha", 0.5)  # fmt: skip
    assert f"wrote 2 overlay(s) to {cams}" in output
    table = pl.read_csv(cams / "gradcam.csv")
    assert table.height == 2 and set(table["grid"]) == {"4x4"}
    for f in table["file"]:
        with Image.open(cams / f) as im:
            assert im.size == (32, 32)


def test_train_output_layer_then_merge_the_head(composite: Path, color_ds: Path, tmp_path: Path) -> None:
    from vlmscope.activations.extract import ExtractConfig, extract
    from vlmscope.models import load_model

    adapter = load_model(composite)
    store = extract(ExtractConfig(batch_size=8, dtype="float32", device="cpu"), str(composite), color_ds,
                    tmp_path / "s.zarr", adapter=adapter, progress=False)  # fmt: skip
    out = tmp_path / "ol"
    output = _ok("train", "output-layer", "--store", store, "--model", composite, "--out", out, "--epochs", 5,
                 "--batch-size", 4, "--lr", 5e-2, "--rows", "answer-tokens", "--seed", 1,
                 "--valid-split", "train")  # fmt: skip
    saved = json.loads((out / "metrics.json").read_text())
    _saved_metrics_agree(_printed_metrics(output), saved)
    assert (out / "head.safetensors").is_file() and saved["best_epoch"] > 0  # fitting the train rows moved it
    args = json.loads((out / "training_args.json").read_text())
    cfg = args["config"]
    assert args["store"] == str(store) and cfg["epochs"] == 5 and cfg["valid_split"] == ["train"] and cfg["rows"] == "answer-tokens" and cfg["seed"] == 1

    merged = tmp_path / "merged"
    _ok("merge", "--base", composite, "--tensors", out / "head.safetensors", "--out", merged)
    from safetensors.torch import load_file

    head = load_file(str(out / "head.safetensors"))
    changed = _changed(composite, merged)
    assert changed and changed <= set(head)
    from vlmscope.models.weights import read_tensors

    got = read_tensors(merged, list(head))
    for n, t in head.items():
        torch.testing.assert_close(got[n], t.to(got[n].dtype), msg=n)
