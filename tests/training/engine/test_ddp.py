"""Two CPU processes (torchrun, gloo DDP) train the projector and end with identical weights."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

from vlmscope.models import load_model


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_two_process_ddp_keeps_ranks_in_sync(composite: Path, color_ds: Path, tmp_path: Path) -> None:
    out = tmp_path / "ddp"
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
        "--master_port", str(_free_port()), "-m", "vlmscope", "train", "projector", "--model", str(composite),
        "--dataset", str(color_ds), "--out", str(out), "--max-steps", "3", "--batch-size", "2",
        "--checkpoint-every", "2", "--threads", "1", "--lr", "0.01",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    state = json.loads((out / "train_state.json").read_text())
    assert state["world_size"] == 2 and state["steps"] == 3
    fps = state["rank_fingerprints"]
    # each rank trained on other rows; equal weights mean the gradient all-reduce worked
    assert len(fps) == 2 and fps[0] == fps[1] and state["ranks_identical"]
    assert proc.stdout.count("wrote ") == 1  # only rank 0 reports and writes
    assert load_model(out).family == "composite"
