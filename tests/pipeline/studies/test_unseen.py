"""The unseen-class study (seed 000) end to end: ``dvc repro`` in studies/unseen on tiny stand-ins and samples.

import (LLaVA conversation JSON) -> compose (tiny CLIP x tiny Llama) -> train
projector -> merge -> evaluate (seen vs unseen MCQA) -> extract -> FFN
analysis -> report; then the class-exclusive subsample ablation through ``dvc exp run -S``.
"""

from __future__ import annotations

import json

import polars as pl
import pytest
import torch
from safetensors.torch import load_file
from tests.pipeline.project import COMMAND_TIMEOUT, stages_run
from tests.pipeline.studies.harness import StudyRun, run_study

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(2 * COMMAND_TIMEOUT)]

STAGES = ["import", "compose", "train_projector", "merge_projector", "evaluate", "extract", "lens_ffn", "report"]


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> StudyRun:
    return run_study("unseen", tmp_path_factory)


def test_every_stage_runs_once_and_declares_what_it_reads(study: StudyRun) -> None:
    assert sorted(study.stages) == sorted(STAGES)
    assert study.trace_problems == []
    assert stages_run(study.dvc("repro")) == []


def test_import_marks_seen_and_unseen_mcqa_rows(study: StudyRun) -> None:
    manifest = pl.read_parquet(study.dir / "artifacts/datasets/vg/manifest.parquet")
    test = manifest.filter(pl.col("split") == "test")
    assert test["seen"].to_list().count(False) == 6 and test["seen"].to_list().count(True) == 6
    assert set(test.filter(~pl.col("seen"))["class_name"]).isdisjoint(manifest.filter(pl.col("split") == "train")["class_name"])
    assert all(len(c) == 4 for c in test["choices"].to_list())
    assert (manifest["synset"] == manifest["class_name"] + ".n.01").all()  # Visual Genome's WordNet ids kept


def test_only_the_projector_changed_and_was_merged(study: StudyRun) -> None:
    base = load_file(str(study.dir / "artifacts/models/base/model.safetensors"))
    aligned = load_file(str(study.dir / "artifacts/models/aligned/model.safetensors"))
    trained = load_file(str(study.dir / "artifacts/training/projector/projector.safetensors"))
    assert trained and all("projector" in k for k in trained)
    changed = sorted(k for k in base if not torch.equal(base[k], aligned[k]))
    assert changed and all("projector" in k for k in changed)
    for k, v in trained.items():
        assert torch.equal(aligned[k], v)


def test_metrics_break_accuracy_down_seen_vs_unseen(study: StudyRun) -> None:
    ev = study.dir / "artifacts/evals/aligned/vg"
    summary = json.loads((ev / "summary.json").read_text())
    assert summary["n"] == 12 and 0 <= summary["accuracy"] <= 1 and 0 <= summary["macro_accuracy"] <= 1
    groups = pl.read_csv(ev / "per_group.csv").filter(pl.col("group") == "seen")
    assert sorted(groups["value"].cast(pl.String).to_list()) == ["false", "true"]
    assert groups["n"].to_list() == [6, 6]


def test_ffn_analysis_names_tokens_per_layer(study: StudyRun) -> None:
    """Per prompt: its gt class, and per layer 3 top and 3 random neurons with 3 tokens each (9 per layer)."""
    ffn = study.dir / "artifacts/lens/aligned/vg/ffn"
    metrics = json.loads((ffn / "metrics.json").read_text())
    assert metrics["n_samples"] == 24 and metrics["n_layers"] == 2 and 0 <= metrics["gt_in_top"] <= 1
    records = [json.loads(line) for line in (ffn / "ffn.jsonl").read_text().splitlines()]
    manifest = pl.read_parquet(study.dir / "artifacts/datasets/vg/manifest.parquet")
    assert {r["sample_id"]: r["label"] for r in records} == dict(zip(manifest["sample_id"], manifest["class_name"]))
    for layer in records[0]["layers"]:
        assert len(layer["top_neurons"]) == len(layer["random_neurons"]) == 3
        assert [len(t) for t in layer["top_tokens"]] == [3, 3, 3]


def test_report_shows_the_study(study: StudyRun) -> None:
    html = (study.dir / "artifacts/reports/index.html").read_text()
    assert "Unseen-class alignment" in html
    summary = json.loads((study.dir / "artifacts/reports/report.json").read_text())
    assert summary["n_problems"] == 0 and summary["n_ffn"] == 1 and summary["n_evals"] == 1


def test_class_exclusive_subsample_is_an_ablation(study: StudyRun) -> None:
    # the exp runs up to the training stage only (the rest of the pipeline is covered above)
    out = study.dvc("exp", "run", "-S", "train.projector.subsample.proportion=0.5",
                    "-S", "train.projector.subsample.mode=class-exclusive", "train_projector")  # fmt: skip
    assert stages_run(out) == ["train_projector"]
    metrics = json.loads((study.dir / "artifacts/training/projector/metrics.json").read_text())
    assert metrics["subsample_classes"] == 3 and metrics["subsample_rows"] == 6
