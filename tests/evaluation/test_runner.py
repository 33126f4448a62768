"""The evaluate runner on a tiny real model: batch invariance, option loss, outputs, errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from vlmscope.cli.app import app
from vlmscope.data.manifest import read_manifest, resolve_image, write_dataset
from vlmscope.errors import ConfigError, DatasetError
from vlmscope.evaluation import EvaluateConfig, evaluate
from vlmscope.io.outguard import MARKER


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_generation_is_identical_at_batch_size_one(
    tiny_generative: tuple[Path, Any], relations_dataset: Path, tmp_path: Path
) -> None:
    path, adapter = tiny_generative
    rows = read_manifest(relations_dataset).head(7)
    images = [Image.open(resolve_image(relations_dataset, r)).convert("RGB") for r in rows["image"]]
    enc = adapter.encode(images, rows["prompt"].to_list())
    assert bool((enc.attention_mask == 0).any()), "prompts of different lengths must be left-padded"

    cfg = {"split": "all", "limit": 7, "max_new_tokens": 4}
    evaluate(
        str(path),
        relations_dataset,
        tmp_path / "b1",
        EvaluateConfig(batch_size=1, **cfg),
        adapter=adapter,
        progress=False,
    )
    evaluate(
        str(path),
        relations_dataset,
        tmp_path / "b4",
        EvaluateConfig(batch_size=4, **cfg),
        adapter=adapter,
        progress=False,
    )
    one, four = _jsonl(tmp_path / "b1" / "predictions.jsonl"), _jsonl(tmp_path / "b4" / "predictions.jsonl")
    assert [r["output"] for r in one] == [r["output"] for r in four]
    assert all(isinstance(r["output"], str) for r in one) and any(r["output"] for r in one)
    assert json.loads((tmp_path / "b1" / "metrics.json").read_text()) == json.loads(
        (tmp_path / "b4" / "metrics.json").read_text()
    )


def _independent_losses(adapter: Any, dataset: Path, row: dict[str, Any]) -> list[float]:
    """transformers' own loss of each option alone (batch of one), the reference for option-loss."""
    image = Image.open(resolve_image(dataset, row["image"])).convert("RGB")
    out = []
    for option in row["choices"]:
        enc = adapter.encode([image], [row["prompt"]], answers=[option])
        with torch.inference_mode():
            out.append(float(adapter.model(**enc.inputs, labels=enc.labels).loss))
    return out


def test_option_loss_picks_the_lowest_independent_loss_and_pairs_variants(
    tiny_generative: tuple[Path, Any], relations_dataset: Path, tmp_path: Path
) -> None:
    path, adapter = tiny_generative
    out = tmp_path / "ol"
    cfg = EvaluateConfig(mode="option-loss", split="all", batch_size=7, limit=18)
    metrics = evaluate(str(path), relations_dataset, out, cfg, adapter=adapter, progress=False)
    preds = _jsonl(out / "predictions.jsonl")
    manifest = {r["sample_id"]: r for r in read_manifest(relations_dataset).iter_rows(named=True)}
    assert len(preds) == min(18, len(manifest))
    for p in preds[:3] + preds[-2:]:
        ref = _independent_losses(adapter, relations_dataset, manifest[p["sample_id"]])
        assert p["scores"] == pytest.approx(ref, abs=1e-4)
        assert p["parsed"] == min(range(len(ref)), key=ref.__getitem__)
        assert p["prediction"] == manifest[p["sample_id"]]["choices"][p["parsed"]]
        assert p["correct"] == (p["parsed"] == manifest[p["sample_id"]]["answer_index"]) and p["output"] is None

    # metrics agree with the predictions file
    assert metrics["n"] == len(preds)
    assert metrics["accuracy"] == pytest.approx(sum(p["correct"] for p in preds) / len(preds))
    df = pl.DataFrame(preds)
    for qt, part in df.partition_by("query_type", as_dict=True).items():
        assert metrics[f"accuracy/query_type/{qt[0]}"] == pytest.approx(part["correct"].mean())
    # every question is asked of the original and the masked image, linked by source_id
    sources = (
        pl.DataFrame([manifest[p["sample_id"]] for p in preds]).group_by("source_id").agg(pl.col("variant").n_unique())
    )
    assert metrics["paired/n_pairs"] == sources.filter(pl.col("variant") == 2).height > 0
    orig = df.filter(pl.col("variant") == "original")["correct"].mean()
    assert metrics["paired/accuracy_original"] == pytest.approx(orig)
    assert "paired/query_type/count/accuracy_drop" in metrics
    # summary.json (what `dvc metrics show` lists): the overall numbers only, no per-group columns
    summary = json.loads((out / "summary.json").read_text())
    assert summary["accuracy"] == metrics["accuracy"] and summary["paired/n_pairs"] == metrics["paired/n_pairs"]
    assert not any(k.startswith(("accuracy/", "n/", "macro_accuracy/")) for k in summary)
    assert "paired/query_type/count/accuracy_drop" not in summary
    table = pl.read_csv(out / "per_group.csv")
    assert table.columns == ["group", "value", "n", "n_correct", "accuracy", "macro_accuracy"]
    assert set(table["group"]) >= {"query_type", "variant"}
    prov = json.loads((out / "config.json").read_text())
    assert prov["config"]["mode"] == "option-loss" and prov["dataset_fingerprint"]


