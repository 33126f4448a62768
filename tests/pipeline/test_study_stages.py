"""The study pipelines' stage scripts (compose, merge, train, gradcam) as DVC runs them, on tiny models.

Each runs in its own process from a project folder holding ``params.yaml``;
a pinned model directory (``vlmscope-ref.json``) resolves to its source, and
a part given on the command line overrides params.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file, save_file

import vlmscope
from vlmscope.models.ref import ModelRef, write_ref

ROOT = Path(__file__).resolve().parents[2]
SRC = Path(vlmscope.__file__).resolve().parents[1]
TIMEOUT = 300


def _stage(project: Path, script: str, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]),
           "VLMSCOPE_WARNINGS_AS_ERRORS": "1"}  # fmt: skip
    res = subprocess.run([sys.executable, str(ROOT / "stages" / script), *args], cwd=project, env=env,
                         capture_output=True, text=True, timeout=TIMEOUT)  # fmt: skip
    assert (res.returncode == 0) == ok, res.stderr[-3000:]
    return res


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("study-stages") / "project"
    root.mkdir()
    params = {
        "compose": {"tower": "vit", "lm": "qwen3", "seed": 1},
        "gradcam": {"max_samples": 2, "size": 32},
    }
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    return root


def test_compose_builds_the_params_pair_and_takes_a_tower_directory(
    project: Path, tiny_checkpoint: Callable[[str], Path]
) -> None:
    _stage(project, "compose.py", "--out", "from-params")
    side = json.loads((project / "from-params" / "vlmscope.json").read_text())
    assert (side["tower"], side["lm_type"], side["seed"]) == ("vit", "qwen3", 1)
    clip = tiny_checkpoint("clip")
    _stage(project, "compose.py", "--tower", str(clip), "--out", "from-dir")
    side = json.loads((project / "from-dir" / "vlmscope.json").read_text())
    assert side["vision"] == str(clip) and side["lm_type"] == "qwen3"


def test_merge_resolves_a_pin(project: Path) -> None:
    from vlmscope.models.compose import ComposeConfig, compose

    base = compose(ComposeConfig(tower="vit", lm="qwen3"), project / "base")
    tensors = {k: v for k, v in load_file(str(base / "model.safetensors")).items() if "projector" in k}
    trained = {k: v + 1 for k, v in tensors.items()}
    save_file(trained, str(project / "projector.safetensors"))
    write_ref(project / "pinned", ModelRef(source=str(base), revision="v1"))
    _stage(project, "merge.py", "--base", "pinned", "--projector", "projector.safetensors", "--out", "merged")
    merged = load_file(str(project / "merged" / "model.safetensors"))
    assert all(torch.equal(merged[k], v) for k, v in trained.items())
    info = json.loads((project / "merged" / "merge_info.json").read_text())
    assert info["base"] == str(base)  # the pin's source (a local directory: its revision means nothing)
    res = _stage(project, "merge.py", "--base", "pinned", "--out", "x", ok=False)
    assert "one of the arguments --adapter --projector --vision-tower is required" in res.stderr


def test_merge_stage_takes_a_released_mm_projector_bin(project: Path, tiny_checkpoint: Callable[[str], Path]) -> None:
    """A study pointed at the LLaVA codebase's released projector merges it as `vlmscope merge` does."""
    from vlmscope.models.weights import tensor_shapes

    base = tiny_checkpoint("composite")
    prefix = next(k for k in tensor_shapes(base) if "multi_modal_projector.linear_1.weight" in k).rsplit("linear_1", 1)[0]
    shapes = tensor_shapes(base)
    state = {f"model.mm_projector.{i}.{p}": torch.randn(shapes[f"{prefix}{layer}.{p}"])
             for i, layer in ((0, "linear_1"), (2, "linear_2")) for p in ("weight", "bias")}  # fmt: skip
    torch.save(state, project / "mm_projector.bin")
    _stage(project, "merge.py", "--base", str(base), "--projector", "mm_projector.bin", "--out", "merged-bin")
    info = json.loads((project / "merged-bin" / "merge_info.json").read_text())
    assert info["projector_kind"] == "mlp2x_gelu"
    merged = load_file(str(project / "merged-bin" / "model.safetensors"))
    assert torch.equal(merged[f"{prefix}linear_2.bias"], state["model.mm_projector.2.bias"])


def test_train_refuses_an_unknown_key_in_one_line(project: Path) -> None:
    params = yaml.safe_load((project / "params.yaml").read_text())
    (project / "params.yaml").write_text(yaml.safe_dump({**params, "train": {"lora": {"rank": 8}}}))
    res = _stage(project, "train.py", "--trainer", "lora", "--section", "train.lora", "--model-dir", "base",
                 "--dataset", "none", "--out", "lora", ok=False)  # fmt: skip
    assert res.stderr.strip().splitlines() == [
        "error: params.yaml: train.lora.rank: Extra inputs are not permitted (got 8)"
    ]
