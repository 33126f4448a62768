"""A training process killed with SIGKILL resumes from its last checkpoint and ends where an
uninterrupted run ends."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import torch

from vlmscope.models.weights import read_tensors, tensor_names
from vlmscope.training.config import LoopConfig
from vlmscope.training.engine.checkpoint import list_checkpoints
from vlmscope.training.trainers.projector import ProjectorTrainConfig, train_projector

CFG = ProjectorTrainConfig(loop=LoopConfig(max_steps=8, batch_size=4, lr=5e-3, checkpoint_every=2,
                                           keep_checkpoints=2, seed=7, threads=1))  # fmt: skip

CHILD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from vlmscope.training.trainers.projector import ProjectorTrainConfig, train_projector

    model, dataset, out, marker, cfg = sys.argv[1:6]
    cfg = ProjectorTrainConfig.model_validate_json(cfg)

    def hang_after_5(info):
        if info.step == 5:  # checkpoints 2 and 4 are on disk; step 5's work is lost on kill
            Path(marker).write_text("5")
            time.sleep(600)

    train_projector(model, [dataset], out, cfg, callbacks=[hang_after_5])
    """
)


def test_sigkill_then_resume_matches_uninterrupted(composite: Path, color_ds: Path, tmp_path: Path) -> None:
    out, marker = tmp_path / "killed", tmp_path / "marker"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    log = tmp_path / "child.log"
    with open(log, "wb") as fh:
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(composite), str(color_ds), str(out), str(marker), CFG.model_dump_json()],
            env=env, stdout=fh, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 300
        while not marker.exists():
            if child.poll() is not None:
                raise AssertionError(f"child exited early:\n{log.read_text()[-3000:]}")
            assert time.monotonic() < deadline, "child never reached step 5"
            time.sleep(0.2)
        child.send_signal(signal.SIGKILL)
        assert child.wait(timeout=30) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
    run_dir = tmp_path / ".killed.run"
    assert [c.step for c in list_checkpoints(run_dir / "checkpoints")] == [2, 4]
    assert not out.exists()  # no artifact that looks complete

    resumed = train_projector(composite, [color_ds], out, CFG)
    state = json.loads((out / "train_state.json").read_text())
    assert state["resumed_from"] == 4 and state["steps"] == 8 and resumed["steps"] == 8
    assert [s for s, _ in state["losses"]][0] == 5  # this process ran steps 5..8 only
    assert not run_dir.exists()

    straight = train_projector(composite, [color_ds], tmp_path / "straight", CFG)
    assert json.loads((tmp_path / "straight" / "train_state.json").read_text())["resumed_from"] is None
    names = tensor_names(out)
    a, b = read_tensors(out, names), read_tensors(tmp_path / "straight", names)
    for n in names:
        torch.testing.assert_close(a[n], b[n], rtol=0, atol=0, msg=n)
    assert straight["train_loss_after"] == resumed["train_loss_after"]
