"""RNG states as safetensors + JSON: an exact round trip, and malformed files are one line naming them.

The crafted-pickle cases (an old ``rng.pkl`` is refused unread) live in
tests/reliability/test_no_code_from_data.py.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

from vlmscope.errors import TrainingError
from vlmscope.training.engine import rng as rng_mod


def test_rng_state_round_trips_exactly(tmp_path: Path) -> None:
    random.seed(11)
    np.random.seed(12)
    torch.manual_seed(13)
    random.gauss(0, 1)  # leaves a cached gauss in both Python's and NumPy's state
    np.random.standard_normal()
    states = [rng_mod.capture_rng()]
    rng_mod.save_rng(tmp_path, states)
    draws = (random.random(), random.gauss(0, 1), np.random.standard_normal(3).tolist(), torch.rand(3).tolist())
    (loaded,) = rng_mod.load_rng(tmp_path)
    assert loaded["python"] == states[0]["python"]
    assert np.array_equal(loaded["numpy"][1], states[0]["numpy"][1]) and loaded["numpy"][2:] == states[0]["numpy"][2:]
    assert torch.equal(loaded["torch"], states[0]["torch"])
    rng_mod.restore_rng(loaded)
    again = (random.random(), random.gauss(0, 1), np.random.standard_normal(3).tolist(), torch.rand(3).tolist())
    assert again == draws


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: (d / rng_mod.RNG_JSON).write_text("{not json"),
        lambda d: (d / rng_mod.RNG_JSON).write_text('{"format": 1, "ranks": [{"python": {"version": 3}}]}'),
        lambda d: (d / rng_mod.RNG_JSON).write_text((d / rng_mod.RNG_JSON).read_text().replace('"pos"', '"p"')),
        lambda d: (d / rng_mod.RNG_TENSORS).write_bytes((d / rng_mod.RNG_TENSORS).read_bytes()[:20]),
        lambda d: (d / rng_mod.RNG_TENSORS).unlink(),
    ],
    ids=["not-json", "missing-fields", "renamed-field", "truncated-tensors", "missing-tensors"],
)
def test_malformed_rng_state_is_one_line_naming_the_file(tmp_path: Path, mutate: object) -> None:
    rng_mod.save_rng(tmp_path, [rng_mod.capture_rng()])
    mutate(tmp_path)  # type: ignore[operator]
    with pytest.raises(TrainingError) as e:
        rng_mod.load_rng(tmp_path)
    msg = str(e.value)
    assert str(tmp_path / "rng.") in msg and "\n" not in msg


def test_cuda_states_travel_as_tensors(tmp_path: Path) -> None:
    """Per-device CUDA states (uint8 tensors, as ``torch.cuda.get_rng_state_all`` gives) survive per rank.

    No GPU here: the states are stand-in byte tensors; what is checked is that each rank keeps its own
    list, in device order, byte for byte.
    """
    states = []
    for r in range(2):
        st = rng_mod.capture_rng()
        st["cuda"] = [torch.randint(0, 256, (16,), dtype=torch.uint8) for _ in range(r + 2)]
        states.append(st)
    rng_mod.save_rng(tmp_path, states)
    loaded = rng_mod.load_rng(tmp_path)
    for want, got in zip(states, loaded):
        assert len(got["cuda"]) == len(want["cuda"])
        assert all(torch.equal(a, b) for a, b in zip(got["cuda"], want["cuda"]))
