"""Kill -9 and resume, refusal of foreign stores, the writer lock, 2 ranks vs 1, the CLI."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from vlmscope import open_activations
from vlmscope.activations.extract import ExtractConfig, extract
from vlmscope.activations.lock import StoreLock
from vlmscope.activations.progress import load_progress
from vlmscope.activations.store import LOCK_NAME, PROGRESS_DIR, store_files
from vlmscope.errors import OutputRefused, StoreError, StoreLocked, StoreMismatch

# 12 samples, shards of 3 (4 shards), batches of 2: shards hold a full and a short batch
CONFIG = ExtractConfig(
    batch_size=2, shard_samples=3, dtype="float32", positions=("last", "image_mean"), mlp=True, device="cpu"
)
CLI_ARGS = [
    "--batch-size", "2", "--shard-samples", "3", "--dtype", "float32",
    "--positions", "last,image_mean", "--mlp", "--device", "cpu",
]  # fmt: skip


@pytest.fixture(scope="module")
def reference(tiny_model, spatial12, tmp_path_factory):
    """An uninterrupted single-process run of CONFIG, loading the model from its path as the CLI does."""
    path, _ = tiny_model
    return extract(CONFIG, path, spatial12, tmp_path_factory.mktemp("ref") / "ref.zarr")


def _assert_same(a: Path, b: Path) -> None:
    da, db = open_activations(a), open_activations(b)
    assert set(da.data_vars) == set(db.data_vars)
    for name in da.data_vars:
        np.testing.assert_array_equal(da[name].values, db[name].values, err_msg=name)
    assert list(da.sample.values) == list(db.sample.values)


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(extra)
    return env


def test_sigkill_mid_run_then_resume_gives_the_uninterrupted_arrays(tmp_path, tiny_model, spatial12, reference):
    path, _ = tiny_model
    out = tmp_path / "s.zarr"
    cmd = [sys.executable, "-m", "vlmscope", "extract", "--model", str(path), "--dataset", str(spatial12),
           "--out", str(out), *CLI_ARGS]  # fmt: skip
    # the writer hangs after writing shard 1's data, before recording it
    proc = subprocess.Popen(
        cmd, env=_env(VLMSCOPE_TEST_HANG_BEFORE_RECORD="1"), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 240
        while not ((out / "hidden" / "c" / "1" / "0" / "0").exists() and 0 in load_progress(out)):
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            assert time.monotonic() < deadline, "extraction did not reach shard 1 in time"
            time.sleep(0.1)
        time.sleep(0.3)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stderr:
            proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    records = load_progress(out)
    assert sorted(records) == [0] and records[0].complete  # shard 1 is on disk but unrecorded: redone
    with pytest.raises(StoreError, match="incomplete"):
        open_activations(out)
    partial = open_activations(out, allow_incomplete=True)
    np.testing.assert_array_equal(partial.hidden.values[:3], open_activations(reference).hidden.values[:3])

    extract(CONFIG, path, spatial12, out)  # resume in this process
    _assert_same(out, reference)
    assert open_activations(out).attrs["complete"] is True
    # a finished store holds only Zarr files
    assert not (out / LOCK_NAME).exists() and not (out / PROGRESS_DIR).exists()
    assert not [p for p in store_files(out) if p.suffix == ".partial"]


def test_two_ranks_write_the_same_store_as_one(tmp_path, tiny_model, spatial12, reference):
    path, _ = tiny_model
    out = tmp_path / "s.zarr"
    torchrun = Path(sys.executable).with_name("torchrun")
    cmd = [str(torchrun), "--standalone", "--nproc_per_node", "2", "-m", "vlmscope", "extract",
           "--model", str(path), "--dataset", str(spatial12), "--out", str(out), *CLI_ARGS]  # fmt: skip
    res = subprocess.run(cmd, env=_env(OMP_NUM_THREADS="1"), capture_output=True, text=True, timeout=400)
    assert res.returncode == 0, res.stderr[-3000:]
    ds = open_activations(out)
    ref = open_activations(reference)
    for name in ref.data_vars:
        np.testing.assert_allclose(ds[name].values, ref[name].values, rtol=1e-5, atol=1e-6, err_msg=name)
    assert ds.attrs["n_samples"] == 12 and ds.attrs["complete"] is True


def test_finished_store_is_kept_and_foreign_runs_are_refused(tmp_path, tiny_model, spatial12, tiny_dataset, reference):
    import shutil

    path, adapter = tiny_model
    out = tmp_path / "s.zarr"
    shutil.copytree(reference, out)
    before = {p: p.stat().st_mtime_ns for p in store_files(out)}
    assert extract(CONFIG, path, spatial12, out, adapter=adapter) == out  # same extraction: nothing to do
    assert {p: p.stat().st_mtime_ns for p in store_files(out)} == before

    other_dtype = CONFIG.model_copy(update={"dtype": "bfloat16"})
    with pytest.raises(StoreMismatch, match=r"dtype: store has 'float32', this run 'bfloat16'"):
        extract(other_dtype, path, spatial12, out, adapter=adapter)
    with pytest.raises(StoreMismatch, match=r"dataset_fingerprint.*n_samples: store has 12, this run 8"):
        extract(CONFIG, path, tiny_dataset("spatial", 8), out, adapter=adapter)
    L = adapter.num_layers
    with pytest.raises(
        StoreMismatch, match=rf"layers: store has \[{', '.join(map(str, range(L + 1)))}\], this run \[0, 2\]"
    ):
        extract(CONFIG.model_copy(update={"layers": (0, 2)}), path, spatial12, out, adapter=adapter)
    assert {p: p.stat().st_mtime_ns for p in store_files(out)} == before  # refused stores are untouched

    extract(other_dtype, path, spatial12, out, adapter=adapter, overwrite=True)
    assert open_activations(out).attrs["dtype"] == "bfloat16"


def test_foreign_directory_is_not_wiped(tmp_path, tiny_model, spatial12):
    path, adapter = tiny_model
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("precious")
    with pytest.raises(OutputRefused, match="is not a vlmscope artifact"):
        extract(CONFIG, path, spatial12, out, adapter=adapter)
    assert (out / "notes.txt").read_text() == "precious"
    with pytest.raises(OutputRefused, match="does not change this"):
        extract(CONFIG, path, spatial12, out, adapter=adapter, overwrite=True)
    assert (out / "notes.txt").read_text() == "precious"


def test_second_writer_is_refused_while_the_lock_is_held(tmp_path, tiny_model, spatial12):
    path, adapter = tiny_model
    out = tmp_path / "s.zarr"
    with StoreLock(out / LOCK_NAME):
        with pytest.raises(StoreLocked, match=rf"{out}: another process \(pid {os.getpid()}\) is writing"):
            extract(CONFIG, path, spatial12, out, adapter=adapter)


def test_cli_extract_and_one_line_errors(tmp_path, tiny_model, spatial12, reference):
    from vlmscope.cli.app import app

    path, _ = tiny_model
    out = tmp_path / "cli.zarr"
    runner = CliRunner()
    args = ["extract", "--model", str(path), "--dataset", str(spatial12), "--out", str(out), *CLI_ARGS]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert res.stdout.strip().endswith(str(out))
    _assert_same(out, reference)

    res = runner.invoke(app, [*args, "--dtype", "float16"])  # the last --dtype wins
    assert res.exit_code == 1
    last_line = res.stderr.strip().splitlines()[-1]  # (transformers prints its loading bar before)
    assert last_line.startswith(f"error: {out}: this store was made for another extraction")
    res = runner.invoke(app, [*args, "--batch-size", "0"])
    assert res.exit_code == 1 and "--batch-size" in res.stderr
