"""The static import graph: closures, lazy re-exports, cycles, and the code hash a store's identity carries."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from vlmscope.io.import_graph import (
    closure,
    code_hash,
    direct_imports,
    find_cycles,
    package_graph,
    package_root,
    script_imports,
)


@pytest.fixture(scope="module")
def src_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the package source to edit (the real files are never touched)."""
    root = tmp_path_factory.mktemp("src")
    shutil.copytree(package_root() / "vlmscope", root / "vlmscope", ignore=shutil.ignore_patterns("__pycache__"))
    return root


def test_no_import_cycle_between_packages() -> None:
    assert find_cycles(package_graph()) == []


def test_find_cycles_reports_a_planted_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycles(graph) == [["a", "b", "c"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []


def test_lazy_reexport_resolves_to_the_defining_module(tmp_path: Path) -> None:
    script = tmp_path / "s.py"
    script.write_text("from vlmscope import open_activations\n")
    mods = script_imports(script)
    assert "vlmscope.activations.store" in mods
    # the package's other modules are not dragged in by one public name
    assert "vlmscope.activations.extract" not in closure(mods)


def test_function_level_imports_count_and_type_checking_ones_do_not(src_copy: Path) -> None:
    mod = src_copy / "vlmscope" / "planted_mod.py"
    mod.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from vlmscope.report import build\n"
        "def f():\n    from vlmscope.probing import solver\n    return solver\n"
    )
    got = direct_imports("vlmscope.planted_mod", root=src_copy)
    assert "vlmscope.probing.solver" in got
    assert not any(m.startswith("vlmscope.report") for m in got)


def test_code_hash_follows_capture_and_ignores_unrelated_modules(src_copy: Path) -> None:
    before = code_hash("vlmscope.activations.extract", root=src_copy)
    assert before == code_hash("vlmscope.activations.extract", root=src_copy)  # deterministic
    report_html = src_copy / "vlmscope" / "report" / "html.py"
    report_html.write_text(report_html.read_text() + "\n# an edit extraction never runs\n")
    assert code_hash("vlmscope.activations.extract", root=src_copy) == before
    capture = src_copy / "vlmscope" / "activations" / "capture.py"
    original = capture.read_text()
    capture.write_text(original + "\n# a fix to capture\n")
    try:
        assert code_hash("vlmscope.activations.extract", root=src_copy) != before
    finally:
        capture.write_text(original)
    assert code_hash("vlmscope.activations.extract", root=src_copy) == before


def test_a_modules_json_sidecar_is_one_of_its_files() -> None:
    """``published.py`` reads ``published.json``: stages and store identities depend on both."""
    from pathlib import Path

    from vlmscope.io.import_graph import module_files

    files = module_files(["vlmscope.report.published", "vlmscope.report.studies"])
    assert files == [Path("vlmscope/report") / f for f in ("published.json", "published.py", "studies.py")]
