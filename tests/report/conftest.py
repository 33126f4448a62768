"""A small but complete fake artifacts tree, in the real file formats, for the report tests.

Datasets go through ``write_dataset``; evaluation files through the real
``vlmscope.evaluation.metrics`` functions (``group_table``, ``paired_stats``,
``flatten_metrics``); the activation store through ``write_activations``.
Probe, lens and training outputs follow the formats their writers document.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from PIL import Image, ImageDraw

from vlmscope.data.manifest import write_dataset

N_LAYERS = 5  # hidden layers 0..4 (0 = embeddings); attention layers 0..3
GRID = (3, 4)  # patch rows x cols recorded by the fake store


def _image(i: int, size: tuple[int, int] = (64, 48)) -> Image.Image:
    img = Image.new("RGB", size, "white")
    d = ImageDraw.Draw(img)
    x = 6 + (i * 11) % 40
    d.ellipse((x, 10, x + 14, 24), fill=("red", "blue", "green")[i % 3])
    d.rectangle((40 - x // 2, 28, 52 - x // 2, 40), fill="orange")
    return img


def _dataset(root: Path, name: str, generator: str, rows: list[dict]) -> Path:
    out = root / "datasets" / name

    def build(tmp: Path) -> pl.DataFrame:
        for i, r in enumerate(rows):
            _image(i).save(tmp / r["image"])
        return pl.DataFrame(rows)

    write_dataset(out, generator=generator, params={"n": len(rows)}, seed=0, build=build)
    return out


def _rows(prefix: str, n: int, label: str, values: list[str], *, choices: bool = True) -> list[dict]:
    rows = []
    for i in range(n):
        v = values[i % len(values)]
        row = {
            "sample_id": f"{prefix}-{i:03d}",
            "image": f"images/{prefix}-{i:03d}.png",
            "prompt": f"What is the {label}?",
            "answer": v,
            "split": "test" if i % 4 == 0 else "train",
            label: v,
        }
        if choices:
            row["choices"] = list(values)
            row["answer_index"] = values.index(v)
            row["answer_type"] = "choice"
        rows.append(row)
    return rows


def _write_eval(root: Path, model: str, dataset: Path, groups: list[str], *, split: str, paired: bool) -> pl.DataFrame:
    """An evaluation directory as ``vlmscope.evaluation.runner`` writes it, scores from a fixed pattern."""
    from vlmscope.evaluation.metrics import accuracy, flatten_metrics, group_table, paired_stats

    manifest = pl.read_parquet(dataset / "manifest.parquet")
    rows = manifest if split == "all" else manifest.filter(pl.col("split") == split)
    preds = rows.with_columns(correct=(pl.int_range(pl.len()) % 3 != 0))
    out = root / "evals" / model / dataset.name
    out.mkdir(parents=True)
    table = group_table(preds, groups)
    by_group = {}
    p = None
    if paired:
        p = paired_stats(preds, key=["source_id", "query_type"])
        for qt in sorted(preds["query_type"].unique().to_list()):
            s = paired_stats(preds.filter(pl.col("query_type") == qt), key=["source_id", "query_type"])
            if s is not None:
                by_group[("query_type", qt)] = s
    metrics = flatten_metrics(
        overall={
            "accuracy": accuracy(preds),
            "n": preds.height,
            "macro_accuracy": accuracy(preds),
            "n_correct": int(preds["correct"].sum()),
        },
        groups=table,
        paired=p,
        paired_by_group=by_group,
    )
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True))
    table.write_csv(out / "per_group.csv")
    with (out / "predictions.jsonl").open("w") as fh:
        for r in preds.iter_rows(named=True):
            fh.write(json.dumps({"sample_id": r["sample_id"], "answer": r["answer"], "correct": r["correct"]}) + "\n")
    (out / "config.json").write_text(json.dumps({"config": {"split": split}, "groups": groups}))
    return preds


def _write_probe(
    root: Path, model: str, dataset: str, label: str, peak: int, rng: np.random.Generator, *, per_label: bool = True
) -> None:
    """``probes/<model>/<dataset>/<label>/`` or (``per_label=False``) ``probes/<model>/<dataset>/``."""
    out = root / "probes" / model / dataset / (label if per_label else "")
    out.mkdir(parents=True)
    layers = np.arange(N_LAYERS)
    acc = np.clip(0.3 + 0.6 * np.exp(-((layers - peak) ** 2) / 2.0) + rng.normal(0, 0.01, N_LAYERS), 0, 1)
    ctrl = np.full(N_LAYERS, 0.26) + rng.normal(0, 0.01, N_LAYERS)
    pl.DataFrame(
        {
            "layer": layers,
            "accuracy": acc,
            "balanced_accuracy": acc - 0.01,
            "accuracy_std": np.full(N_LAYERS, 0.03),
            "ci_low": acc - 0.06,
            "ci_high": np.minimum(acc + 0.06, 1.0),
            "control_accuracy": ctrl,
            "selectivity": acc - ctrl,
            "n_train": np.full(N_LAYERS, 48),
            "n_test": np.full(N_LAYERS, 12),
        }
    ).write_csv(out / "per_layer.csv")
    best = int(np.argmax(acc))
    (out / "metrics.json").write_text(
        json.dumps({"best_layer": best, "best_accuracy": float(acc[best]), "label": label})
    )


def _write_store(root: Path, model: str, dataset_dir: Path) -> None:
    import xarray as xr

    from vlmscope.activations.store import write_activations

    manifest = pl.read_parquet(dataset_dir / "manifest.parquet")
    ids = manifest["sample_id"].to_list()
    n, p = len(ids), GRID[0] * GRID[1]
    rng = np.random.default_rng(0)
    att = rng.random((n, N_LAYERS, 2, p)).astype(np.float32)
    att[:, :, :, 0] += 3.0  # a hot top-left patch, visible in every overlay
    att[:, 0] = np.nan  # layer 0 is the embedding output: no attention there
    ent = rng.random((n, N_LAYERS)).astype(np.float32)
    ent[:, 0] = np.nan
    ds = xr.Dataset(
        {
            "hidden": (("sample", "layer", "dim"), rng.normal(size=(n, N_LAYERS, 8)).astype(np.float32)),
            "attention": (("sample", "layer", "stat", "patch"), att),
            "attention_entropy": (("sample", "layer"), ent),
        },
        coords={
            "sample": np.array(ids, dtype=object),
            "layer": np.arange(N_LAYERS),
            "stat": np.array(["mean", "max"], dtype=object),
            "block": ("layer", np.arange(N_LAYERS) - 1),
            "patch_row": ("patch", np.repeat(np.arange(GRID[0]), GRID[1])),
            "patch_col": ("patch", np.tile(np.arange(GRID[1]), GRID[0])),
            "split": ("sample", np.array(manifest["split"].to_list(), dtype=object)),
        },
        attrs={
            "model": model,
            "family": "composite",
            "dataset": str(dataset_dir),
            "patch_grid": list(GRID),
            "attention": True,
        },
    )
    write_activations(root / "activations" / model / f"{dataset_dir.name}.zarr", ds)


def build_artifacts(root: Path, parts: frozenset[str] = frozenset({"all"})) -> Path:
    """Write a fake artifacts tree under ``root``; ``parts`` picks what exists (``all`` = everything)."""
    want = (lambda p: True) if "all" in parts else (lambda p: p in parts)
    rng = np.random.default_rng(0)
    model = "tiny"
    spatial = _dataset(
        root, "spatial", "spatial", _rows("sp", 24, "relation", ["left of", "right of", "above", "below"])
    )
    qtypes = ["count", "recognition_color", "explicit_arrow_direction"]
    rel_rows = _rows("rel", 24, "query_type", qtypes)
    for i, row in enumerate(rel_rows):  # rows 12..23 ask rows 0..11's questions on masked copies
        row["variant"] = "original" if i < 12 else "masked"
        row["source_id"] = f"img{i % 12 // 3}"
    relations = _dataset(root, "relations", "relations", rel_rows)
    counting = _dataset(
        root, "counting", "counting", _rows("cnt", 18, "count", [str(k) for k in range(1, 7)], choices=False)
    )
    _dataset(root, "vg-unseen", "llava", _rows("vg", 12, "entity_type", ["cat", "dog", "zebra"]))

    if want("evals"):
        _write_eval(root, model, relations, ["query_type", "variant"], split="all", paired=True)
        _write_eval(root, model, counting, ["count"], split="all", paired=False)
        _write_eval(root, model, spatial, ["relation"], split="test", paired=False)
    if want("probes"):
        _write_probe(root, model, "spatial", "relation", 3, rng)
        _write_probe(root, model, "spatial", "color", 2, rng)
        _write_probe(root, model, "counting", "count", 1, rng, per_label=False)
    if want("lens"):
        layers = np.arange(1, N_LAYERS)
        d = root / "lens" / model / "counting" / "logit"
        d.mkdir(parents=True)
        pl.DataFrame(
            {
                "layer": layers,
                "top1_accuracy": [0.0, 0.1, 0.3, 0.6],
                "mean_target_prob": [0.01, 0.05, 0.2, 0.5],
                "mean_target_rank": [900.0, 300.0, 20.0, 2.0],
                "n": [18] * 4,
            }
        ).write_csv(d / "summary.csv")
        d = root / "lens" / model / "vg-unseen" / "ffn"
        d.mkdir(parents=True)
        pl.DataFrame(
            {"layer": layers, "top_match_rate": [0.1, 0.2, 0.5, 0.7], "random_match_rate": [0.05, 0.04, 0.06, 0.05]}
        ).write_csv(d / "summary.csv")
        with (d / "ffn.jsonl").open("w") as fh:
            for i in range(5):
                rec = {
                    "sample_id": f"vg-{i:03d}",
                    "gt": "cat",
                    "prompt": "What is in the box?",
                    "layers": [
                        {
                            "layer": int(layer),
                            "top_tokens": ["cat", "<b>kitten</b>", "fur"],
                            "random_tokens": ["the", "of", "x"],
                        }
                        for layer in layers
                    ],
                }
                fh.write(json.dumps(rec) + "\n")
    if want("store"):
        _write_store(root, model, relations)
    if want("output_layer"):
        d = root / "output_layer" / model / "counting"
        d.mkdir(parents=True)
        metrics = {"n_train": 12, "n_valid": 3, "best_epoch": 4, "epochs": 6, "trained_rows": 6}
        for split, n, before, after in (("train", 12, 0.25, 0.75), ("valid", 3, 0.33, 0.67), ("test", 4, 0.25, 0.5)):
            metrics.update({f"{split}_n": n, f"{split}_accuracy_before": before, f"{split}_accuracy_after": after})
        (d / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True))
        pl.DataFrame(
            {"epoch": np.arange(6), "train_loss": np.linspace(2.0, 0.5, 6), "valid_accuracy": np.linspace(0.3, 0.7, 6)}
        ).write_csv(d / "history.csv")
    if want("models"):
        d = root / "models" / "default"  # the embedded default: a trained checkpoint with dvclive curves
        (d / "dvclive" / "plots" / "metrics" / "train").mkdir(parents=True)
        (d / "config.json").write_text(json.dumps({"model_type": "llava"}))
        (d / "training_args.json").write_text(json.dumps({"trainer": "default"}))
        (d / "metrics.json").write_text(json.dumps({"final_loss": 0.8, "steps": 40}))
        (d / "dvclive" / "plots" / "metrics" / "train" / "loss.tsv").write_text(
            "timestamp\tstep\tloss\n" + "".join(f"{1000 + i}\t{i}\t{3.0 / (i + 1):.4f}\n" for i in range(1, 9))
        )
        d = root / "models" / "clip-grades"
        d.mkdir(parents=True)
        (d / "config.json").write_text(json.dumps({"model_type": "clip"}))
        (d / "metrics.json").write_text(json.dumps({"best/val_mae": 0.41, "test/accuracy": 0.62, "epochs": 3}))
    return root


@pytest.fixture(scope="session")
def fake_artifacts(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """``fake_artifacts(*parts) -> root``: a fake tree with those parts (none given: all), cached."""
    cache: dict[frozenset[str], Path] = {}

    def get(*parts: str) -> Path:
        key = frozenset(parts or ("all",))
        if key not in cache:
            root = tmp_path_factory.mktemp("artifacts-" + "-".join(sorted(key)))
            cache[key] = build_artifacts(root, key)
        return cache[key]

    return get


@pytest.fixture(scope="session")
def full_report(fake_artifacts: Callable[..., Path], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(artifacts root, report directory) of the report over the complete fake tree, built once."""
    from vlmscope.report import ReportConfig, build_report

    root = fake_artifacts()
    out = tmp_path_factory.mktemp("report") / "reports"
    build_report(root, out, ReportConfig())
    return root, out
