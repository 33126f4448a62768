"""run_probes end to end on planted-signal stores: where the signal is, controls, CIs, outputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import xarray as xr
from safetensors.numpy import load_file

from vlmscope.errors import ConfigError, StoreError
from vlmscope.probing import ProbeConfig, run_probes

SIGNAL_FROM = 3
"""As planted by the ``planted`` fixture (its ``signal_from`` attribute, checked below)."""


def test_fixture_plants_where_these_tests_look(planted: xr.Dataset) -> None:
    assert planted.attrs["signal_from"] == SIGNAL_FROM


@pytest.fixture(scope="module")
def result(planted_store: Path, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("probe") / "out"
    return run_probes(planted_store, ProbeConfig(label="relation", controls=2, bootstrap=500), out)


def test_signal_found_from_its_layer_and_not_before(result) -> None:
    t = result.table
    acc = dict(zip(t["layer"].to_list(), t["accuracy"].to_list()))
    for layer in range(SIGNAL_FROM):
        assert acc[layer] < 0.45, (layer, acc[layer])  # chance is 0.25 with 4 balanced classes
    for layer in range(SIGNAL_FROM, 6):
        assert acc[layer] > 0.8, (layer, acc[layer])
    assert result.metrics["best_layer"] >= SIGNAL_FROM


def test_control_task_is_near_chance_and_selectivity_high(result) -> None:
    t = result.table
    ctrl = t["control_accuracy"].to_numpy()
    assert np.all(np.abs(ctrl - 0.25) < 0.15), ctrl
    sel = t.filter(pl.col("layer") >= SIGNAL_FROM)["selectivity"].to_numpy()
    assert np.all(sel > 0.5), sel
    np.testing.assert_allclose(t["selectivity"], t["accuracy"] - t["control_accuracy"])


def test_bootstrap_interval_contains_accuracy(result) -> None:
    t = result.table
    assert (t["ci_low"] <= t["accuracy"]).all() and (t["accuracy"] <= t["ci_high"]).all()
    imperfect = t.filter(pl.col("accuracy") < 1.0)
    assert imperfect.height >= 3
    assert (imperfect["ci_high"] - imperfect["ci_low"] > 0.05).all()  # 48 test rows: a real interval


def test_outputs_are_written(result) -> None:
    out = result.out
    table = pl.read_csv(out / "per_layer.csv")
    for col in ("layer", "accuracy", "balanced_accuracy", "accuracy_std", "ci_low", "ci_high",
                "control_accuracy", "selectivity", "n_train", "n_test"):
        assert col in table.columns
    assert table["n_train"].to_list() == [192] * 6 and table["n_test"].to_list() == [48] * 6
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["best_layer"] == result.metrics["best_layer"]
    assert all(isinstance(v, (int, float)) or v is None for v in metrics.values())
    assert (out / "per_layer.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    tensors = load_file(str(out / "probes" / "probes.safetensors"))
    assert tensors["coef"].shape == (6, 1, 4, 40) and tensors["intercept"].shape == (6, 1, 4)
    meta = json.loads((out / "probes" / "config.json").read_text())
    assert meta["classes"] == ["class_0", "class_1", "class_2", "class_3"]
    assert meta["config"]["label"] == "relation"


def test_saved_probe_reproduces_reported_accuracy(result, planted: xr.Dataset) -> None:
    """The stored weights applied to raw features give predictions at the reported accuracy."""
    tensors = load_file(str(result.out / "probes" / "probes.safetensors"))
    meta = json.loads((result.out / "probes" / "config.json").read_text())
    layer = result.metrics["best_layer"]
    X = planted["hidden"].sel(layer=layer).values.astype(np.float32)
    truth = np.array([meta["classes"].index(v) for v in planted["relation"].values])
    pred = (X @ tensors["coef"][layer, 0].T + tensors["intercept"][layer, 0]).argmax(1)
    # all rows (train + test) of a well-separated layer
    assert (pred == truth).mean() > 0.85


def test_kfold_reports_mean_and_std(planted: xr.Dataset, tmp_path: Path) -> None:
    res = run_probes(planted, ProbeConfig(label="relation", method="svm", folds=3, controls=0, bootstrap=200), tmp_path / "o")
    t = res.table
    assert t["n_folds"].to_list() == [3] * 6 and t["n_test"].to_list() == [240] * 6
    assert (t["accuracy_std"] > 0).all()
    assert t["control_accuracy"].is_nan().all()
    assert (t.filter(pl.col("layer") >= SIGNAL_FROM)["accuracy"] > 0.8).all()


@pytest.fixture(scope="module")
def easy() -> xr.Dataset:
    """Small and well-conditioned (no outlier features), so sklearn's lbfgs converges fast."""
    from vlmscope.probing import planted_dataset

    return planted_dataset(n_samples=200, n_layers=4, dim=24, outliers=0, signal_from=2, snr=1.0, seed=2)