@pytest.fixture
def count_dataset(tmp_path: Path) -> Path:
    def build(tmp: Path) -> pl.DataFrame:
        Image.new("RGB", (16, 16), (255, 255, 255)).save(tmp / "images" / "a.png")
        return pl.DataFrame(
            {
                "sample_id": ["c0", "c1"],
                "image": ["images/a.png"] * 2,
                "prompt": ["How many circles are there?", "How many squares are there?"],
                "answer": ["0", "10"],
                "split": ["test", "test"],
                "answer_type": ["count", "count"],
                "count": [0, 10],
            }
        )

    out = tmp_path / "counts"
    write_dataset(out, generator="test", params={}, seed=None, build=build)
    return out


def test_count_rows_report_mae_and_modes_are_checked(
    tiny_generative: tuple[Path, Any], count_dataset: Path, tmp_path: Path
) -> None:
    path, adapter = tiny_generative
    metrics = evaluate(
        str(path), count_dataset, tmp_path / "g", EvaluateConfig(max_new_tokens=3), adapter=adapter, progress=False
    )
    preds = _jsonl(tmp_path / "g" / "predictions.jsonl")
    parsed = [p["parsed"] for p in preds]
    assert all(isinstance(x, int) for x in parsed)
    assert metrics["count/n_parsed"] + metrics["count/n_unparsed"] == 2
    assert metrics["n_unparsed"] == sum(x < 0 for x in parsed)

    with pytest.raises(DatasetError, match=r"option-loss scores options, but 2 row\(s\) have no choices"):
        evaluate(str(path), count_dataset, tmp_path / "x", EvaluateConfig(mode="option-loss"), adapter=adapter)
    with pytest.raises(ConfigError, match="contrastive needs a contrastive image-text model"):
        evaluate(str(path), count_dataset, tmp_path / "x", EvaluateConfig(mode="contrastive"), adapter=adapter)
    with pytest.raises(DatasetError, match=r"no rows in split\(s\) \['train'\]; the manifest has splits \['test'\]; pass --split"):
        evaluate(str(path), count_dataset, tmp_path / "x", EvaluateConfig(split="train"), adapter=adapter)
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize(
    "outputs,parsed,mae,n_unparsed",
    [
        (["There are three circles.", "12"], [3, 12], 2.5, 0),  # |3-0| and |12-10|
        (["I cannot tell", "ten"], [-1, 10], 0.0, 1),  # the unparsed row is left out of the mean
        (["none", "no"], [-1, -1], None, 2),  # nothing parsed: no MAE at all
    ],
)
def test_count_mae_is_the_mean_error_of_the_parsed_answers(
    tiny_generative: tuple[Path, Any],
    count_dataset: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    outputs: list[str],
    parsed: list[int],
    mae: float | None,
    n_unparsed: int,
) -> None:
    """The tiny random model parses to nothing, so its generations are replaced by texts with known counts.

    Encoding still runs on the real model; only ``generate`` returns fixed text, so the runner's parse ->
    ``parsed_count`` -> ``count_stats`` path is checked against errors computed by hand (truths 0 and 10).
    """
    path, adapter = tiny_generative
    monkeypatch.setattr(adapter, "generate", lambda batch, max_new_tokens: list(outputs[: len(batch.last_index)]))
    metrics = evaluate(
        str(path), count_dataset, tmp_path / "g", EvaluateConfig(batch_size=2), adapter=adapter, progress=False
    )
    preds = _jsonl(tmp_path / "g" / "predictions.jsonl")
    assert [p["output"] for p in preds] == outputs and [p["parsed"] for p in preds] == parsed
    assert metrics["count/n_parsed"] == 2 - n_unparsed and metrics["count/n_unparsed"] == n_unparsed
    assert metrics["n_unparsed"] == n_unparsed
    if mae is None:
        assert "count/mae" not in metrics
    else:
        assert metrics["count/mae"] == pytest.approx(mae)
        assert json.loads((tmp_path / "g" / "summary.json").read_text())["count/mae"] == pytest.approx(mae)
    assert metrics["accuracy"] == pytest.approx(sum(p == t for p, t in zip(parsed, (0, 10))) / 2)


