"""`vlmscope verify` through typer's CliRunner: exit 0 with one OK line, exit 1 with one line per problem."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import xarray as xr
from typer.testing import CliRunner

from vlmscope.activations.store import write_activations
from vlmscope.cli.app import app

runner = CliRunner()


def _store(tmp_path: Path) -> Path:
    ds = xr.Dataset(
        {"hidden": (("sample", "layer", "dim"), np.ones((4, 2, 3), dtype=np.float32))},
        coords={"sample": np.array(["a", "b", "c", "d"], dtype=object), "layer": [0, 1]},
    )
    return write_activations(tmp_path / "s.zarr", ds, shard_samples=2)


def test_verify_ok(tmp_path: Path) -> None:
    store = _store(tmp_path)
    res = runner.invoke(app, ["verify", str(store)])
    assert res.exit_code == 0, res.output
    assert res.stdout.strip() == f"OK: store {store}: 4 samples, variables hidden, 4 recorded files checked"


def test_verify_reports_each_problem_and_exits_1(tmp_path: Path) -> None:
    store = _store(tmp_path)
    os.truncate(store / "hidden/c/1/0/0", 0)
    res = runner.invoke(app, ["verify", str(store)])
    assert res.exit_code == 1
    lines = res.stdout.strip().splitlines()
    assert lines[0] == f"{store}: shard 1 of 'hidden' (hidden/c/1/0/0) is empty: 0 bytes, recorded " + lines[0].split()[-1]
    assert "problem(s) in store" in res.stderr
    assert "Traceback" not in res.output


def test_verify_unknown_path_is_one_line(tmp_path: Path) -> None:
    res = runner.invoke(app, ["verify", str(tmp_path / "nope")])
    assert res.exit_code == 1
    assert res.stderr.strip() == f"error: {tmp_path / 'nope'}: no such file or directory"