def test_original_mode_equals_the_sklearn_loop(easy: xr.Dataset, tmp_path: Path) -> None:
    """--original: sklearn LogisticRegression lbfgs C=1 max_iter 1000, no scaling, 80/20 seed 42."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.multiclass import OneVsRestClassifier

    cfg = ProbeConfig(label="relation", original=True, controls=0, bootstrap=0, layers=(1, 3))
    assert cfg.resolved_solver == "sklearn" and not cfg.standardize and cfg.seed == 42
    res = run_probes(easy, cfg, tmp_path / "o")
    y = easy["relation"].values
    for layer, acc in zip(res.table["layer"], res.table["accuracy"]):
        X = easy["hidden"].sel(layer=layer).values
        Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.2, random_state=42)
        ref = OneVsRestClassifier(LogisticRegression(C=1.0, solver="lbfgs", max_iter=1000)).fit(Xtr, ytr)
        assert acc == pytest.approx(float((ref.predict(Xte) == yte).mean()))


def test_torch_solver_matches_original_within_a_point(easy: xr.Dataset, tmp_path: Path) -> None:
    sk = run_probes(easy, ProbeConfig(label="relation", original=True, controls=0, bootstrap=0), tmp_path / "a")
    th = run_probes(
        easy, ProbeConfig(label="relation", original=True, solver="torch", controls=0, bootstrap=0), tmp_path / "b"
    )
    assert np.abs(sk.table["accuracy"].to_numpy() - th.table["accuracy"].to_numpy()).max() <= 0.01 + 1e-9


def test_attention_maps_flatten_and_skip_the_nan_layer(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    n, layers, patches = 120, 3, 9
    y = np.arange(n) % 2
    att = rng.random((n, layers, 2, patches)).astype(np.float32)
    att[:, 0] = np.nan  # layer 0 (embeddings) has no attention block
    att[:, 2, 0, 4] += 1.5 * y  # the centre patch's mean attention carries the label at layer 2
    ds = xr.Dataset(
        {"attention": (("sample", "layer", "stat", "patch"), att)},
        coords={"sample": [f"s{i}" for i in range(n)], "layer": np.arange(layers),
                "stat": ["mean", "max"], "side": ("sample", np.where(y == 1, "left", "right").astype(object))},
        attrs={"complete": True},
    )
    res = run_probes(ds, ProbeConfig(label="side", variable="attention", controls=1, bootstrap=100), tmp_path / "o")
    assert res.table["layer"].to_list() == [1, 2]
    acc = dict(zip(res.table["layer"], res.table["accuracy"]))
    assert acc[2] > 0.9 and acc[1] < 0.75
    assert load_file(str(tmp_path / "o" / "probes" / "probes.safetensors"))["coef"].shape == (2, 1, 1, 18)


def test_unlabelled_rows_are_left_out(planted: xr.Dataset, tmp_path: Path) -> None:
    rel = planted["relation"].values.copy()
    rel[:40] = ""
    ds = planted.assign_coords(relation=("sample", rel))
    res = run_probes(ds, ProbeConfig(label="relation", controls=0, bootstrap=0, layers=(5,)), tmp_path / "o")
    assert res.metrics["n_samples"] == 200 and res.metrics["n_unlabelled"] == 40


# -- errors ------------------------------------------------------------------------------


def test_missing_label_lists_available_columns(planted: xr.Dataset, tmp_path: Path) -> None:
    with pytest.raises(StoreError, match=r"label column 'colour' is not a coordinate .*available: image, relation, split"):
        run_probes(planted, ProbeConfig(label="colour"), tmp_path / "o")
    assert not (tmp_path / "o").exists()


def test_single_class_label_is_refused(planted: xr.Dataset, tmp_path: Path) -> None:
    ds = planted.assign_coords(relation=("sample", np.full(planted.sizes["sample"], "left of", dtype=object)))
    with pytest.raises(ConfigError, match=r"label column 'relation' has a single class \('left of'\)"):
        run_probes(ds, ProbeConfig(label="relation"), tmp_path / "o")


def test_incomplete_store_is_refused(planted: xr.Dataset, planted_store: Path, tmp_path: Path) -> None:
    ds = planted.copy()
    ds.attrs["complete"] = False
    with pytest.raises(StoreError, match="incomplete"):
        run_probes(ds, ProbeConfig(label="relation"), tmp_path / "o")
    import shutil

    broken = tmp_path / "store"
    shutil.copytree(planted_store, broken)
    meta = json.loads((broken / "zarr.json").read_text())
    meta["attributes"]["complete"] = False
    (broken / "zarr.json").write_text(json.dumps(meta))
    with pytest.raises(StoreError, match="incomplete"):
        run_probes(broken, ProbeConfig(label="relation"), tmp_path / "o")


def test_missing_variable_and_nan_features(planted: xr.Dataset, tmp_path: Path) -> None:
    with pytest.raises(StoreError, match=r"no variable 'mlp' in the store \(has: hidden\)"):
        run_probes(planted, ProbeConfig(label="relation", variable="mlp"), tmp_path / "o")
    h = planted["hidden"].values.copy()
    h[7, 2, 0] = np.nan
    ds = planted.assign(hidden=(("sample", "layer", "dim"), h))
    with pytest.raises(StoreError, match=r"layer 2 has NaN/inf values in 1 sample\(s\) \(first: 's00007'\)"):
        run_probes(ds, ProbeConfig(label="relation"), tmp_path / "o")


def test_unknown_layer_is_refused(planted: xr.Dataset, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"layer\(s\) \[9\] are not in the store; stored layers: \[0, 1, 2, 3, 4, 5\]"):
        run_probes(planted, ProbeConfig(label="relation", layers=(1, 9)), tmp_path / "o")


def test_compute_is_a_labelled_result_and_write_puts_it_on_disk(planted_store: Path, result, tmp_path: Path) -> None:
    """compute_probes writes nothing; its result, written, is byte for byte the ``run_probes`` output."""
    from vlmscope.probing.run import compute_probes, write_probe_run

    run = compute_probes(planted_store, ProbeConfig(label="relation", controls=2, bootstrap=500))
    assert list(tmp_path.iterdir()) == []
    assert run.table.equals(result.table) and run.metrics == result.metrics
    assert run.probes["coef"].dims == ("layer", "fit", "problem", "feature")
    assert run.probes["layer"].values.tolist() == [0, 1, 2, 3, 4, 5]
    assert len(run.probes.attrs["classes"]) == 4
    assert run.probes.attrs["label"] == "relation" and run.chance == run.metrics["chance_accuracy"]
    out = write_probe_run(run, tmp_path / "again")
    for name in ("per_layer.csv", "metrics.json", "per_layer.png", "probes/probes.safetensors", "probes/config.json"):
        assert (out / name).read_bytes() == (result.out / name).read_bytes(), name
