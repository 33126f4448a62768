"""tools/mutation_check.py stays in step with the code it mutates (the slow run itself is not a test)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_PATH = ROOT / "tools" / "mutation_check.py"


@pytest.fixture(scope="module")
def mc():
    spec = importlib.util.spec_from_file_location("mutation_check", _PATH)
    module = importlib.util.module_from_spec(spec)
    sys.modules["mutation_check"] = module
    spec.loader.exec_module(module)
    return module


def test_every_fault_still_applies_to_exactly_one_line(mc) -> None:
    """A refactor that moves or rewrites a mutated line must update the table, not silently skip it."""
    assert len({m.name for m in mc.MUTANTS}) == len(mc.MUTANTS)
    assert {m.area for m in mc.MUTANTS} == {"probe", "lens", "parsing", "capture", "store"}
    for m in mc.MUTANTS:
        text = (ROOT / m.path).read_text()
        mutated = mc.apply(text, m)
        diff = [(a, b) for a, b in zip(text.splitlines(), mutated.splitlines()) if a != b]
        assert len(diff) == 1 and len(text.splitlines()) == len(mutated.splitlines()), m.name
        for target in m.tests:
            assert (ROOT / target.split("::")[0]).is_file(), (m.name, target)


def test_apply_refuses_a_missing_or_repeated_line(mc) -> None:
    m = mc.Mutant("x", "probe", "f.py", "a = 1", "a = 2", "why", ())
    assert mc.apply("b = 0\na = 1\n", m) == "b = 0\na = 2\n"
    with pytest.raises(ValueError, match="occurs 0 times"):
        mc.apply("b = 0\n", m)
    with pytest.raises(ValueError, match="occurs 2 times"):
        mc.apply("a = 1\na = 1\n", m)


def test_failures_are_grouped_by_file(mc) -> None:
    out = "x\nFAILED tests/a.py::t1 - boom\nFAILED tests/a.py::t2[yes and no-None]\nERROR tests/b.py::t3 - err\n"
    failed = sorted(set(mc._FAILED.findall(out)))
    assert failed == ["tests/a.py::t1", "tests/a.py::t2[yes and no-None]", "tests/b.py::t3"]
    assert mc._caught_by(failed) == "tests/a.py (2), tests/b.py (1)"