def test_cli_evaluate_loads_the_model_and_writes_outputs(
    tiny_generative: tuple[Path, Any], relations_dataset: Path, tmp_path: Path
) -> None:
    path, _ = tiny_generative
    runner = CliRunner()
    out = tmp_path / "cli"
    res = runner.invoke(
        app,
        [
            "evaluate",
            "--model",
            str(path),
            "--dataset",
            str(relations_dataset),
            "--out",
            str(out),
            "--split",
            "all",
            "--limit",
            "3",
            "--max-new-tokens",
            "2",
            "--batch-size",
            "2",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "accuracy" in res.output and "n 3" in res.output
    assert {p.name for p in out.iterdir()} == {"predictions.jsonl", "metrics.json", "summary.json", "per_group.csv", "config.json", MARKER}

    res = runner.invoke(
        app,
        ["evaluate", "--model", str(path), "--dataset", str(relations_dataset), "--out", str(out), "--mode", "beam"],
    )
    assert res.exit_code == 1 and "--mode" in res.output and "'beam'" in res.output
    res = runner.invoke(app, ["evaluate", "--model", str(path), "--dataset", str(tmp_path / "nope"), "--out", str(out)])
    assert res.exit_code == 1 and "no manifest" in res.output


def test_contrastive_mode_scores_templated_options(
    tiny_checkpoint: Any, relations_dataset: Path, tmp_path: Path
) -> None:
    from vlmscope.models import load_model

    path = tiny_checkpoint("clip")
    adapter = load_model(path)
    cfg = EvaluateConfig(mode="contrastive", split="all", limit=6, batch_size=4, contrastive_template="{option} shapes")
    metrics = evaluate(str(path), relations_dataset, tmp_path / "k", cfg, adapter=adapter, progress=False)
    preds = _jsonl(tmp_path / "k" / "predictions.jsonl")
    manifest = {r["sample_id"]: r for r in read_manifest(relations_dataset).iter_rows(named=True)}
    for p in preds:
        row = manifest[p["sample_id"]]
        image = Image.open(resolve_image(relations_dataset, row["image"])).convert("RGB")
        ref = adapter.score([image], [[f"{o} shapes" for o in row["choices"]]])[0].tolist()
        assert p["scores"] == pytest.approx(ref, abs=1e-4)
        assert p["parsed"] == max(range(len(ref)), key=ref.__getitem__)
    assert metrics["accuracy"] == pytest.approx(sum(p["correct"] for p in preds) / len(preds))
    with pytest.raises(ConfigError, match="generate needs a generative model"):
        evaluate(str(path), relations_dataset, tmp_path / "x", EvaluateConfig(split="all"), adapter=adapter)
