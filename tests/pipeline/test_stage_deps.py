"""dvc.yaml's `deps` cover exactly the vlmscope code each stage script can run (static import graph).

Listed too little, a code change leaves a stale result that `dvc repro`
calls up to date; listed too much, an unrelated edit reruns a stage. The
end-to-end test checks the same against what each stage process imported and
which params keys it read (tests/pipeline/test_end_to_end.py).
"""

from __future__ import annotations

import ast
from pathlib import Path, PurePosixPath

import pytest
from tests.pipeline.stage_coverage import StageSpec, all_stage_specs, uncovered_files, uncovered_params

from vlmscope.io.import_graph import closure, module_files, script_imports

ROOT = Path(__file__).resolve().parents[2]
SPECS = all_stage_specs(ROOT)


def _stage_files(spec: StageSpec) -> list[PurePosixPath]:
    mods = closure(script_imports(ROOT / spec.script))
    return [PurePosixPath("src") / f.as_posix() for f in module_files(mods)]


@pytest.mark.parametrize("spec", SPECS, ids=[s.id for s in SPECS])
def test_deps_cover_every_module_the_stage_can_import(spec: StageSpec) -> None:
    assert spec.script in spec.deps, f"{spec.name}: its own script {spec.script} is not a dep"
    missing = uncovered_files(_stage_files(spec), spec.deps)
    assert not missing, f"{spec.pipeline} stage {spec.name!r} imports code no dep covers: {missing} (python tools/stage_deps.py --write)"


@pytest.mark.parametrize("spec", SPECS, ids=[s.id for s in SPECS])
def test_every_listed_source_dep_is_needed(spec: StageSpec) -> None:
    files = _stage_files(spec)
    needless = [
        d
        for d in spec.deps
        if d.startswith("src/") and not any(PurePosixPath(d) == f or PurePosixPath(d) in f.parents for f in files)
    ]
    assert not needless, f"{spec.pipeline} stage {spec.name!r} lists code it never runs: {needless}"


def test_removing_a_dep_is_caught() -> None:
    """The check above can fail: drop the probe stage's probing code and it names the modules."""
    probe = next(s for s in SPECS if s.id == "probe")
    files = _stage_files(probe)
    solver = PurePosixPath("src/vlmscope/probing/solver.py")
    assert solver in files
    dropped = [d for d in probe.deps if not (PurePosixPath(d) == solver or PurePosixPath(d) in solver.parents)]
    assert str(solver) in uncovered_files(files, dropped)


def test_removing_a_param_is_caught() -> None:
    assert uncovered_params(["probe.C", "datasets.color.probe"], ["probe", "datasets.color.probe"]) == []
    assert uncovered_params(["probe.C", "datasets.color.probe"], ["probe"]) == ["datasets.color.probe"]
    assert uncovered_params(["datasets"], ["datasets.color"]) == ["datasets"]  # reading a parent is reading it all


@pytest.mark.parametrize("script", sorted((ROOT / "stages").glob("*.py")), ids=lambda p: p.name)
def test_stages_read_params_only_through_section(script: Path) -> None:
    """`section`/`load_config` record what a stage reads; indexing the params dict would slip past the record."""
    tree = ast.parse(script.read_text())
    bad = [
        node.lineno
        for node in ast.walk(tree)
        if (isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and node.value.id == "params")
        or (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == "params"
            and node.attr in ("get", "items", "keys", "values")
        )
    ]
    assert not bad, f"{script.name}: lines {bad} read params.yaml around vlmscope.params.section"
