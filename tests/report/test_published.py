"""The published figures as data: every STUDIES.md "Reported" number, once, in terms a run can be matched by."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from vlmscope.data.generators.relations_queries import QUERY_TYPES
from vlmscope.report.published import (
    DATASET_KINDS,
    FIGURES,
    MODEL_LABELS,
    SETTING_STEPS,
    SETTINGS,
    canonical_model,
    figures_of,
)
from vlmscope.report.studies import STUDIES

ROOT = Path(__file__).resolve().parents[2]

# STUDIES.md C, "Reported accuracy, balanced synthetic / CountBenchQA / after output-layer fine-tuning on synthetic"
COUNTING = {
    "Qwen2-VL-7B": (0.647, 0.862, 0.801),
    "PaliGemma2-10B": (0.749, 0.868, 0.893),
    "LLaVA-OneVision-7B": (0.675, 0.771, 0.811),
    "InternVL3-8B": (0.523, 0.800, 0.735),
}
# STUDIES.md B, "Reported (Qwen3-VL-4B, unmasked -> masked)"
RELATIONAL = {
    "count": (0.967, 0.741),
    "explicit_arrow_direction": (0.921, 0.764),
    "explicit_connection": (0.512, 0.503),
    "recognition_shape_and_color": (0.995, 0.993),
    "recognition_color": (0.968, 0.974),
    "recognition_shape": (0.806, 0.825),
    "implicit_spatial": (0.618, 0.645),
}


def test_counting_has_four_models_by_three_columns() -> None:
    got = {(f.label, f.dataset, f.setting): f.value for f in figures_of("counting")}
    want = {}
    for label, (balanced, countbench, output_layer) in COUNTING.items():
        want[(label, "balanced", "released")] = balanced
        want[(label, "countbench", "released")] = countbench
        want[(label, "balanced", "output-layer")] = output_layer
    assert got == want


def test_relational_is_qwen3_vl_per_query_type_original_and_masked() -> None:
    figs = figures_of("relational")
    assert {f.model for f in figs} == {"Qwen/Qwen3-VL-4B-Instruct"}
    got = {(f.query_type, f.variant): f.value for f in figs}
    want = {(qt, v): x for qt, pair in RELATIONAL.items() for v, x in zip(("original", "masked"), pair, strict=True)}
    assert got == want
    assert set(RELATIONAL) == set(QUERY_TYPES), "query types are the generator's names, so eval keys match"


def test_medical_figures() -> None:
    got = {(f.label, f.setting): f.value for f in figures_of("medical")}
    assert got == {
        ("CLIP ViT-L/14-336", "released"): 0.221,
        ("CLIP ViT-L/14-336", "fine-tuned"): 0.703,
        ("LLaVA-Med v1.5 (Mistral-7B)", "released"): 0.270,
        ("LLaVA-Med v1.5 (Mistral-7B)", "tower-projector"): 0.688,
    }
    assert {f.dataset for f in figures_of("medical")} == {"kl-grading"}


def test_spatial_and_unseen_state_no_figure() -> None:
    assert figures_of("spatial") == () and figures_of("unseen") == ()
    assert len(FIGURES) == 12 + 14 + 4


def test_every_figure_is_well_formed() -> None:
    studies = {s.key for s in STUDIES}
    keys = [f.key for f in FIGURES]
    assert len(set(keys)) == len(keys), "keys name one figure each (dvc metrics)"
    for f in FIGURES:
        assert f.study in studies and f.model in MODEL_LABELS
        assert f.dataset in DATASET_KINDS and f.setting in SETTINGS and f.setting in SETTING_STEPS
        assert 0 < f.value < 1 and f.metric == "accuracy" and "STUDIES.md" in f.source
    assert "counting.qwen2-vl-7b.balanced" in keys
    assert "counting.qwen2-vl-7b.balanced.output-layer" in keys
    assert "relational.qwen3-vl-4b.relations.count.masked" in keys


def test_the_real_profiles_ids_are_the_figures_ids() -> None:
    profile = yaml.safe_load((ROOT / "profiles" / "real-gpu.yaml").read_text())
    sources = {m["source"] for m in profile["hub_models"].values()}
    named = sources & set(MODEL_LABELS)
    assert named == {
        "Qwen/Qwen2-VL-7B-Instruct",
        "Qwen/Qwen3-VL-4B-Instruct",
        "google/paligemma2-10b-mix-448",
        "OpenGVLab/InternVL3-8B-hf",
    }
    for s in sources:
        assert canonical_model(s)[0] == s


@pytest.mark.parametrize(
    ("source", "want"),
    [
        ("qwen/qwen2-vl-7b-instruct", ("Qwen/Qwen2-VL-7B-Instruct", frozenset())),
        ("OpenGVLab/InternVL3-8B", ("OpenGVLab/InternVL3-8B-hf", frozenset())),
        ("lmms-lab/llava-onevision-qwen2-7b-ov", ("llava-hf/llava-onevision-qwen2-7b-ov-hf", frozenset())),
        ("paligemma2-10b", ("google/paligemma2-10b-mix-448", frozenset())),
        ("wanglihx/CLIP-OA", ("openai/clip-vit-large-patch14-336", frozenset({"clip"}))),
        (
            "/cache/hub/models--Qwen--Qwen3-VL-4B-Instruct/snapshots/0123abcd",
            ("Qwen/Qwen3-VL-4B-Instruct", frozenset()),
        ),
        ("llava-hf/llava-1.5-7b-hf", ("llava-hf/llava-1.5-7b-hf", frozenset())),
    ],
)
def test_canonical_model_maps_aliases(source: str, want: tuple[str, frozenset[str]]) -> None:
    assert canonical_model(source) == want
