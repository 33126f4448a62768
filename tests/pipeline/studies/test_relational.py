"""The relational reasoning study (seed 003) end to end: ``dvc repro`` in studies/relational.

The released ``queries.json`` format (inline lettered options, "None"
answers, masked copies under the same names) is imported into one row per
question and variant; a tiny random Qwen3-VL is evaluated (accuracy per
query type, original vs masked) and its attention to the image probed.
"""

from __future__ import annotations

import json

import polars as pl
import pytest
from tests.pipeline.project import COMMAND_TIMEOUT
from tests.pipeline.studies.harness import StudyRun, run_study

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(2 * COMMAND_TIMEOUT)]

MODEL = "tiny-qwen3vl"


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> StudyRun:
    return run_study("relational", tmp_path_factory)


def test_every_stage_runs_and_declares_what_it_reads(study: StudyRun) -> None:
    listed = [line.split()[0] for line in study.dvc("stage", "list").splitlines() if line.strip()]
    assert sorted(study.stages) == sorted(listed)
    assert "import_queries" in listed
    assert study.trace_problems == []


def test_queries_import_as_original_and_masked_pairs(study: StudyRun) -> None:
    released = json.loads((study.dir / "samples" / "queries.json").read_text())
    n_questions = sum(len(r["questions"]) for r in released)
    df = pl.read_parquet(study.dir / "artifacts" / "datasets" / "queries" / "manifest.parquet")
    assert df.height == 2 * n_questions
    assert df.group_by("variant").len().sort("variant")["len"].to_list() == [n_questions, n_questions]
    assert df.group_by("source_id").len()["len"].unique().to_list() == [2]
    nones = sum(q[k] == "None" for r in released for q in r["questions"] for k in ("ground_truth", "ground_truth_masked"))
    assert nones > 0 and df["answer_index"].null_count() == nones


def test_masked_vs_original_metrics(study: StudyRun) -> None:
    """The evaluation pairs every question's original and masked rows through the imported `source_id`."""
    released = json.loads((study.dir / "samples" / "queries.json").read_text())
    metrics = json.loads((study.dir / "artifacts" / "evals" / MODEL / "queries" / "metrics.json").read_text())
    assert metrics["paired/n_pairs"] == sum(len(r["questions"]) for r in released)
    assert metrics["paired/accuracy_drop"] == metrics["paired/accuracy_original"] - metrics["paired/accuracy_masked"]
    for query_type in {q["query_type"] for r in released for q in r["questions"]}:
        assert f"paired/query_type/{query_type}/accuracy_masked" in metrics


def test_attention_probe_of_the_query_type(study: StudyRun) -> None:
    metrics = json.loads((study.dir / "artifacts" / "probes" / MODEL / "queries" / "metrics.json").read_text())
    assert metrics["n_classes"] >= 5 and 0.0 <= metrics["accuracy"] <= 1.0
    assert "Relational reasoning" in (study.dir / "artifacts" / "reports" / "index.html").read_text()
