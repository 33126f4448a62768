"""The report's pure pieces: key grammar, chance level, patch grids, discovery, study mapping, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from vlmscope.cli.app import app
from vlmscope.report.html import fmt, png_size, slug
from vlmscope.report.inventory import scan_artifacts
from vlmscope.report.parts.attention import infer_grid, patch_map
from vlmscope.report.parts.evaluation import chance_by_row, split_eval_metrics
from vlmscope.report.parts.lens import pick_layers, stat_panels
from vlmscope.report.studies import assign_studies
from vlmscope.report.where import main as where_main
from vlmscope.report.where import report_location


def test_split_eval_metrics_reads_the_evaluator_key_grammar() -> None:
    em = split_eval_metrics(
        {
            "accuracy": 0.5,
            "n": 10,
            "count/mae": 1.5,
            "accuracy/query_type/count": 0.75,
            "n/query_type/count": 4,
            "macro_accuracy/entity_type/red_circles": 0.2,
            "paired/accuracy_drop": 0.1,
            "paired/query_type/implicit_spatial/retain_rate": 0.9,
            "masked/fix_rate": 0.3,
        }
    )
    assert em.overall == {"accuracy": 0.5, "n": 10, "count/mae": 1.5}
    assert em.groups == {
        "query_type": {"count": {"accuracy": 0.75, "n": 4}},
        "entity_type": {"red_circles": {"macro_accuracy": 0.2}},
    }
    assert em.paired == {
        ("", "overall"): {"accuracy_drop": 0.1, "fix_rate": 0.3},
        ("query_type", "implicit_spatial"): {"retain_rate": 0.9},
    }


def test_chance_uses_the_options_or_the_distinct_answers_of_the_query_type() -> None:
    df = pl.DataFrame(
        {
            "answer": ["A", "B", "3", "4", "5", "5"],
            "query_type": ["color", "color", "count", "count", "count", "count"],
            "choices": [["red", "blue"], ["red", "blue", "green", "cyan"], None, None, None, None],
        }
    )
    assert chance_by_row(df).to_list() == pytest.approx([0.5, 0.25, 1 / 3, 1 / 3, 1 / 3, 1 / 3])
    assert chance_by_row(pl.DataFrame({"answer": ["a", "b", "b", "c"]})).to_list() == pytest.approx([1 / 3] * 4)


@pytest.mark.parametrize(
    ("n", "aspect", "grid"),
    [(576, 1.0, (24, 24)), (12, 4 / 3, (3, 4)), (12, 0.75, (4, 3)), (7, 1.0, (1, 7)), (1, 1.0, (1, 1))],
)
def test_infer_grid_matches_the_image_aspect(n: int, aspect: float, grid: tuple[int, int]) -> None:
    assert infer_grid(n, aspect) == grid


def test_patch_map_uses_the_recorded_grid_and_drops_padding() -> None:
    v = np.arange(12, dtype=float)
    assert patch_map(v, (3, 4), 1.0).shape == (3, 4)
    assert patch_map(v, (3, 4), 1.0)[1, 0] == 4.0  # row-major
    padded = np.concatenate([np.arange(9, dtype=float), [np.nan] * 3])
    assert patch_map(padded, None, 1.0).shape == (3, 3)
    with pytest.raises(ValueError, match="at least one patch"):
        infer_grid(0)


def test_pick_layers_keeps_first_and_last() -> None:
    assert pick_layers(list(range(1, 33)), 4) == [1, 11, 22, 32]
    assert pick_layers([1, 2], 4) == [1, 2]


def test_stat_panels_split_by_scale() -> None:
    df = pl.DataFrame(
        {"layer": [1, 2], "acc": [0.1, 0.9], "mean_rank": [100.0, 2.0], "logit": [3.0, -1.0], "n": [5, 5]}
    )
    panels = stat_panels(df)
    assert [(p[0], [s[0] for s in p[1]], p[2]) for p in panels] == [
        ("fraction / probability", ["acc"], False),
        ("rank (log)", ["mean_rank"], True),
        ("value", ["logit"], False),
    ]


def test_html_helpers() -> None:
    assert slug("llava-hf/llava-1.5-7b-hf", "a b") == "llava-hf--llava-1.5-7b-hf-a_b"
    assert fmt(None) == fmt(float("nan")) == "–"
    assert fmt(0.12345) == "0.123" and fmt(7) == "7" and fmt(1234.0) == "1234" and fmt(123456.7) == "1.235e+05"
    with pytest.raises(ValueError, match="not a PNG"):
        png_size(b"GIF89a" + b"\0" * 30)


def _write(path: Path, text: str = "{}") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_scan_finds_nested_model_names_and_maps_studies_by_generator(tmp_path: Path) -> None:
    root = tmp_path
    # a dataset *named* spatial whose generator is counting belongs to the counting study
    _write(root / "datasets/spatial/dataset.json", json.dumps({"generator": "counting", "n_samples": 3}))
    _write(root / "datasets/vg/dataset.json", json.dumps({"generator": "llava"}))
    _write(root / "evals/llava-hf/llava-1.5-7b-hf/spatial/metrics.json")
    _write(root / "probes/org/model/vg/entity/per_layer.csv", "layer,accuracy\n0,0.5\n")
    _write(root / "lens/m/spatial/ffn/ffn.jsonl", "{}\n")
    _write(root / "lens/m/unknown-ds/logit/summary.csv", "layer\n1\n")
    _write(root / "evals/m/.spatial.tmp-123/metrics.json")  # an atomic writer's temporary: ignored
    (root / "activations/m/vg.zarr").mkdir(parents=True)
    _write(root / "models/clip-ft/metrics.json")
    _write(root / "models/clip-ft/config.json", json.dumps({"model_type": "clip"}))
    _write(root / "models/default/metrics.json")
    _write(root / "models/vg-proj/metrics.json")
    _write(root / "models/vg-proj/training_args.json", json.dumps({"trainer": "projector"}))
    _write(root / "training/other/metrics.json")  # a training log without a checkpoint directory
    _write(root / "training/default/metrics.json")  # the checkpoint's own metrics.json wins
    _write(root / "probes/m/spatial/per_layer.csv", "layer,accuracy\n0,0.5\n")  # a per-dataset probe
    _write(root / "output_layer/m/spatial/metrics.json")
    inv = scan_artifacts(root)
    assert [(r.model, r.dataset) for r in inv.evals] == [("llava-hf/llava-1.5-7b-hf", "spatial")]
    assert [(p.model, p.dataset, p.label) for p in inv.probes] == [
        ("m", "spatial", None),
        ("org/model", "vg", "entity"),
    ]
    assert [(r.model, r.dataset) for r in inv.output_layer] == [("m", "spatial")]
    assert [(m.name, m.path.parent.name, m.trainer) for m in inv.models] == [
        ("clip-ft", "models", None),
        ("default", "models", None),
        ("other", "training", None),
        ("vg-proj", "models", "projector"),
    ]
    assert [(r.model, r.dataset) for r in inv.ffn] == [("m", "spatial")]
    assert [(r.model, r.dataset) for r in inv.stores] == [("m", "vg")]
    assert inv.datasets["unknown-ds"].path is None and inv.datasets["unknown-ds"].generator is None
    studies = {c.study.key: c for c in assign_studies(inv)}
    assert studies["counting"].datasets == ["spatial"] and len(studies["counting"].evals) == 1
    assert studies["spatial"].datasets == [] and studies["spatial"].empty
    assert [r.dataset for r in studies["unseen"].ffn] == ["spatial"]  # every FFN analysis is the unseen study's
    assert [m.name for m in studies["medical"].models] == ["clip-ft"]
    assert [m.name for m in studies["unseen"].models] == ["vg-proj"]
    assert len(studies["counting"].output_layer) == 1 and len(studies["counting"].probes) == 1
    assert studies["other"].datasets == ["unknown-ds"] and len(studies["other"].logit_lens) == 1


def test_where_prints_the_location_or_says_there_is_none(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert where_main([str(tmp_path)]) == 0
    assert capsys.readouterr().out.startswith(f"No report yet at {tmp_path / 'index.html'}")
    (tmp_path / "index.html").write_text("<html></html>")
    assert where_main([str(tmp_path)]) == 0
    assert capsys.readouterr().out.strip() == f"Report: file://{tmp_path.resolve()}/index.html"
    assert report_location(tmp_path) == f"Report: {(tmp_path / 'index.html').resolve().as_uri()}"


def test_cli_writes_the_report_and_names_it(fake_artifacts, tmp_path: Path) -> None:
    root = fake_artifacts("datasets-only")
    out = tmp_path / "reports"
    res = CliRunner().invoke(app, ["report", "--artifacts", str(root), "--out", str(out), "--title", "My run"])
    assert res.exit_code == 0, res.output
    assert res.output.strip() == f"Report: {(out / 'index.html').resolve().as_uri()}"
    assert "<title>My run</title>" in (out / "index.html").read_text()


def test_cli_writes_the_published_comparison_when_asked(fake_artifacts, tmp_path: Path) -> None:
    root = fake_artifacts("datasets-only")
    out, comparison = tmp_path / "reports", tmp_path / "published_comparison.json"
    assert not comparison.exists()
    res = CliRunner().invoke(app, ["report", "--artifacts", str(root), "--out", str(out), "--comparison", str(comparison)])
    assert res.exit_code == 0, res.output
    data = json.loads(comparison.read_text())
    assert data["counting.qwen2-vl-7b.balanced.published"] == 0.647 and not any(k.endswith(".run") for k in data)
    res = CliRunner().invoke(app, ["report", "--artifacts", str(root), "--out", str(out), "--comparison", str(out / "c.json")])
    assert res.exit_code == 1 and "inside --out" in res.output


def test_cli_rejects_bad_options_in_one_line(tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["report", "--artifacts", str(tmp_path), "--out", str(tmp_path / "r"), "--dpi", "5"])
    assert res.exit_code == 1
    assert "--dpi" in res.output and "Traceback" not in res.output
    res = CliRunner().invoke(app, ["report", "--artifacts", str(tmp_path / "nope"), "--out", str(tmp_path / "r")])
    assert res.exit_code == 1 and "does not exist" in res.output


def test_where_runs_as_a_module_without_warnings(tmp_path: Path) -> None:
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-W", "error", "-m", "vlmscope.report.where", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0 and proc.stderr == ""
    assert proc.stdout.startswith("No report yet")


def test_attention_examples_prefer_distinct_test_images() -> None:
    import xarray as xr

    from vlmscope.report.parts.attention import _select_samples

    ds = xr.Dataset(
        coords={
            "sample": ["a", "b", "c", "d", "e"],
            "split": ("sample", ["train", "test", "test", "test", "test"]),
            "image": ("sample", ["i0", "i1", "i1", "i2", "i2"]),
        }
    )
    assert _select_samples(ds, 2) == [1, 3]
    assert _select_samples(ds, 3) == [1, 2, 3]
    assert _select_samples(ds.drop_vars("image"), 2) == [1, 2]


def test_context_attempt_shows_an_unusable_input_in_place_and_goes_on(tmp_path: Path) -> None:
    from vlmscope.report.config import ReportConfig
    from vlmscope.report.context import Context
    from vlmscope.report.readers import read_metrics

    ctx = Context(ReportConfig(), tmp_path)
    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    good.write_text('{"accuracy": 0.5}')
    bad.write_text("{not json")
    html: list[str] = []
    assert ctx.attempt(html, read_metrics, good) == {"accuracy": 0.5}
    assert html == [] and ctx.problems == []
    assert ctx.attempt(html, read_metrics, bad) is None
    assert len(ctx.problems) == 1 and "bad.json" in ctx.problems[0]
    assert len(html) == 1 and html[0].startswith('<p class="not-run">Could not show this part: ') and "bad.json" in html[0]
