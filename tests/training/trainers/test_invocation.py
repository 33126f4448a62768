"""The trainers' shared entry: one public signature, seeded start, resolved paths and recorded inputs."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import pytest
import torch
from pydantic import BaseModel, ConfigDict

from vlmscope.training.config import LoopConfig
from vlmscope.training.engine.identity import inputs_fingerprint
from vlmscope.training.trainers.invocation import TrainerCall, trainer_entry
from vlmscope.training.trainers.projector import train_projector


class _Cfg(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    loop: LoopConfig = LoopConfig(seed=7, threads=1)
    knob: int = 3


seen: list[tuple[TrainerCall, _Cfg, dict[str, Any]]] = []


@trainer_entry("fake", _Cfg())
def train_fake(call: TrainerCall, cfg: _Cfg, *, logs: str | None = None) -> dict[str, Any]:
    """A trainer that records its call and returns the first random number after the seed."""
    seen.append((call, cfg, {"logs": logs}))
    return {"draw": torch.rand(1).item()}


def test_public_signature_name_and_doc_are_the_trainers() -> None:
    params = inspect.signature(train_projector).parameters
    assert list(params)[:4] == ["model", "datasets", "out", "cfg"]
    assert {"run_dir", "callbacks", "accelerator"} <= {n for n, p in params.items() if p.kind is p.KEYWORD_ONLY}
    assert train_projector.__name__ == "train_projector" and "projector" in (train_projector.__doc__ or "")
    assert train_fake.__qualname__ == "train_fake" and train_fake.__doc__ is not None
    assert not hasattr(train_fake, "__wrapped__")  # help() shows the public signature, not (call, cfg)


def test_call_is_resolved_and_seeded(tmp_path: Path) -> None:
    seen.clear()
    first = train_fake(str(tmp_path / "model"), [tmp_path / "ds"], str(tmp_path / "out"))
    again = train_fake(tmp_path / "model", [str(tmp_path / "ds")], tmp_path / "out", logs="L", run_dir=tmp_path / "r")
    assert first == again  # seeded from cfg.loop before the body runs
    (call, cfg, opts), (call2, _, opts2) = seen
    assert cfg == _Cfg() and call.loop == cfg.loop and call.trainer == "fake"
    assert call.out == tmp_path / "out" and call.run_dir == tmp_path / ".out.run"  # beside out by default
    assert call2.run_dir == tmp_path / "r" and opts == {"logs": None} and opts2 == {"logs": "L"}
    assert call.datasets == (tmp_path / "ds",) and call.callbacks == () and call.accelerator is None
    assert call.fingerprint == inputs_fingerprint(cfg, tmp_path / "model", [tmp_path / "ds"])
    assert call.training_args(extra=1) == {
        "trainer": "fake", "config": cfg.model_dump(mode="json"), "model": str(tmp_path / "model"),
        "datasets": [str(tmp_path / "ds")], "extra": 1,
    }  # fmt: skip


def test_unknown_keyword_fails(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="rundir"):
        train_fake(tmp_path / "m", [], tmp_path / "o", rundir=tmp_path)
