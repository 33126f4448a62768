"""No code runs from a file: no unpickling, no unsafe loaders, no eval/exec/shell, no remote code.

Two halves. (1) A scan of every Python file in src/, stages/ and tools/ over
its AST (a grep would trip on docstrings that name the patterns and miss
``model.eval()`` vs ``eval(``): any ``pickle.load(s)``, ``torch.load``
without ``weights_only=True``, ``yaml.load``, builtin ``eval``/``exec``,
``shell=True`` or ``trust_remote_code=True`` fails the test, with file and
line. The scanner is checked on a snippet that has each pattern, so the scan
itself cannot silently pass everything. (2) The training checkpoint's RNG
state is safetensors + JSON: a crafted ``rng.pkl`` whose unpickling would
create a file is refused with one line naming it, and the file never appears.
"""

from __future__ import annotations

import ast
import pickle
from pathlib import Path

import pytest
import torch
from torch import nn

from vlmscope.errors import TrainingError
from vlmscope.training.config import LoopConfig
from vlmscope.training.engine import rng as rng_mod
from vlmscope.training.engine.checkpoint import list_checkpoints, load_checkpoint
from vlmscope.training.engine.loop import LoopSpec, StepInfo, run_loop
from vlmscope.training.engine.params import trainable_state

ROOT = Path(__file__).resolve().parents[2]
SCANNED = ("src", "stages", "tools")

_UNPICKLE = {"load", "loads", "Unpickler"}
_YAML_UNSAFE = {"load", "load_all", "unsafe_load", "unsafe_load_all", "full_load", "full_load_all"}


def _dotted(node: ast.AST) -> str:
    """``a.b.c`` for a Name/Attribute chain, ``""`` otherwise."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return ""


def _is_true(node: ast.AST | None) -> bool:
    return isinstance(node, ast.Constant) and node.value is True


def findings(source: str, filename: str = "<snippet>") -> list[str]:
    """``file:line: what`` for every way ``source`` could run code from data."""
    tree = ast.parse(source, filename)
    found = []

    def hit(node: ast.AST, what: str) -> None:
        found.append(f"{filename}:{getattr(node, 'lineno', '?')}: {what}")

    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module in ("pickle", "_pickle", "cPickle", "dill"):
            for alias in node.names:
                if alias.name in _UNPICKLE:
                    hit(node, f"from {node.module} import {alias.name}")
        if isinstance(node, ast.ImportFrom) and node.module == "torch":
            if any(a.name == "load" for a in node.names):
                hit(node, "from torch import load (use torch.load(..., weights_only=True))")
        if isinstance(node, ast.Dict):
            for k, v in zip(node.keys, node.values):
                if isinstance(k, ast.Constant) and k.value in ("trust_remote_code", "shell") and _is_true(v):
                    hit(node, f"{{{k.value!r}: True}}")
        if not isinstance(node, ast.Call):
            continue
        name = _dotted(node.func)
        head, _, last = name.rpartition(".")
        kwargs = {k.arg: k.value for k in node.keywords if k.arg is not None}
        if head in ("pickle", "_pickle", "cPickle", "dill") and last in _UNPICKLE:
            hit(node, f"{name}(...)")
        if name == "torch.load" and not _is_true(kwargs.get("weights_only")):
            hit(node, "torch.load(...) without weights_only=True")
        if head == "yaml" and last in _YAML_UNSAFE:
            hit(node, f"{name}(...) (use yaml.safe_load)")
        if name in ("eval", "exec", "builtins.eval", "builtins.exec"):
            hit(node, f"{name}(...)")
        if _is_true(kwargs.get("shell")):
            hit(node, "shell=True")
        if _is_true(kwargs.get("trust_remote_code")):
            hit(node, "trust_remote_code=True")
        if name.endswith("load") and head in ("np", "numpy") and _is_true(kwargs.get("allow_pickle")):
            hit(node, f"{name}(..., allow_pickle=True)")
        if last == "read_pickle":
            hit(node, f"{name}(...)")
    return found


def test_scanner_flags_every_pattern_and_ignores_text() -> None:
    bad = '''
import pickle, yaml, torch, subprocess, builtins
from pickle import loads
from transformers import AutoModel
pickle.load(open("f", "rb"))
pickle.loads(b"")
torch.load("x.pt")
torch.load("x.pt", weights_only=False)
yaml.load("a: 1")
eval("1")
exec("x = 1")
builtins.eval("2")
subprocess.run("ls", shell=True)
AutoModel.from_pretrained("m", trust_remote_code=True)
AutoModel.from_pretrained("m", **{"trust_remote_code": True})
np.load("a.npy", allow_pickle=True)
'''
    got = findings(bad)
    for what in ("pickle.load(", "pickle.loads(", "from pickle import loads", "yaml.load(", ": eval(",
                 ": exec(", "builtins.eval(", "shell=True", "trust_remote_code=True", "{'trust_remote_code': True}",
                 "allow_pickle=True"):  # fmt: skip
        assert any(what in f for f in got), (what, got)
    assert sum("torch.load(...) without weights_only=True" in f for f in got) == 2
    ok = '''
"""Docstring naming pickle.loads(x), eval(s), exec(c), shell=True and trust_remote_code=True."""
# a comment: torch.load(p) yaml.load(s)
import torch, yaml
model.eval()
torch.load("x.pt", map_location="cpu", weights_only=True)
yaml.safe_load("a: 1")
subprocess.run(["ls"], shell=False)
s = "eval(1)"
'''
    assert findings(ok) == []


def test_sources_run_no_code_from_data() -> None:
    files = [p for d in SCANNED if (ROOT / d).is_dir() for p in sorted((ROOT / d).rglob("*.py"))]
    assert len(files) > 50  # the scan really ran over the package
    bad = [f for p in files for f in findings(p.read_text(), str(p.relative_to(ROOT)))]
    assert bad == [], "\n".join(bad)


# -- the training checkpoint's RNG state -------------------------------------------------------------


class _Payload:
    """Unpickling this creates ``path``: the stand-in for arbitrary code in a crafted checkpoint."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return open, (str(self.path), "w")


