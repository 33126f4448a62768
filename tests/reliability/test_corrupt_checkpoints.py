"""A truncated or corrupt safetensors file is one line naming it; a corrupt training checkpoint is skipped.

Model checkpoints: every loader (``load_model``, the lens reader, the
name-based weight reader, ``merge``) checks each weight file's structure
first, so a truncated, zero-length or garbled shard, or one the index lists
but that is missing, is a ``ModelError`` naming the file, not a
safetensors/transformers traceback. Training checkpoints: ``state.json``
records each file's size and SHA-256; on resume a damaged latest checkpoint
is skipped with a warning naming the bad file, the previous complete one is
used (and the run still ends bit-identical to an uninterrupted one), and
when none is left the error names the file and the way out.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torch import nn
from typer.testing import CliRunner

from vlmscope.cli.app import app
from vlmscope.errors import ModelError, NotFound, TrainingError, VlmscopeError
from vlmscope.training.config import LoopConfig
from vlmscope.training.engine.checkpoint import CorruptCheckpoint, list_checkpoints, load_best, save_best
from vlmscope.training.engine.loop import LoopSpec, StepInfo, run_loop
from vlmscope.training.engine.params import trainable_state

# -- model checkpoints --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def composite(tiny_checkpoint: Callable[[str], Path]) -> Path:
    return tiny_checkpoint("composite")


def _damaged(src: Path, dst: Path, how: str) -> Path:
    shutil.copytree(src, dst)
    f = dst / "model.safetensors"
    if how == "truncated":
        f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    elif how == "zero-length":
        f.write_bytes(b"")
    elif how == "garbled-header":
        data = bytearray(f.read_bytes())
        data[9:40] = b"\xff" * 31
        f.write_bytes(bytes(data))
    elif how == "missing-shard":  # a sharded checkpoint whose index names a shard that is not there
        names = json.loads(json.dumps(list(_keys(f))))
        f.rename(dst / "model-00001-of-00002.safetensors")
        wm = {n: ("model-00001-of-00002.safetensors" if i % 2 else "model-00002-of-00002.safetensors")
              for i, n in enumerate(names)}  # fmt: skip
        (dst / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": wm}))
        return dst / "model-00002-of-00002.safetensors"
    return f


def _keys(f: Path) -> list[str]:
    from safetensors import safe_open

    with safe_open(str(f), framework="pt") as fh:
        return list(fh.keys())


HOW = ["truncated", "zero-length", "garbled-header", "missing-shard"]


@pytest.mark.parametrize("how", HOW)
def test_load_model_names_the_bad_file(composite: Path, tmp_path: Path, how: str) -> None:
    from vlmscope.models import load_model

    bad = _damaged(composite, tmp_path / "m", how)
    with pytest.raises(NotFound if how == "missing-shard" else ModelError) as e:
        load_model(tmp_path / "m")
    assert str(bad) in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("how", HOW)
def test_weight_readers_name_the_bad_file(composite: Path, tmp_path: Path, how: str) -> None:
    from vlmscope.lens.weights import SafetensorsReader
    from vlmscope.models.weights import weight_map

    bad = _damaged(composite, tmp_path / "m", how)
    for read in (weight_map, SafetensorsReader):
        with pytest.raises(VlmscopeError) as e:
            read(tmp_path / "m")
        assert str(bad) in str(e.value) and "\n" not in str(e.value), read


def test_cli_merge_onto_truncated_base_is_one_line(composite: Path, tmp_path: Path) -> None:
    bad = _damaged(composite, tmp_path / "m", "truncated")
    t = tmp_path / "t.safetensors"
    save_file({"x": torch.zeros(1)}, str(t))
    res = CliRunner().invoke(app, ["merge", "--base", str(tmp_path / "m"), "--tensors", str(t), "--out", str(tmp_path / "o")])
    assert res.exit_code == 1 and res.output.startswith("error:") and str(bad) in res.output, res.output
    assert len(res.output.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_cli_merge_with_truncated_tensors_is_one_line(composite: Path, tmp_path: Path) -> None:
    t = tmp_path / "t.safetensors"
    save_file({"x": torch.zeros(64)}, str(t))
    t.write_bytes(t.read_bytes()[:-10])
    res = CliRunner().invoke(app, ["merge", "--base", str(composite), "--tensors", str(t), "--out", str(tmp_path / "o")])
    assert res.exit_code == 1 and str(t) in res.output and len(res.output.strip().splitlines()) == 1, res.output


# -- training checkpoints on resume -------------------------------------------------------------------


def _spec() -> LoopSpec:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.3), nn.Linear(8, 1))
    X = torch.randn(32, 4, generator=torch.Generator().manual_seed(1))
    y = X.sum(1, keepdim=True)
    return LoopSpec(
        model=model, n_examples=32, make_batch=lambda idx: {"x": X[idx], "y": y[idx]},
        loss_fn=lambda m, b: nn.functional.mse_loss(m(b["x"]), b["y"]), fingerprint="corrupt",
    )  # fmt: skip


CFG = LoopConfig(max_steps=12, batch_size=4, lr=0.05, checkpoint_every=4, keep_checkpoints=2, seed=3, threads=1)


def _crashed(run_dir: Path) -> list[Path]:
    """A run stopped at step 9: checkpoints 4 and 8 on disk (oldest first)."""

    def crash(info: StepInfo) -> None:
        if info.step == 9:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_loop(_spec(), CFG, run_dir, progress=False, callbacks=[crash])
    found = [c.path for c in list_checkpoints(run_dir / "checkpoints")]
    assert [p.name for p in found] == ["step-00000004", "step-00000008"]
    return found


def _flip(f: Path, at: int = -3) -> None:
    data = bytearray(f.read_bytes())
    data[at] ^= 0x01
    f.write_bytes(bytes(data))


DAMAGE: dict[str, tuple[str, Callable[[Path], None]]] = {
    "trainable-truncated": ("trainable.safetensors", lambda f: f.write_bytes(f.read_bytes()[:-16])),
    "trainable-zero-length": ("trainable.safetensors", lambda f: f.write_bytes(b"")),
    "trainable-bit-flip": ("trainable.safetensors", _flip),
    "optimizer-truncated": ("optimizer.pt", lambda f: f.write_bytes(f.read_bytes()[:100])),
    "scheduler-bit-flip": ("scheduler.pt", lambda f: _flip(f, 200)),
    "rng-tensors-deleted": ("rng.safetensors", lambda f: f.unlink()),
    "rng-json-edited": ("rng.json", lambda f: f.write_text(f.read_text().replace('"pos"', '"pos" '))),
    "state-json-garbage": ("state.json", lambda f: f.write_text('{"step": 8, "fingerp')),
}


@pytest.fixture(scope="module")
def straight(tmp_path_factory: pytest.TempPathFactory) -> dict[str, torch.Tensor]:
    res = run_loop(_spec(), CFG, tmp_path_factory.mktemp("straight") / "run", progress=False)
    return trainable_state(res.model)


@pytest.mark.parametrize("case", sorted(DAMAGE))
def test_corrupt_latest_checkpoint_falls_back_to_previous(
    tmp_path: Path, case: str, straight: dict[str, torch.Tensor]
) -> None:
    _, latest = _crashed(tmp_path / "run")
    name, damage = DAMAGE[case]
    damage(latest / name)
    with pytest.warns(UserWarning) as caught:
        res = run_loop(_spec(), CFG, tmp_path / "run", progress=False)
    said = [str(w.message) for w in caught]
    assert any(str(latest / name) in s and "skipping checkpoint step-00000008" in s for s in said), said
    assert any("resuming from" in s and "step-00000004" in s for s in said), said
    assert res.resumed_from == 4 and res.steps == 12
    for k, t in straight.items():  # the fallback loses time, never exactness
        torch.testing.assert_close(trainable_state(res.model)[k], t, rtol=0, atol=0)


def test_no_complete_checkpoint_left_is_one_line(tmp_path: Path) -> None:
    first, latest = _crashed(tmp_path / "run")
    (latest / "trainable.safetensors").write_bytes(b"")
    _flip(first / "optimizer.pt")
    with pytest.raises(TrainingError) as e, pytest.warns(UserWarning):
        run_loop(_spec(), CFG, tmp_path / "run", progress=False)
    msg = str(e.value)
    assert str(latest / "trainable.safetensors") in msg and "--no-resume" in msg and "\n" not in msg


def test_intact_checkpoint_resumes_without_warning(tmp_path: Path) -> None:
    import warnings

    _crashed(tmp_path / "run")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert run_loop(_spec(), CFG, tmp_path / "run", progress=False).resumed_from == 8


def test_corrupt_best_is_one_line_naming_it(tmp_path: Path) -> None:
    save_best(tmp_path, {"w": torch.ones(8)}, {"step": 4})
    f = tmp_path / "best" / "trainable.safetensors"
    f.write_bytes(f.read_bytes()[:-4])
    with pytest.raises(CorruptCheckpoint) as e:
        load_best(tmp_path)
    assert str(f) in str(e.value) and "\n" not in str(e.value)


# -- the same through `vlmscope train projector` ------------------------------------------------------


@pytest.fixture(scope="module")
def color_ds(tiny_dataset: Callable[..., Path]) -> Path:
    return tiny_dataset("color", 16)


def _train_cli(composite: Path, color_ds: Path, out: Path) -> tuple[int, str]:
    args = ["train", "projector", "--model", composite, "--dataset", color_ds, "--out", out, "--max-steps", "6",
            "--batch-size", "4", "--checkpoint-every", "2", "--seed", "7", "--threads", "1"]  # fmt: skip
    res = CliRunner().invoke(app, [str(a) for a in args])
    return res.exit_code, res.output


def _killed_after_step_4(monkeypatch: pytest.MonkeyPatch, composite: Path, color_ds: Path, out: Path) -> list[Path]:
    """Checkpoints 2 and 4 on disk, as after a kill at step 5 (the loop's ``_save`` raises once step 4 is written)."""
    from vlmscope.training.engine import loop

    real = loop._save

    def save_then_die(run: object, step: int) -> None:
        real(run, step)  # type: ignore[arg-type]
        if step == 4:
            raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(loop, "_save", save_then_die)
        code, _ = _train_cli(composite, color_ds, out)
    assert code != 0
    found = [c.path for c in list_checkpoints(out.parent / f".{out.name}.run" / "checkpoints")]
    assert [p.name for p in found] == ["step-00000002", "step-00000004"]
    return found


def test_cli_resume_skips_a_truncated_checkpoint_and_says_so(
    monkeypatch: pytest.MonkeyPatch, composite: Path, color_ds: Path, tmp_path: Path
) -> None:
    out = tmp_path / "proj"
    _, latest = _killed_after_step_4(monkeypatch, composite, color_ds, out)
    bad = latest / "trainable.safetensors"
    bad.write_bytes(bad.read_bytes()[:-8])
    with pytest.warns(UserWarning) as caught:  # the CLI shows them on stderr; pytest catches them first
        code, output = _train_cli(composite, color_ds, out)
    assert code == 0, output
    said = " | ".join(str(w.message) for w in caught)
    assert str(bad) in said and "skipping checkpoint step-00000004" in said and "resuming from" in said, said
    assert json.loads((out / "train_state.json").read_text())["resumed_from"] == 2


def test_cli_resume_from_a_crafted_rng_pkl_is_one_line(
    monkeypatch: pytest.MonkeyPatch, composite: Path, color_ds: Path, tmp_path: Path
) -> None:
    import pickle

    class Payload:
        def __reduce__(self) -> tuple[object, tuple[str, str]]:
            return open, (str(tmp_path / "pwned"), "w")

    out = tmp_path / "proj"
    for ckpt in _killed_after_step_4(monkeypatch, composite, color_ds, out):  # both: no fallback is possible
        (ckpt / "rng.json").unlink()
        (ckpt / "rng.safetensors").unlink()
        (ckpt / "rng.pkl").write_bytes(pickle.dumps(Payload()))
    code, output = _train_cli(composite, color_ds, out)
    # transformers' own "Loading weights" bar may precede it; vlmscope says exactly one line
    (line,) = [x for x in output.replace("\r", "\n").splitlines() if x.startswith("error:")]
    assert code == 1 and "Traceback" not in output and "rng.pkl" in line and "--no-resume" in line, output
    assert not (tmp_path / "pwned").exists()
