"""The estimators follow sklearn's contract; the `vlmscope probe` command is a thin shell over run_probes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from pydantic import ValidationError
from sklearn.base import clone
from typer.testing import CliRunner

from vlmscope.cli.app import app
from vlmscope.errors import ConfigError
from vlmscope.probing import LinearSVMProbe, LogisticProbe, ProbeConfig


def test_hyperparameters_are_stored_not_validated_in_init() -> None:
    probe = LogisticProbe(C=-1.0)  # accepted here ...
    assert probe.get_params() == {"C": -1.0, "standardize": True, "max_iter": 1000, "tol": None, "solver": "torch"}
    with pytest.raises(ConfigError, match=r"C must be a float > 0, got -1.0"):  # ... refused at fit
        probe.fit(np.zeros((4, 2)), [0, 1, 0, 1])
    with pytest.raises(TypeError):
        LogisticProbe(1.0)  # type: ignore[misc]  (keyword-only)
    assert clone(LinearSVMProbe(C=0.5)).get_params()["C"] == 0.5


def test_fit_returns_self_and_sets_underscored_attributes(planted: xr.Dataset) -> None:
    X = planted["hidden"].values.transpose(1, 0, 2)  # (L, N, D)
    y = planted["relation"].values
    probe = LogisticProbe()
    assert not hasattr(probe, "coef_")
    assert probe.fit(X[5], y) is probe
    assert probe.coef_.shape == (4, 40) and probe.intercept_.shape == (4,)
    assert list(probe.classes_) == ["class_0", "class_1", "class_2", "class_3"]
    assert probe.predict(X[5]).shape == (240,) and probe.score(X[5], y) > 0.8
    batched = LinearSVMProbe().fit(X, y)
    assert batched.coef_.shape == (6, 4, 40)
    scores = batched.score(X, y)
    assert scores.shape == (6,) and scores[:3].max() < 0.6 and scores[3:].min() > 0.8


def test_fit_errors_name_the_problem() -> None:
    with pytest.raises(ConfigError, match=r"y has a single class \('a'\)"):
        LogisticProbe().fit(np.random.default_rng(0).random((6, 3)), ["a"] * 6)
    with pytest.raises(ConfigError, match="X contains NaN"):
        LogisticProbe().fit(np.full((4, 2), np.nan), [0, 1, 0, 1])
    with pytest.raises(ConfigError, match=r"y must be 1-D with one label per sample \(4\)"):
        LogisticProbe().fit(np.zeros((4, 2)), [0, 1])


def test_config_validation() -> None:
    with pytest.raises(ValidationError, match="original=True fixes"):
        ProbeConfig(label="x", original=True, C=2.0)
    with pytest.raises(ValidationError, match="choose one of folds, split_file or split_column"):
        ProbeConfig(label="x", folds=3, split_column="split")
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        ProbeConfig(label="x", penalty="l1")
    cfg = ProbeConfig(label="x", original=True)
    assert (cfg.method, cfg.C, cfg.standardize, cfg.test_size, cfg.seed, cfg.resolved_solver) == (
        "logreg", 1.0, False, 0.2, 42, "sklearn"
    )


def test_cli_probe_writes_outputs(planted_store: Path, tmp_path: Path) -> None:
    out = tmp_path / "probe"
    res = CliRunner().invoke(
        app, ["probe", str(planted_store), "--label", "relation", "--out", str(out), "--folds", "3",
              "--method", "svm", "--controls", "1", "--bootstrap", "100", "--layers", "2,3"],
    )
    assert res.exit_code == 0, res.output
    assert "best layer 3" in res.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["best_layer"] == 3 and metrics["n_layers"] == 2
    assert json.loads((out / "probes" / "config.json").read_text())["config"]["folds"] == 3


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--label", "colour"], "error: label column 'colour' is not a coordinate on 'sample' of the store; available: image, relation, split"),
        (["--label", "relation", "--C", "0"], "error: invalid parameter --C: Input should be greater than 0 (got 0.0)"),
        (["--label", "relation", "--layers", "1,x"], "error: --layers must be comma-separated integers, got '1,x'"),
    ],
)
def test_cli_errors_are_one_line_exit_1(planted_store: Path, tmp_path: Path, args: list[str], message: str) -> None:
    res = CliRunner().invoke(app, ["probe", str(planted_store), "--out", str(tmp_path / "o"), *args])
    assert res.exit_code == 1
    assert res.output.strip() == message


def test_cli_missing_store(tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["probe", str(tmp_path / "nope"), "--label", "relation", "--out", str(tmp_path / "o")])
    assert res.exit_code == 1 and "no activation store here" in res.output