def _spec() -> LoopSpec:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.3), nn.Linear(8, 1))  # dropout: the RNG matters
    X = torch.randn(32, 4, generator=torch.Generator().manual_seed(1))
    y = X.sum(1, keepdim=True)
    return LoopSpec(
        model=model, n_examples=32, make_batch=lambda idx: {"x": X[idx], "y": y[idx]},
        loss_fn=lambda m, b: nn.functional.mse_loss(m(b["x"]), b["y"]), fingerprint="nopickle",
    )  # fmt: skip


CFG = LoopConfig(max_steps=8, batch_size=4, lr=0.05, checkpoint_every=4, seed=3, threads=1)


def _crashed_run(run_dir: Path) -> Path:
    """A run stopped after step 5: checkpoint ``step-00000004`` on disk; returns its path."""

    def crash(info: StepInfo) -> None:
        if info.step == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_loop(_spec(), CFG, run_dir, progress=False, callbacks=[crash])
    (ckpt,) = list_checkpoints(run_dir / "checkpoints")
    return ckpt.path


def test_payload_would_run_if_unpickled(tmp_path: Path) -> None:
    """The crafted file is real: unpickling it does create the marker (so the refusal below means something)."""
    marker = tmp_path / "ran"
    pickle.loads(pickle.dumps(_Payload(marker)))
    assert marker.exists()


def test_checkpoint_holds_no_pickle(tmp_path: Path) -> None:
    ckpt = _crashed_run(tmp_path / "run")
    names = sorted(p.name for p in ckpt.iterdir())
    assert rng_mod.RNG_JSON in names and rng_mod.RNG_TENSORS in names and rng_mod.LEGACY_RNG not in names
    # optimizer/scheduler states are torch's zip format and load under weights_only=True
    for name in ("optimizer.pt", "scheduler.pt"):
        torch.load(ckpt / name, weights_only=True)


def test_crafted_rng_pkl_is_refused_unread(tmp_path: Path) -> None:
    ckpt = _crashed_run(tmp_path / "run")
    marker = tmp_path / "pwned"
    (ckpt / rng_mod.RNG_JSON).unlink()
    (ckpt / rng_mod.RNG_TENSORS).unlink()
    (ckpt / rng_mod.LEGACY_RNG).write_bytes(pickle.dumps(_Payload(marker)))
    with pytest.raises(TrainingError) as e:
        run_loop(_spec(), CFG, tmp_path / "run", progress=False)
    msg = str(e.value)
    assert str(ckpt / rng_mod.LEGACY_RNG) in msg and "--no-resume" in msg and "\n" not in msg
    assert not marker.exists()
    # the way out the message names works, and still never touches the pickle
    assert run_loop(_spec(), CFG.model_copy(update={"resume": False}), tmp_path / "run", progress=False).steps == 8
    assert not marker.exists()


def test_rng_pkl_beside_the_real_state_is_ignored(tmp_path: Path) -> None:
    ckpt = _crashed_run(tmp_path / "run")
    marker = tmp_path / "pwned"
    (ckpt / rng_mod.LEGACY_RNG).write_bytes(pickle.dumps(_Payload(marker)))
    assert load_checkpoint(list_checkpoints(tmp_path / "run" / "checkpoints")[0]).step == 4
    assert not marker.exists()


def test_resume_stays_bit_identical(tmp_path: Path) -> None:
    straight = run_loop(_spec(), CFG, tmp_path / "a", progress=False)
    _crashed_run(tmp_path / "b")
    resumed = run_loop(_spec(), CFG, tmp_path / "b", progress=False)
    assert resumed.resumed_from == 4
    for name, t in trainable_state(straight.model).items():
        torch.testing.assert_close(trainable_state(resumed.model)[name], t, rtol=0, atol=0)
