"""The medical study (seed 001) end to end: ``dvc repro`` in studies/medical on tiny stand-ins and samples.

CLIP arm: class-folders import of the knee X-ray grade folders -> tiny CLIP
-> fine-tuned as a grade classifier (best by validation MAE) -> Grad-CAM.
LLaVA-Med arms: LLaVA-Med style conversations -> base (the tiny CLIP's tower
x a tiny Mistral) -> LoRA + merge, and tower swap (the fine-tuned CLIP tower)
-> projector training + merge; every model asked the grade of the test
X-rays; then the report. Ablations: LoRA rank/alpha and which tower is swapped in.
"""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
import torch
from safetensors.torch import load_file
from tests.pipeline.project import COMMAND_TIMEOUT, stages_run
from tests.pipeline.studies.harness import StudyRun, run_study

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(2 * COMMAND_TIMEOUT)]

MODELS = ["tiny-llava-med", "lora", "tower-swap"]
STAGES = [
    "import_knee", "import_med", "tiny_clip", "train_clip", "gradcam", "compose", "train_lora", "merge_lora",
    "swap_tower", "train_projector", "merge_projector", *(f"evaluate@{m}" for m in MODELS), "report",
]  # fmt: skip


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> StudyRun:
    return run_study("medical", tmp_path_factory)


def _tensors(study: StudyRun, model: str) -> dict[str, torch.Tensor]:
    return load_file(str(study.dir / "artifacts" / "models" / model / "model.safetensors"))


def _vision(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The image encoder's tensors by their name below ``prefix`` (``vision_model.`` / ``vision_tower.``)."""
    return {k.split(prefix, 1)[1]: v for k, v in tensors.items() if prefix in k}


def test_every_stage_runs_once_and_declares_what_it_reads(study: StudyRun) -> None:
    assert sorted(study.stages) == sorted(STAGES)
    assert study.trace_problems == []
    assert stages_run(study.dvc("repro")) == []


def test_grade_folders_import_with_grades(study: StudyRun) -> None:
    df = pl.read_parquet(study.dir / "artifacts/datasets/knee/manifest.parquet")
    assert df.group_by("split").len().sort("split")["len"].to_list() == [10, 15, 5]  # test, train, valid
    assert set(df["answer"]) == {f"Grade {g}" for g in range(5)} and set(df["grade"]) == set(range(5))
    med = pl.read_parquet(study.dir / "artifacts/datasets/med/manifest.parquet")
    assert med.height == 15 and set(med["split"]) == {"train"} and set(med["answer_type"]) == {"open"}


def test_clip_is_fine_tuned_as_a_grade_classifier(study: StudyRun) -> None:
    metrics = json.loads((study.dir / "artifacts/models/clip-oa/metrics.json").read_text())
    assert metrics["classes"] == 5 and metrics["steps"] == 4
    for key in ("test_mae", "test_mae_zero_shot", "test_accuracy", "test_accuracy_zero_shot"):
        assert isinstance(metrics[key], float)
    before = _vision(_tensors(study, "tiny-clip"), "vision_model.")
    after = _vision(_tensors(study, "clip-oa"), "vision_model.")
    assert before.keys() == after.keys() and any(not torch.equal(before[k], after[k]) for k in before)


def test_gradcam_overlays_every_test_image(study: StudyRun) -> None:
    out = study.dir / "artifacts/gradcam/clip-oa"
    table = pl.read_csv(out / "gradcam.csv")
    assert table.height == 10 and set(table["grid"]) == {"4x4"}
    for name in table["file"]:
        assert (out / name).stat().st_size > 500


def test_lora_changes_only_the_lm(study: StudyRun) -> None:
    adapter = json.loads((study.dir / "artifacts/training/lora/adapter/adapter_config.json").read_text())
    assert (adapter["r"], adapter["lora_alpha"]) == (8, 16)
    base, merged = _tensors(study, "tiny-llava-med"), _tensors(study, "lora")
    assert base.keys() == merged.keys()
    changed = [k for k in base if not torch.equal(base[k], merged[k])]
    assert changed and all("language_model" in k for k in changed)


def test_tower_swap_takes_the_fine_tuned_tower_and_trains_the_projector(study: StudyRun) -> None:
    base, swapped, final = _tensors(study, "tiny-llava-med"), _tensors(study, "swapped"), _tensors(study, "tower-swap")
    tuned = _vision(_tensors(study, "clip-oa"), "vision_model.")
    tower = _vision(swapped, "vision_tower.")
    assert tower.keys() == tuned.keys() and all(torch.equal(tower[k], tuned[k]) for k in tower)
    assert all(torch.equal(base[k], swapped[k]) for k in base if "vision_tower." not in k)
    changed = [k for k in swapped if not torch.equal(swapped[k], final[k])]
    assert changed and all("projector" in k for k in changed)


def test_every_model_is_asked_the_grade(study: StudyRun) -> None:
    for model in MODELS:
        summary = json.loads((study.dir / "artifacts/evals" / model / "knee/summary.json").read_text())
        assert summary["n"] == 10 and 0 <= summary["accuracy"] <= 1 and "grade/unparsed_rate" in summary


def test_report_compares_with_the_published_figures(study: StudyRun) -> None:
    assert "Medical adaptation" in (study.dir / "artifacts/reports/index.html").read_text()
    comparison = json.loads((study.dir / "artifacts/published_comparison.json").read_text())
    assert any(k.startswith("medical.") for k in comparison)


def test_lora_rank_and_alpha_are_an_ablation(study: StudyRun) -> None:
    out = study.dvc("exp", "run", "-S", "train.lora.r=4", "-S", "train.lora.alpha=8", "train_lora")
    assert stages_run(out) == ["train_lora"]
    adapter = json.loads((study.dir / "artifacts/training/lora/adapter/adapter_config.json").read_text())
    assert (adapter["r"], adapter["lora_alpha"]) == (4, 8)


def test_the_swapped_tower_is_an_ablation(study: StudyRun) -> None:
    out = study.dvc("exp", "run", "-S", "tower_swap.tower=tiny-clip", "swap_tower")
    assert stages_run(out) == ["swap_tower"]
    released = _vision(_tensors(study, "tiny-clip"), "vision_model.")
    tower = _vision(_tensors(study, "swapped"), "vision_tower.")
    assert all(torch.equal(tower[k], released[k]) for k in tower)


def test_samples_are_the_released_layouts(study: StudyRun) -> None:
    samples = study.dir / "samples"
    assert sorted(p.name for p in (samples / "knee").iterdir()) == ["test", "train", "val"]
    records = json.loads((samples / "train.json").read_text())
    first = records[0]
    assert set(first) == {"id", "image", "conversations"}
    assert [t["from"] for t in first["conversations"]] == ["human", "gpt"]
    assert (samples / "knee" / Path(first["image"])).is_file()
