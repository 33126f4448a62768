"""Two CPU processes train the projector under DeepSpeed ZeRO-2 and ZeRO-3 (``accelerate launch``
with the shipped configs, DeepSpeed's CPU accelerator, gloo) and write a full checkpoint.

ZeRO-3 shards every parameter over the ranks, so the checkpoint is only right
if the loop gathers the full weights before the main process saves them: an
empty or partial tensor would fail to load or compare unequal below.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from vlmscope.models import load_model
from vlmscope.models.weights import read_tensors, tensor_names
from vlmscope.training.engine.params import params_fingerprint

pytest.importorskip("deepspeed")

REPO = Path(__file__).resolve().parents[3]
"""The accelerate configs name their DeepSpeed JSON relative to the repository root."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


CLI = ["-m", "vlmscope", "train", "projector", "--max-steps", "3", "--batch-size", "2", "--threads", "1", "--lr", "0.01"]

CHILD = textwrap.dedent(
    """
    import sys
    from vlmscope.training.config import LoopConfig
    from vlmscope.training.trainers.projector import ProjectorTrainConfig, train_projector

    model, dataset, out, run_dir = sys.argv[1:5]
    loop = LoopConfig(max_steps=2, batch_size=2, lr=0.01, eval_every=1, checkpoint_every=1, keep_run_dir=True,
                      threads=1)
    train_projector(model, [dataset], out, ProjectorTrainConfig(loop=loop, valid_split=("test",)), run_dir=run_dir)
    """
)
"""Validation every step (the projector CLI has no --eval-every): keep-best runs while ZeRO-3 still shards."""


def _launch(stage: int, *target: str) -> subprocess.CompletedProcess[str]:
    """``accelerate launch`` of ``target`` on 2 CPU processes with the shipped ZeRO config."""
    cmd = [
        sys.executable, "-m", "accelerate.commands.launch",
        "--config_file", str(REPO / "configs" / "accelerate" / f"deepspeed_zero{stage}.yaml"),
        "--num_processes", "2", "--main_process_ip", "127.0.0.1", "--main_process_port", str(_free_port()), *target,
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "DS_ACCELERATOR": "cpu"}
    return subprocess.run(cmd, check=False, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def _check_checkpoint(out: Path, base: Path, proc: subprocess.CompletedProcess[str], steps: int) -> dict:
    """The artifact loads, every projector tensor moved, every other tensor is the base's, bit for bit."""
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    state = json.loads((out / "train_state.json").read_text())
    assert state["world_size"] == 2 and state["steps"] == steps
    assert state["ranks_identical"], state["rank_fingerprints"]
    assert load_model(out).family == "composite"
    names = tensor_names(base)
    assert tensor_names(out) == names
    before, after = read_tensors(base, names), read_tensors(out, names)
    assert all(after[n].shape == before[n].shape and after[n].dtype == before[n].dtype for n in names)
    changed = {n for n in names if not torch.equal(before[n], after[n])}
    projector = {n for n in names if "projector" in n}
    assert projector and changed == projector
    assert all(torch.isfinite(after[n]).all() for n in projector)
    return state


@pytest.mark.timeout(300)
def test_zero2_two_cpu_processes(composite: Path, color_ds: Path, tmp_path: Path) -> None:
    out = tmp_path / "zero2"
    args = ["--model", str(composite), "--dataset", str(color_ds), "--out", str(out)]
    proc = _launch(2, *CLI, *args, "--grad-accum", "2", "--checkpoint-every", "2")
    _check_checkpoint(out, composite, proc, steps=3)
    assert proc.stdout.count("wrote ") == 1  # only rank 0 writes


@pytest.mark.timeout(300)
def test_zero3_two_cpu_processes_gathers_full_weights(composite: Path, color_ds: Path, tmp_path: Path) -> None:
    out, run_dir, script = tmp_path / "zero3", tmp_path / "run", tmp_path / "child.py"
    script.write_text(CHILD)
    proc = _launch(3, str(script), str(composite), str(color_ds), str(out), str(run_dir))
    state = _check_checkpoint(out, composite, proc, steps=2)
    assert state["best"] is not None and state["best"]["metric"] == "loss"
    # best/ is first written at step 1 while ZeRO-3 still shards the weights (gathered on all ranks);
    # whichever step won, it holds full tensors and the written checkpoint holds exactly those weights
    best = load_file(str(run_dir / "best" / "trainable.safetensors"))
    metrics = json.loads((out / "metrics.json").read_text())
    assert sum(t.numel() for t in best.values()) == metrics["projector_parameters"]
    assert state["rank_fingerprints"][0] == params_fingerprint(best)
    assert (run_dir / "checkpoints").is_dir() and any((run_dir / "checkpoints").iterdir())
