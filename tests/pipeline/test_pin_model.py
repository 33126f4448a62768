"""The `pin_model` stage with a revision, and that pin reaching the stages that load the model.

A hub model cannot be a DVC dependency, so `pin_model` writes ``artifacts/models/<name>/vlmscope-ref.json``
(source + revision) and `extract` / `evaluate` resolve it. Loading a pinned model at any other revision
than the pin would make DVC's cache lie, so the stages here run as DVC runs them (their own processes,
from a project directory holding ``params.yaml``) and the revision must show in what they wrote. The
pin's source is a local tiny checkpoint (no network; transformers ignores the revision of a local
directory, vlmscope still records it).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

import vlmscope
from vlmscope import open_activations

ROOT = Path(__file__).resolve().parents[2]
SRC = Path(vlmscope.__file__).resolve().parents[1]
TIMEOUT = 300
"""Seconds one stage process may take (each imports torch and runs a tiny model)."""


def _stage(project: Path, script: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]),
           "VLMSCOPE_WARNINGS_AS_ERRORS": "1"}  # fmt: skip
    res = subprocess.run([sys.executable, str(ROOT / "stages" / script), *args], cwd=project, env=env,
                         capture_output=True, text=True, timeout=TIMEOUT)  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    return res


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint: Callable[[str], Path]) -> Path:
    root = tmp_path_factory.mktemp("pin") / "project"
    root.mkdir()
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["hub_models"] = {"hub": {"source": str(tiny_checkpoint("llava")), "revision": "v1.2"},
                            "unpinned": {"source": "org/some-model"}}  # fmt: skip
    params["models"] = {"hub": {"dtype": "float32", "device": "cpu"}}
    params["extract"] = {**params["extract"], "batch_size": 2, "attention": False, "mlp": False, "dtype": "float32"}
    params["evaluate"] = {**params["evaluate"], "batch_size": 2, "max_new_tokens": 2, "split": "all"}
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return root


def test_pin_model_writes_source_and_revision(project: Path, tiny_checkpoint: Callable[[str], Path]) -> None:
    _stage(project, "pin_model.py", "--section", "hub_models.hub", "--out", "artifacts/models/hub")
    ref = json.loads((project / "artifacts/models/hub/vlmscope-ref.json").read_text())
    assert ref == {"source": str(tiny_checkpoint("llava")), "revision": "v1.2"}
    _stage(project, "pin_model.py", "--section", "hub_models.unpinned", "--out", "artifacts/models/unpinned")
    ref = json.loads((project / "artifacts/models/unpinned/vlmscope-ref.json").read_text())
    assert ref == {"source": "org/some-model", "revision": None}


def test_the_pinned_revision_reaches_extract_and_evaluate(project: Path, tiny_dataset: Callable[..., Path]) -> None:
    if not (project / "artifacts/models/hub/vlmscope-ref.json").is_file():
        _stage(project, "pin_model.py", "--section", "hub_models.hub", "--out", "artifacts/models/hub")
    dataset = tiny_dataset("color", 4)
    store = project / "artifacts/activations/hub/color.zarr"
    _stage(project, "extract.py", "--model", "hub", "--model-dir", "artifacts/models/hub", "--dataset", str(dataset), "--out", str(store))
    attrs = open_activations(store).attrs
    assert attrs["model_revision"] == "v1.2" and attrs["family"] == "llava"
    evals = project / "artifacts/evals/hub/color"
    _stage(project, "evaluate.py", "--model", "hub", "--model-dir", "artifacts/models/hub", "--dataset", str(dataset), "--out", str(evals))
    assert json.loads((evals / "config.json").read_text())["model_revision"] == "v1.2"
