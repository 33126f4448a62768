"""The counting study (seed 004) end to end: ``dvc repro`` in studies/counting on its real-format samples.

Balanced Pixmo-Count as released (per-split folders, images restarting at
``0.jpg``, dict ``points``) and the study's question/answer sets (nested and
flat forms) are imported; a tiny random Qwen2-VL is extracted, probed with
the study's 3-fold linear SVM, lensed and evaluated; the output layer is
trained on unseen combinations and scored on balanced. An ablation then
runs as ``dvc exp run -S``.
"""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
import yaml
from tests.pipeline.project import COMMAND_TIMEOUT, stages_run
from tests.pipeline.studies.harness import StudyRun, run_study

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(2 * COMMAND_TIMEOUT)]

MODEL = "tiny-qwen2vl"


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> StudyRun:
    return run_study("counting", tmp_path_factory)


def _json(path: Path) -> dict:
    return json.loads(path.read_text())


def test_every_stage_runs_and_declares_what_it_reads(study: StudyRun) -> None:
    listed = [line.split()[0] for line in study.dvc("stage", "list").splitlines() if line.strip()]
    assert sorted(study.stages) == sorted(listed)
    assert {"import@pixmo", "import@balanced", "import@unseen_combinations", f"output_layer@{MODEL}"} <= set(listed)
    assert study.trace_problems == []


def test_pixmo_splits_keep_their_own_images(study: StudyRun) -> None:
    ds = study.dir / "artifacts" / "datasets" / "pixmo"
    df = pl.read_parquet(ds / "manifest.parquet")
    assert df.group_by("split").len().sort("split").to_dicts() == [
        {"split": s, "len": 4} for s in ("test", "train", "valid")
    ]
    # every split has a 0.jpg; each row's placed image is its own record's picture
    assert df["image"].n_unique() == df.height == 12
    import hashlib

    for row in df.iter_rows(named=True):
        assert hashlib.sha256((ds / row["image"]).read_bytes()).hexdigest() == row["image_sha256"]
    report = _json(ds / "import_report.json")
    assert report["n_records"] == 12 and report["n_rows"] == 12


def test_both_question_forms_import_alike(study: StudyRun) -> None:
    for name in ("balanced", "unseen_combinations"):
        df = pl.read_parquet(study.dir / "artifacts" / "datasets" / name / "manifest.parquet")
        assert df.height == 12
        assert set(df["query_type"]) == {"count_closed"}
        assert df["entity_type"].null_count() == 0 and df["count"].is_in([1, 2, 3]).all()
    unseen = pl.read_parquet(study.dir / "artifacts" / "datasets" / "unseen_combinations" / "manifest.parquet")
    assert sorted(set(unseen["split"])) == ["train", "valid"]


def test_probe_is_the_studys_three_fold_svm(study: StudyRun) -> None:
    for name in ("pixmo", "balanced", "unseen_combinations"):
        metrics = _json(study.dir / "artifacts" / "probes" / MODEL / name / "metrics.json")
        assert metrics["n_classes"] == 3 and metrics["n_samples"] == 12
        assert 0.0 <= metrics["accuracy"] <= 1.0 and "accuracy_std" in metrics
    lock = yaml.safe_load((study.dir / "dvc.lock").read_text())
    probe = lock["stages"][f"probe@{MODEL}-balanced"]["params"]["params.yaml"]["probe"]
    assert probe["method"] == "svm" and probe["folds"] == 3


def test_output_layer_trains_on_unseen_and_scores_balanced(study: StudyRun) -> None:
    out = study.dir / "artifacts" / "output_layer" / MODEL / "unseen_combinations"
    metrics = _json(out / "metrics.json")
    assert metrics["train_n"] == 8 and metrics["valid_n"] == 4
    assert metrics["eval_n"] == 12  # the balanced store's rows
    assert (out / "head.safetensors").stat().st_size > 0


def test_evaluation_and_report(study: StudyRun) -> None:
    for name in ("pixmo", "balanced", "unseen_combinations"):
        summary = _json(study.dir / "artifacts" / "evals" / MODEL / name / "summary.json")
        assert summary["n"] == 12 and 0.0 <= summary["accuracy"] <= 1.0
    html = study.dir / "artifacts" / "reports" / "index.html"
    assert html.is_file() and "Counting" in html.read_text()


def test_an_ablation_is_a_param(study: StudyRun) -> None:
    """`dvc exp run -S` changes one knob and reruns only what reads it (plus the report)."""
    out = study.dvc("exp", "run", "-S", "probe.folds=2")
    ran = stages_run(out)
    assert ran and all(s.startswith("probe@") or s == "report" for s in ran), ran
    assert any(s.startswith("probe@") for s in ran)
    assert "probe.folds" in study.dvc("exp", "show", "--no-pager", "--csv")
