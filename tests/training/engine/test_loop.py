"""The shared loop on a toy regression: schedule, order, keep-best, in-process resume, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from vlmscope.errors import TrainingError
from vlmscope.training.config import LoopConfig
from vlmscope.training.engine.checkpoint import list_checkpoints
from vlmscope.training.engine.loop import LoopSpec, StepInfo, run_loop
from vlmscope.training.engine.params import params_fingerprint, trainable_state
from vlmscope.training.engine.schedule import batch_indices, cosine_with_warmup, warmup_steps


def test_cosine_with_warmup_shape() -> None:
    total, warm = 100, warmup_steps(100, 0.03)
    assert warm == 3
    lrs = [cosine_with_warmup(s, total, warm, 0.1) for s in range(total + 1)]
    assert 0 < lrs[0] < lrs[1] < lrs[2] < 1  # ramp, never zero
    assert lrs[3] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(lrs[3:], lrs[4:]))  # monotone decay after warm-up
    assert lrs[-1] == pytest.approx(0.1)


def test_batch_indices_are_epoch_permutations() -> None:
    n, g = 10, 4
    stream = np.concatenate([batch_indices(s, g, n, seed=3) for s in range(5)])  # 20 = two epochs
    assert sorted(stream[:10].tolist()) == list(range(10))
    assert sorted(stream[10:20].tolist()) == list(range(10))
    assert not np.array_equal(stream[:10], stream[10:20])
    np.testing.assert_array_equal(batch_indices(2, g, n, seed=3), stream[8:12])
    assert not np.array_equal(batch_indices(0, g, n, seed=4), stream[:4])


def _spec(seed: int = 0, *, evaluate: bool = False, valid_target: float | None = None) -> LoopSpec:
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(4, 16), nn.Dropout(0.2), nn.Linear(16, 1))
    g = torch.Generator().manual_seed(1)
    X = torch.randn(64, 4, generator=g)
    y = X @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]])

    def loss_fn(m: nn.Module, b: dict[str, torch.Tensor]) -> torch.Tensor:
        return nn.functional.mse_loss(m(b["x"]), b["y"])

    y_valid = y if valid_target is None else torch.full_like(y, valid_target)

    def ev(m: nn.Module) -> dict[str, float]:
        return {"mse": float(nn.functional.mse_loss(m(X), y_valid).detach())}

    return LoopSpec(
        model=model, n_examples=64, make_batch=lambda idx: {"x": X[idx], "y": y[idx]}, loss_fn=loss_fn,
        evaluate=ev if evaluate else None, select="mse" if evaluate else None, mode="min", fingerprint="toy",
    )


def _cfg(**kw: object) -> LoopConfig:
    base = dict(max_steps=12, batch_size=8, lr=0.05, checkpoint_every=4, seed=5, log_every=2)
    base.update(kw)
    return LoopConfig(**base)  # type: ignore[arg-type]


def test_loss_falls_and_curves_logged(tmp_path: Path) -> None:
    res = run_loop(_spec(), _cfg(max_steps=40), tmp_path / "run", progress=False)
    assert res.steps == 40 and res.resumed_from is None and res.world_size == 1
    assert res.losses[-1][1] < 0.5 * res.losses[0][1]
    tsv = tmp_path / "run" / "dvclive" / "plots" / "metrics" / "train" / "loss.tsv"
    assert tsv.is_file() and len(tsv.read_text().splitlines()) == 1 + len(res.losses)


def test_resume_after_crash_matches_uninterrupted(tmp_path: Path) -> None:
    full = run_loop(_spec(), _cfg(), tmp_path / "a", progress=False)

    class Crash(Exception):
        pass

    def crash_at_6(info: StepInfo) -> None:
        if info.step == 6:
            raise Crash

    with pytest.raises(Crash):
        run_loop(_spec(), _cfg(), tmp_path / "b", progress=False, callbacks=[crash_at_6])
    assert [c.step for c in list_checkpoints(tmp_path / "b" / "checkpoints")] == [4]
    # a fresh model object (different init seed): everything must come from the checkpoint
    resumed = run_loop(_spec(seed=99), _cfg(), tmp_path / "b", progress=False)
    assert resumed.resumed_from == 4 and resumed.steps == 12
    assert resumed.rank_fingerprints == full.rank_fingerprints
    for name, t in trainable_state(full.model).items():
        torch.testing.assert_close(trainable_state(resumed.model)[name], t, rtol=0, atol=0)
    tsv = tmp_path / "b" / "dvclive" / "plots" / "metrics" / "train" / "loss.tsv"
    header, *rows = [r.split("\t") for r in tsv.read_text().splitlines()]
    steps = [int(r[header.index("step")]) for r in rows]
    assert steps == sorted(set(steps))  # no step logged twice across the crash


def test_resume_refuses_other_config(tmp_path: Path) -> None:
    def stop(info: StepInfo) -> None:
        if info.step == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_loop(_spec(), _cfg(), tmp_path / "r", progress=False, callbacks=[stop])
    spec = _spec()
    spec.fingerprint = "other"
    with pytest.raises(TrainingError, match="another config"):
        run_loop(spec, _cfg(), tmp_path / "r", progress=False)
    res = run_loop(spec, _cfg(resume=False), tmp_path / "r", progress=False)
    assert res.resumed_from is None


def test_keep_best_restores_best_weights(tmp_path: Path) -> None:
    # validation wants outputs near 0 while training pulls them to y: the best is an early step
    spec = _spec(evaluate=True, valid_target=0.0)
    res = run_loop(spec, _cfg(max_steps=30, eval_every=3), tmp_path / "k", progress=False)
    assert res.best is not None and res.best["metric"] == "mse"
    assert res.best["step"] < 30
    assert spec.evaluate is not None
    final = spec.evaluate(res.model.eval())["mse"]
    assert final == pytest.approx(res.best["value"], rel=1e-5)
    last = run_loop(_spec(evaluate=True, valid_target=0.0), _cfg(max_steps=30, eval_every=3), tmp_path / "k2",
                    progress=False)  # fmt: skip
    assert last.best is not None and last.best["step"] == res.best["step"]


def test_nothing_trainable_is_an_error(tmp_path: Path) -> None:
    spec = _spec()
    for p in spec.model.parameters():
        p.requires_grad_(False)
    with pytest.raises(TrainingError, match="no trainable parameters"):
        run_loop(spec, _cfg(), tmp_path / "n", progress=False)


def test_fingerprint_is_order_independent() -> None:
    a = {"x": torch.ones(2), "y": torch.zeros(3)}
    assert params_fingerprint(a) == params_fingerprint(dict(reversed(list(a.items()))))
    assert params_fingerprint(a) != params_fingerprint({"x": torch.ones(2), "y": torch.ones(3)})
