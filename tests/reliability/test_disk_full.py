"""Out of disk (issue 16, point 5): one line naming the path and the space, no temp left, rerun resumes.

A full disk is simulated by making the writer raise ``OSError(ENOSPC)``
part-way (there is no tiny tmpfs here). Each writer must turn it into one
``error: no space left on device writing PATH: X free there, ...`` line,
remove its temporary directory, keep what the user had, and succeed, or
resume, once the space is back.
"""

from __future__ import annotations

import errno
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from vlmscope.cli.app import app
from vlmscope.errors import DiskFull
from vlmscope.io.diskspace import disk_full_as_error, human_bytes, is_disk_full

runner = CliRunner()


def _full(after: int) -> Callable[..., Any]:
    """A stand-in that runs ``real`` ``after`` times, then raises ENOSPC (set ``.real`` before use)."""
    calls = {"n": 0}

    def fake(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] > after:
            raise OSError(errno.ENOSPC, "No space left on device")
        return fake.real(*args, **kwargs)  # type: ignore[attr-defined]

    return fake


def _one_line(output: str, path: Path) -> str:
    assert "Traceback" not in output, output
    lines = [ln for ln in output.splitlines() if ln.strip() and not ln.startswith("Loading weights")]
    assert len(lines) == 1, output
    line = lines[0]
    assert line.startswith(f"error: no space left on device writing {path}: "), line
    assert " free there" in line and "needed" in line, line
    return line


def _no_temp(parent: Path) -> None:
    left = [p.name for p in parent.iterdir() if ".tmp-" in p.name or ".old-" in p.name]
    assert left == [], left


def test_disk_full_is_recognised_through_wrapping() -> None:
    inner = OSError(errno.ENOSPC, "No space left on device")
    try:
        try:
            raise inner
        except OSError as e:
            raise RuntimeError("zarr failed") from e
    except RuntimeError as outer:
        assert is_disk_full(outer)
    assert not is_disk_full(OSError(errno.EACCES, "denied"))
    assert is_disk_full(RuntimeError("parquet: No space left on device (os error 28)"))  # errno dropped
    assert human_bytes(1536) == "1.5 KiB" and human_bytes(10) == "10 B"


