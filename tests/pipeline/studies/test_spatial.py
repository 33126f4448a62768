"""The spatial probing study (seed 002) end to end: ``dvc repro`` in studies/spatial.

The generated spatial and colour sets and a VRD sample in the released
scene-graph format (with the depth relation and same-family pair the study
filters out) go through a tiny random LLaVA-1.5: last-token residual
streams of every layer, per-layer logistic probes, logit lens, evaluation.
"""

from __future__ import annotations

import csv
import json

import polars as pl
import pytest
from tests.pipeline.project import COMMAND_TIMEOUT
from tests.pipeline.studies.harness import StudyRun, run_study

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(2 * COMMAND_TIMEOUT)]

MODEL = "tiny-llava"


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> StudyRun:
    return run_study("spatial", tmp_path_factory)


def test_every_stage_runs_and_declares_what_it_reads(study: StudyRun) -> None:
    listed = [line.split()[0] for line in study.dvc("stage", "list").splitlines() if line.strip()]
    assert sorted(study.stages) == sorted(listed)
    assert {"import@vrd", "generate@spatial", "generate@color"} <= set(listed)
    assert study.trace_problems == []


def test_vrd_import_applies_the_studys_filters(study: StudyRun) -> None:
    ds = study.dir / "artifacts" / "datasets" / "vrd"
    df = pl.read_parquet(ds / "manifest.parquet")
    assert df.height == 24  # one kept relation per image
    assert set(df["relation"]) <= {"left of", "right of", "above", "below"}
    report = json.loads((ds / "import_report.json").read_text())
    assert report["n_records"] == 24
    assert sum(report["dropped"].values()) == 48, report["dropped"]  # a depth relation and a same-family pair each
    with open(ds / "relationships.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 24 and set(rows[0]) == {"img_path", "subj", "obj", "relationship"}


def test_probes_read_every_layer_at_the_last_token(study: StudyRun) -> None:
    for name, classes in (("spatial", 4), ("vrd", 4)):
        metrics = json.loads((study.dir / "artifacts" / "probes" / MODEL / name / "metrics.json").read_text())
        assert metrics["n_classes"] == classes and metrics["n_layers"] >= 2
        per_layer = pl.read_csv(study.dir / "artifacts" / "probes" / MODEL / name / "per_layer.csv")
        assert per_layer.height >= metrics["n_layers"] and per_layer["accuracy"].is_between(0, 1).all()


def test_evaluation_and_report(study: StudyRun) -> None:
    for name in ("spatial", "color", "vrd"):
        summary = json.loads((study.dir / "artifacts" / "evals" / MODEL / name / "summary.json").read_text())
        assert summary["n"] > 0 and 0.0 <= summary["accuracy"] <= 1.0
    assert "Spatial probing" in (study.dir / "artifacts" / "reports" / "index.html").read_text()
