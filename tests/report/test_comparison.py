"""Matching runs to published figures on hand-made artifacts trees, in the files' real shapes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vlmscope.errors import ConfigError
from vlmscope.report import ReportConfig, build_report, scan_artifacts
from vlmscope.report.comparison import (
    ComparisonRow,
    collect_measurements,
    compare,
    compare_published,
    comparison_metrics,
)
from vlmscope.report.inventory import DatasetEntry
from vlmscope.report.provenance import dataset_kind, identify_model, run_model
from vlmscope.report.published import FIGURES, figures_of


def _json(path: Path, data: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


def _dataset(root: Path, name: str, generator: str, **params: object) -> Path:
    d = root / "datasets" / name
    _json(d / "dataset.json", {"generator": generator, "params": params, "n_samples": 10, "fingerprint": "f" * 64})
    return d


def _eval(root: Path, model: str, dataset: str, metrics: dict, recorded: str | None = None) -> None:
    d = root / "evals" / model / dataset
    _json(d / "metrics.json", metrics)
    _json(d / "config.json", {"model": recorded or f"artifacts/models/{model}", "config": {}})


def _pin(root: Path, name: str, source: str) -> Path:
    d = root / "models" / name
    _json(d / "vlmscope-ref.json", {"source": source, "revision": "main"})
    return d


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """Real-model runs of every kind next to tiny-model runs that must match nothing."""
    root = tmp_path / "artifacts"
    _dataset(root, "counting", "counting", variant="balanced", n=216)
    _dataset(root, "counting-big", "counting", n=2160)  # variant left at its default: balanced
    _dataset(root, "distractors", "counting", variant="distractors")
    _dataset(root, "unseen", "counting", variant="unseen-combinations")
    _dataset(root, "countbench", "countbench")
    _dataset(root, "relations", "relations", n=24)
    knee = _dataset(root, "knee", "class-folders")
    _dataset(root, "spatial", "spatial")

    # pipeline pins (the pipeline's eval config.json records the hub id; the pin alone must do too)
    _pin(root, "qwen2vl-7b", "Qwen/Qwen2-VL-7B-Instruct")
    _eval(root, "qwen2vl-7b", "counting", {"accuracy": 0.61, "n": 216}, recorded="Qwen/Qwen2-VL-7B-Instruct")
    _eval(root, "qwen2vl-7b", "counting-big", {"accuracy": 0.64})
    _eval(root, "qwen2vl-7b", "distractors", {"accuracy": 0.5})
    _eval(root, "qwen2vl-7b", "spatial", {"accuracy": 0.9})
    # a CLI run: no models/ entry, the evaluation's own record (an alias of the figure's id)
    _eval(root, "internvl", "countbench", {"accuracy": 0.79}, recorded="OpenGVLab/InternVL3-8B")
    _eval(
        root, "qwen3vl-4b", "relations",
        {"accuracy": 0.8, "paired/query_type/count/accuracy_original": 0.9,
         "paired/query_type/count/accuracy_masked": 0.7, "paired/accuracy_original": 0.85,
         "accuracy/query_type/count": 0.8},
        recorded="Qwen/Qwen3-VL-4B-Instruct",
    )  # fmt: skip
    # the tiny default: trained from a tiny checkpoint, no hub id anywhere
    _json(root / "models" / "tiny-composite" / "vlmscope.json", {"family": "composite"})
    _json(
        root / "models" / "default" / "training_args.json",
        {"trainer": "default", "model": str(root / "models" / "tiny-composite")},
    )
    _json(root / "models" / "default" / "metrics.json", {"final_loss": 0.8})
    _eval(root, "default", "counting", {"accuracy": 0.3})
    # a LoRA-tuned Qwen2-VL: no published setting
    _json(
        root / "models" / "qwen-lora" / "training_args.json", {"trainer": "lora", "model": "Qwen/Qwen2-VL-7B-Instruct"}
    )
    _eval(root, "qwen-lora", "counting", {"accuracy": 0.99})

    # output layer: own balanced test split, and trained on unseen combinations + evaluated on the balanced store
    d = root / "output_layer" / "qwen2vl-7b" / "counting"
    _json(d / "metrics.json", {"test_accuracy_after": 0.77, "test_accuracy_before": 0.6})
    _json(
        d / "training_args.json", {"trainer": "output-layer", "model": "Qwen/Qwen2-VL-7B-Instruct", "eval_stores": []}
    )
    _pin(root, "paligemma2-10b", "google/paligemma2-10b-mix-448")
    store = root / "activations" / "paligemma2-10b" / "counting.zarr"
    store.mkdir(parents=True)
    d = root / "output_layer" / "paligemma2-10b" / "unseen"
    _json(d / "metrics.json", {"eval_accuracy_after": 0.88, "test_accuracy_after": 0.95})
    _json(d / "training_args.json", {"trainer": "output-layer", "model": "google/paligemma2-10b-mix-448",
                                     "eval_stores": [str(store)]})  # fmt: skip

    # medical: train clip on the knee grades; LLaVA-Med released; tower swap + projector training
    _json(root / "models" / "clip-knee" / "training_args.json", {
        "trainer": "clip", "model": "openai/clip-vit-large-patch14-336", "datasets": [str(knee)]})  # fmt: skip
    _json(root / "models" / "clip-knee" / "metrics.json", {"test_accuracy": 0.71, "test_accuracy_zero_shot": 0.2})
    med = _pin(root, "llava-med", "microsoft/llava-med-v1.5-mistral-7b")
    _eval(root, "llava-med", "knee", {"accuracy": 0.25})
    _json(
        root / "models" / "med-tower" / "merge_info.json",
        {"base": str(med), "vision_tower": str(root / "models" / "clip-knee")},
    )
    _json(
        root / "models" / "med-proj" / "training_args.json",
        {"trainer": "projector", "model": str(root / "models" / "med-tower")},
    )
    _eval(root, "med-proj", "knee", {"accuracy": 0.66})
    return root


def _found(rows: list[ComparisonRow]) -> dict[str, list[tuple[float, str]]]:
    out: dict[str, list[tuple[float, str]]] = {}
    for r in rows:
        if r.run is not None:
            out.setdefault(r.figure.key, []).append((r.run.value, r.run.run))
    return out


def test_runs_match_the_figures_of_their_model_dataset_and_setting(tree: Path) -> None:
    rows = compare_published(scan_artifacts(tree))
    assert _found(rows) == {
        "counting.qwen2-vl-7b.balanced": [(0.61, "evals/qwen2vl-7b/counting"), (0.64, "evals/qwen2vl-7b/counting-big")],
        "counting.qwen2-vl-7b.balanced.output-layer": [(0.77, "output_layer/qwen2vl-7b/counting")],
        "counting.paligemma2-10b.balanced.output-layer": [(0.88, "output_layer/paligemma2-10b/unseen")],
        "counting.internvl3-8b.countbench": [(0.79, "evals/internvl/countbench")],
        "relational.qwen3-vl-4b.relations.count.original": [(0.9, "evals/qwen3vl-4b/relations")],
        "relational.qwen3-vl-4b.relations.count.masked": [(0.7, "evals/qwen3vl-4b/relations")],
        "medical.clip-vit-l-14-336.kl-grading": [(0.2, "models/clip-knee")],
        "medical.clip-vit-l-14-336.kl-grading.fine-tuned": [(0.71, "models/clip-knee")],
        "medical.llava-med-v1.5-mistral-7b.kl-grading": [(0.25, "evals/llava-med/knee")],
        "medical.llava-med-v1.5-mistral-7b.kl-grading.tower-projector": [(0.66, "evals/med-proj/knee")],
    }
    # every figure keeps a row: unmatched ones with an empty run
    assert {r.figure for r in rows} == set(FIGURES)
    empty = [r for r in rows if r.run is None]
    assert len(empty) == len(FIGURES) - 10 and all(r.diff is None for r in empty)


def test_flat_metrics_for_dvc(tree: Path) -> None:
    metrics = comparison_metrics(compare_published(scan_artifacts(tree)))
    assert metrics["counting.qwen2-vl-7b.balanced.published"] == 0.647
    assert metrics["counting.qwen2-vl-7b.balanced.run"] == 0.61  # the first run by path
    assert metrics["counting.qwen2-vl-7b.balanced.diff"] == pytest.approx(0.61 - 0.647)
    assert "counting.internvl3-8b.balanced.run" not in metrics  # no run: only the published value
    assert metrics["counting.internvl3-8b.balanced.published"] == 0.523
    assert sum(k.endswith(".published") for k in metrics) == len(FIGURES)
    assert all(isinstance(v, float) for v in metrics.values())


def test_tiny_models_and_unmatched_datasets_give_nothing(tree: Path) -> None:
    inv = scan_artifacts(tree)
    runs = {m.run for m in collect_measurements(inv)}
    assert not any("default" in r or "qwen-lora" in r or "distractors" in r or "spatial" in r for r in runs)
    assert run_model(inv, "default", None).model is None
    assert run_model(inv, "qwen-lora", None).steps == frozenset({"lora"})


def test_identity_follows_a_checkpoint_back_to_its_hub_model(tree: Path) -> None:
    inv = scan_artifacts(tree)
    who = run_model(inv, "med-proj", None)
    assert who.model == "microsoft/llava-med-v1.5-mistral-7b"
    assert who.steps == frozenset({"projector", "vision-tower"})
    assert identify_model("Qwen/Qwen2-VL-7B-Instruct", tree).model == "Qwen/Qwen2-VL-7B-Instruct"
    assert identify_model("not a model", tree).model is None


def test_a_cycle_of_records_ends(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    _json(a / "training_args.json", {"trainer": "projector", "model": str(b)})
    _json(b / "training_args.json", {"trainer": "projector", "model": str(a)})
    assert identify_model(str(a), tmp_path).model is None


def test_config_name_or_path_is_the_last_resort(tmp_path: Path) -> None:
    _json(tmp_path / "ckpt" / "config.json", {"_name_or_path": "Qwen/Qwen3-VL-4B-Instruct", "model_type": "qwen3_vl"})
    assert identify_model(str(tmp_path / "ckpt"), tmp_path).model == "Qwen/Qwen3-VL-4B-Instruct"


@pytest.mark.parametrize(
    ("generator", "params", "kind"),
    [
        ("counting", {"variant": "balanced"}, "balanced"),
        ("counting", {}, "balanced"),
        ("counting", {"variant": "clustered"}, None),
        ("counting", {"variant": "unseen-combinations"}, "unseen-combinations"),
        ("countbench", {}, "countbench"),
        ("relations", {}, "relations"),
        ("relations-queries", {}, "relations"),
        ("class-folders", {}, "kl-grading"),
        ("counting-qa", {}, None),  # which of the study's sets it is cannot be told
        ("spatial", {}, None),
        (None, None, None),
    ],
)
def test_dataset_kind(generator: str | None, params: dict | None, kind: str | None) -> None:
    assert dataset_kind(DatasetEntry("x", None, generator, params=params)) == kind


def test_compare_is_pure_and_keeps_figure_order() -> None:
    rows = compare(figures_of("medical"), [])
    assert [r.figure for r in rows] == list(figures_of("medical")) and all(r.run is None for r in rows)


def test_report_shows_the_table_and_writes_the_metrics_file(tree: Path, tmp_path: Path) -> None:
    out_json = tmp_path / "published_comparison.json"
    index = build_report(tree, tree / "reports", ReportConfig(), comparison=out_json)
    written = json.loads(out_json.read_text())
    assert written == comparison_metrics(compare_published(scan_artifacts(tree)))
    html = index.read_text()
    assert html.count("Published figures vs this run") == 3  # relational, counting, medical
    assert "evals/qwen2vl-7b/counting-big" in html and "0.647" in html
    assert "STUDIES.md states no published figure for spatial probing" in html


def test_tiny_runs_still_show_every_figure_with_empty_cells(fake_artifacts, tmp_path: Path) -> None:
    out_json = tmp_path / "c.json"
    index = build_report(fake_artifacts(), tmp_path / "r", ReportConfig(), comparison=out_json)
    written = json.loads(out_json.read_text())
    assert len(written) == len(FIGURES) and all(k.endswith(".published") for k in written)
    html = index.read_text()
    assert html.count("the tiny models match none") == 3
    assert "python -m vlmscope.profiles profiles/real-gpu.yaml &amp;&amp; dvc repro" in html


def test_comparison_inside_out_is_refused(tree: Path) -> None:
    with pytest.raises(ConfigError, match="inside --out"):
        build_report(tree, tree / "reports", ReportConfig(), comparison=tree / "reports" / "c.json")


def test_the_pin_file_name_is_the_pipelines() -> None:
    from vlmscope.models.ref import REF_FILE
    from vlmscope.report.provenance import REF_FILE as REPORT_REF_FILE

    assert REPORT_REF_FILE == REF_FILE