def test_a_bare_write_failure_counts_only_on_a_full_file_system(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """torch.save says only "file write failed" on ENOSPC: a full disk when the file system at the path is full."""
    import vlmscope.io.diskspace as ds

    bare = RuntimeError("[enforce fail at inline_container.cc:783] . PytorchStreamWriter failed writing file data/0: file write failed")
    assert not is_disk_full(bare)  # no path: no way to tell
    assert not is_disk_full(bare, tmp_path)  # this file system has room: some other failure
    monkeypatch.setattr(ds, "free_bytes", lambda _p: 4096)
    assert is_disk_full(bare, tmp_path)
    assert not is_disk_full(RuntimeError("something else"), tmp_path)


def test_the_message_names_free_and_needed_space(tmp_path: Path) -> None:
    free = shutil.disk_usage(tmp_path).free
    with pytest.raises(DiskFull) as info:
        with disk_full_as_error(tmp_path / "out", needed=3 * 1024**2):
            raise OSError(errno.ENOSPC, "No space left on device")
    msg = str(info.value)
    assert f"writing {tmp_path / 'out'}: " in msg and "needed about 3.0 MiB" in msg
    assert human_bytes(free).split()[1] in msg  # the unit of the free space actually reported
    with pytest.raises(PermissionError):  # anything else passes through untouched
        with disk_full_as_error(tmp_path):
            raise PermissionError("no")


def test_generate_out_of_disk_then_rerun(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import vlmscope.data.generators.base as base

    out = tmp_path / "ds"
    gen = ["generate", "spatial", "--n", "6", "--out", str(out), "--seed"]
    assert runner.invoke(app, [*gen, "1"]).exit_code == 0
    before = {p.name: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    fake = _full(after=3)
    fake.real = base.save_png  # type: ignore[attr-defined]
    monkeypatch.setattr(base, "save_png", fake)
    res = runner.invoke(app, [*gen, "2"])
    assert res.exit_code == 1, res.output
    line = _one_line(res.output, out)
    assert "written before it filled" in line and "partial output was removed" in line
    _no_temp(tmp_path)
    assert {p.name: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before  # the old dataset survives
    monkeypatch.undo()
    res = runner.invoke(app, [*gen, "2"])
    assert res.exit_code == 0, res.output
    assert json.loads((out / "dataset.json").read_text())["seed"] == 2
    _no_temp(tmp_path)


def test_a_killed_generate_leaves_no_temp_dir_for_ever(tmp_path: Path) -> None:
    import subprocess
    import sys

    out = tmp_path / "ds"
    # what a SIGKILL mid-write leaves: a temporary sibling of a process that no longer exists
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f".ds.tmp-{int(dead.stdout)}-x1y2"
    (stale / "images").mkdir(parents=True)
    (stale / "images" / "0.png").write_bytes(b"\x89PNG")
    res = runner.invoke(app, ["generate", "spatial", "--n", "4", "--out", str(out)])
    assert res.exit_code == 0, res.output
    _no_temp(tmp_path)


def test_import_out_of_disk_then_rerun(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from PIL import Image

    import vlmscope.data.importers.common as common

    images = tmp_path / "img"
    images.mkdir()
    for name in ("a.png", "b.png", "c.png"):
        Image.new("RGB", (8, 8), (200, 30, 30)).save(images / name)
    recs = [
        {"id": str(i), "image": f"{n}.png", "conversations": [{"from": "human", "value": "<image>"},
                                                              {"from": "gpt", "value": c}]}
        for i, (n, c) in enumerate(zip("abc", ["cat", "dog", "cow"]))
    ]  # fmt: skip
    src = tmp_path / "test.json"
    src.write_text(json.dumps(recs))
    out = tmp_path / "out" / "ds"
    imp = ["import", "llava", str(src), "--images", str(images), "--num-options", "2", "--copy", "--out", str(out)]
    fake = _full(after=1)
    fake.real = shutil.copyfile  # type: ignore[attr-defined]
    monkeypatch.setattr(common.shutil, "copyfile", fake)
    res = runner.invoke(app, imp)
    assert res.exit_code == 1, res.output
    _one_line(res.output, out)
    assert not out.exists()
    _no_temp(out.parent)
    monkeypatch.undo()
    res = runner.invoke(app, imp)
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in (out / "images").rglob("*.png")) == ["a.png", "b.png", "c.png"]


# -- extract: a full disk mid-run keeps the finished shards, the rerun resumes bit for bit ----------


@pytest.fixture(scope="module")
def tiny(tiny_checkpoint: Callable[[str], Path], tiny_dataset: Callable[..., Path]) -> tuple[Path, Path]:
    return tiny_checkpoint("composite"), tiny_dataset("spatial", 12)


def test_extract_out_of_disk_then_rerun_resumes(
    tiny: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vlmscope import open_activations
    from vlmscope.activations.extract import ExtractConfig, extract
    from vlmscope.activations.progress import load_progress
    from vlmscope.activations.store import StoreWriter

    model, dataset = tiny
    cfg = ExtractConfig(batch_size=3, shard_samples=3, dtype="float32", device="cpu")
    out = tmp_path / "s.zarr"
    fake = _full(after=2)
    fake.real = StoreWriter.write_rows  # type: ignore[attr-defined]
    monkeypatch.setattr(StoreWriter, "write_rows", fake)
    with pytest.raises(DiskFull) as info:
        extract(cfg, model, dataset, out)
    msg = str(info.value)
    assert msg.startswith(f"no space left on device writing {out}: ") and "needed" in msg and "resumes" in msg
    done = load_progress(out)
    assert sorted(done) == [0, 1]  # the shards written before the disk filled are kept
    monkeypatch.undo()
    extract(cfg, model, dataset, out)
    reference = extract(cfg, model, dataset, tmp_path / "ref.zarr")
    a, b = open_activations(out), open_activations(reference)
    for name in a.data_vars:
        np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=name)


def test_extract_cli_out_of_disk_is_one_line(
    tiny: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vlmscope.activations.store import StoreWriter

    model, dataset = tiny
    out = tmp_path / "s.zarr"
    fake = _full(after=0)
    fake.real = StoreWriter.write_rows  # type: ignore[attr-defined]
    monkeypatch.setattr(StoreWriter, "write_rows", fake)
    res = runner.invoke(app, ["extract", "--model", str(model), "--dataset", str(dataset), "--out", str(out),
                              "--shard-samples", "6", "--dtype", "float32", "--device", "cpu"])  # fmt: skip
    assert res.exit_code == 1, res.output
    line = _one_line(res.output, out)
    assert "needed about " in line  # the store's size is known up front


# -- train: a checkpoint that does not fit is removed; the rerun resumes from the previous one ---------


def test_train_out_of_disk_then_rerun_resumes(
    tiny: tuple[Path, Path],
    tiny_dataset: Callable[..., Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import torch

    import vlmscope.training.engine.checkpoint as ckpt
    from vlmscope.training.config import LoopConfig
    from vlmscope.training.trainers.projector import ProjectorTrainConfig, train_projector

    torch.set_num_threads(1)
    model, _ = tiny
    dataset = tiny_dataset("color", 16)
    cfg = ProjectorTrainConfig(loop=LoopConfig(max_steps=6, batch_size=4, lr=5e-3, checkpoint_every=2,
                                               keep_checkpoints=2, seed=7, threads=1))  # fmt: skip
    out = tmp_path / "proj"
    fake = _full(after=1)  # checkpoint 2 fits, checkpoint 4 does not
    fake.real = ckpt.save_file  # type: ignore[attr-defined]
    monkeypatch.setattr(ckpt, "save_file", fake)
    with pytest.raises(DiskFull) as info:
        train_projector(model, [dataset], out, cfg)
    checkpoints = tmp_path / ".proj.run" / "checkpoints"
    assert str(info.value).startswith(f"no space left on device writing {checkpoints / 'step-00000004'}: ")
    assert "resumes" in str(info.value)
    assert [c.step for c in ckpt.list_checkpoints(checkpoints)] == [2]
    _no_temp(checkpoints)
    assert not out.exists()
    monkeypatch.undo()
    train_projector(model, [dataset], out, cfg)
    state = json.loads((out / "train_state.json").read_text())
    assert state["resumed_from"] == 2 and state["steps"] == 6
