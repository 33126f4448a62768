"""Ctrl-C (SIGINT) mid-extract and mid-train, and a second writer on a running store.

The SIGKILL variants (no chance to clean up) live in
``tests/activations/test_extract_resume.py`` and
``tests/training/engine/test_resume_kill.py``. SIGINT is the other way a
user stops a run: the process gets to unwind, so it must exit with status
130 and no traceback, release the store's lock, keep what it finished, and a rerun
must resume to bit-identical results. While the first extraction still runs,
a second one on the same store is refused (a real second process holds the
lock here, not a lock taken in the test's own process).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from vlmscope import open_activations
from vlmscope.activations.extract import ExtractConfig, extract
from vlmscope.activations.lock import StoreLock
from vlmscope.activations.progress import load_progress
from vlmscope.activations.store import LOCK_NAME, PROGRESS_DIR
from vlmscope.errors import StoreError, StoreLocked

EXTRACT = ExtractConfig(batch_size=2, shard_samples=3, dtype="float32", positions=("last",), device="cpu")
EXTRACT_ARGS = ["--batch-size", "2", "--shard-samples", "3", "--dtype", "float32", "--positions", "last",
                "--device", "cpu"]  # fmt: skip

# The child runs the real CLI; each batch handed to the writer after the first shard is recorded waits
# 0.5 s, so the SIGINT lands mid-run however fast the machine is.
EXTRACT_CHILD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from vlmscope.activations.writer import ShardWriter
    from vlmscope.cli import main

    marker = Path(sys.argv[1])
    submit = ShardWriter.submit

    def slow_submit(self, *args, **kwargs):
        if self.shards_completed:
            marker.write_text("1")
            time.sleep(0.5)
        return submit(self, *args, **kwargs)

    ShardWriter.submit = slow_submit
    sys.argv = ["vlmscope", *sys.argv[2:]]
    main()
    """
)


def _wait_for(marker: Path, child: subprocess.Popen[bytes], log: Path, what: str) -> None:
    deadline = time.monotonic() + 300
    while not marker.exists():
        if child.poll() is not None:
            raise AssertionError(f"child exited before {what}:\n{log.read_text()[-3000:]}")
        assert time.monotonic() < deadline, f"child never reached {what}"
        time.sleep(0.1)


def test_sigint_mid_extract_releases_the_lock_and_resumes_bit_identical(
    tmp_path: Path, tiny_checkpoint, tiny_dataset
) -> None:
    model, dataset = tiny_checkpoint("composite"), tiny_dataset("spatial", 12)
    out, marker, log = tmp_path / "s.zarr", tmp_path / "marker", tmp_path / "child.log"
    args = ["extract", "--model", str(model), "--dataset", str(dataset), "--out", str(out), *EXTRACT_ARGS]
    with open(log, "wb") as fh:
        child = subprocess.Popen([sys.executable, "-c", EXTRACT_CHILD, str(marker), *args], stdout=fh, stderr=fh)
    try:
        _wait_for(marker, child, log, "its second shard")
        # a second writer while the first one runs: refused, and the running store is untouched
        with pytest.raises(StoreLocked, match=rf"another process \(pid {child.pid}\) is writing"):
            extract(EXTRACT, model, dataset, out)
        child.send_signal(signal.SIGINT)
        rc = child.wait(timeout=120)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    text = log.read_text()
    assert rc == 130 and "Traceback" not in text, (rc, text[-3000:])  # 128 + SIGINT, as shells expect
    assert "interrupted: no half-written output was kept; rerun the same command" in text, text[-3000:]
    with StoreLock(out / LOCK_NAME):  # released (the unlocked file stays until the store completes)
        pass
    records = load_progress(out)
    assert records and records[0].complete, "the finished shard is kept"
    with pytest.raises(StoreError, match="incomplete"):
        open_activations(out)

    extract(EXTRACT, model, dataset, out)  # the rerun resumes
    reference = extract(EXTRACT, model, dataset, tmp_path / "ref.zarr")
    got, want = open_activations(out), open_activations(reference)
    assert got.attrs["complete"] is True and not (out / PROGRESS_DIR).exists()
    assert list(got.sample.values) == list(want.sample.values)
    for name in want.data_vars:
        np.testing.assert_array_equal(got[name].values, want[name].values, err_msg=name)


TRAIN_CHILD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from vlmscope.training.trainers.projector import ProjectorTrainConfig, train_projector

    model, dataset, out, marker, cfg = sys.argv[1:6]
    cfg = ProjectorTrainConfig.model_validate_json(cfg)

    def wait_at_5(info):
        if info.step == 5:  # checkpoints 2 and 4 are on disk
            Path(marker).write_text("5")
            time.sleep(600)

    train_projector(model, [dataset], out, cfg, callbacks=[wait_at_5])
    """
)


def test_sigint_mid_train_resumes_bit_identical(tmp_path: Path, tiny_checkpoint, tiny_dataset) -> None:
    from vlmscope.models.weights import read_tensors, tensor_names
    from vlmscope.training.config import LoopConfig
    from vlmscope.training.trainers.projector import ProjectorTrainConfig, train_projector

    cfg = ProjectorTrainConfig(loop=LoopConfig(max_steps=8, batch_size=4, lr=5e-3, checkpoint_every=2,
                                               keep_checkpoints=2, seed=7, threads=1))  # fmt: skip
    model, dataset = tiny_checkpoint("composite"), tiny_dataset("color", 16)
    out, marker, log = tmp_path / "run", tmp_path / "marker", tmp_path / "child.log"
    with open(log, "wb") as fh:
        child = subprocess.Popen(
            [sys.executable, "-c", TRAIN_CHILD, str(model), str(dataset), str(out), str(marker),
             cfg.model_dump_json()],
            env={**os.environ, "PYTHONUNBUFFERED": "1"}, stdout=fh, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        _wait_for(marker, child, log, "step 5")
        child.send_signal(signal.SIGINT)
        rc = child.wait(timeout=120)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert rc != 0 and "KeyboardInterrupt" in log.read_text()
    assert not out.exists(), "an interrupted run leaves no artifact that looks complete"

    train_projector(model, [dataset], out, cfg)
    state = json.loads((out / "train_state.json").read_text())
    assert state["resumed_from"] == 4 and state["steps"] == 8
    straight = tmp_path / "straight"
    train_projector(model, [dataset], straight, cfg)
    names = tensor_names(out)
    a, b = read_tensors(out, names), read_tensors(straight, names)
    for n in names:
        torch.testing.assert_close(a[n], b[n], rtol=0, atol=0, msg=n)
