"""Print the `deps:` that each dvc.yaml stage needs for the vlmscope code its script can run.

    python tools/stage_deps.py            # every stage
    python tools/stage_deps.py probe      # one
    python tools/stage_deps.py --write    # rewrite the stages/ and src/ entries of every dvc.yaml's deps

Every pipeline is covered: the root ``dvc.yaml`` and each study's
``studies/<study>/dvc.yaml`` (whose paths are written relative to its folder,
``../../src/...``).

A package directory is listed when the stage can import every module in it,
else the module files one by one; the stage script itself comes first. The
test tests/pipeline/test_stage_deps.py fails when dvc.yaml lists less than
this (a stale cache) or a src/ path the stage does not need (a needless rerun).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))

from tests.pipeline.stage_coverage import all_stage_specs, from_root  # noqa: E402

from vlmscope.io.import_graph import closure, module_files, script_imports  # noqa: E402


def covering_deps(files: list[Path]) -> list[str]:
    """The shortest list of src paths (directories where every .py below is used) covering ``files``."""
    used = {ROOT / "src" / f for f in files}
    out: list[str] = []

    def walk(d: Path) -> None:
        below = [p for p in d.rglob("*.py") if "__pycache__" not in p.parts]
        if below and all(p in used for p in below):
            out.append(d.relative_to(ROOT).as_posix())
            return
        for p in sorted(d.iterdir()):
            if p.is_dir() and p.name != "__pycache__":
                walk(p)
            elif p in used:
                out.append(p.relative_to(ROOT).as_posix())

    walk(ROOT / "src" / "vlmscope")
    return out


def rewrite(text: str, wanted: dict[str, list[str]]) -> str:
    """``dvc.yaml`` with each stage's ``stages/`` and ``src/`` deps replaced by ``wanted[stage]``.

    Line-based, so comments and the layout of everything else stay as written.
    """
    out: list[str] = []
    stage = None
    in_deps = False
    deps_indent = ""
    for line in text.splitlines(keepends=True):
        stripped = line.strip()
        indent = line[: len(line) - len(line.lstrip())]
        if len(indent) == 2 and stripped.endswith(":") and not stripped.startswith("-"):
            stage = stripped[:-1]
        if in_deps:
            if stripped.startswith("- ") and indent == deps_indent:
                if stripped[2:].lstrip("./").startswith(("stages/", "src/")):
                    continue
                out.append(line)
                continue
            in_deps = False
        out.append(line)
        if stripped == "deps:" and stage in wanted:
            in_deps = True
            deps_indent = indent + "  "
            out.extend(f"{deps_indent}- {d}\n" for d in wanted[stage])
    return "".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("stages", nargs="*", help="stage names (default: all)")
    ap.add_argument("--write", action="store_true", help="rewrite dvc.yaml in place")
    args = ap.parse_args()
    wanted: dict[str, dict[str, list[str]]] = {}
    for spec in all_stage_specs(ROOT):
        if args.stages and spec.name not in args.stages and spec.id not in args.stages:
            continue
        files = module_files(closure(script_imports(ROOT / spec.script)))
        deps = [spec.script, *covering_deps(files)]
        wanted.setdefault(spec.pipeline, {})[spec.name] = [from_root(d, spec.pipeline) for d in deps]
    for pipeline, stages in wanted.items():
        if args.write:
            path = ROOT / pipeline
            path.write_text(rewrite(path.read_text(), stages))
            print(f"rewrote the code deps of {len(stages)} stages in {pipeline}")
            continue
        for name, deps in stages.items():
            print(f"{pipeline}:{name}:")
            for dep in deps:
                print(f"  - {dep}")


if __name__ == "__main__":
    main()
