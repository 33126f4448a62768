"""Which vlmscope modules a piece of code can run: the static import graph of the package.

Two things rest on it. A cached stage is honest only if ``dvc.yaml`` lists,
under its ``deps``, every module its script can import (the pipeline's test
derives that set here), and a persisted store is reused only when the code
that made it is the same (``code_hash`` goes into the store's identity).

The graph is read from the source with ``ast``, not from ``sys.modules``, so
it does not depend on what else a process happened to import. It is
conservative: imports inside functions count (they run when the function
does), imports under ``if TYPE_CHECKING:`` do not (they never run). Lazy
re-exports (``from vlmscope.probing import run_probes``, served by a package
``__getattr__``) resolve to the module that defines the name, so importing a
package's public name does not drag in every module of the package.
"""

from __future__ import annotations

import ast
import hashlib
import importlib
import os
from collections.abc import Iterable
from pathlib import Path

__all__ = [
    "PACKAGE",
    "package_root",
    "module_file",
    "direct_imports",
    "script_imports",
    "closure",
    "module_files",
    "package_graph",
    "find_cycles",
    "code_hash",
]

PACKAGE = "vlmscope"


def package_root() -> Path:
    """The directory holding ``vlmscope/__init__.py`` (``src/`` in a checkout)."""
    return Path(__file__).resolve().parents[2]


def module_file(name: str, root: Path | None = None) -> Path | None:
    """The source file of module ``name`` (a package's ``__init__.py``), or None if there is none."""
    root = root or package_root()
    base = root.joinpath(*name.split("."))
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    return None


def _parents(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(tree: ast.Module, *, skip_lazy_getattr: bool) -> Iterable[ast.Import | ast.ImportFrom]:
    """Every import statement that can run, in any scope."""
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        if skip_lazy_getattr and isinstance(node, ast.FunctionDef) and node.name == "__getattr__":
            continue  # a package's lazy re-exports: resolved per imported name instead
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def _absolute(node: ast.ImportFrom, importer: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = importer.split(".")
    if not is_package:
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _defining_module(package: str, name: str, root: Path) -> set[str]:
    """Where ``from package import name`` finds ``name``: the module that defines it.

    A name the package serves lazily is looked up on the imported package (its
    ``__module__``, or the package's ``_WHERE`` map for constants); if that
    fails, every module of the package counts (never too few).
    """
    try:
        pkg = importlib.import_module(package)
        obj = getattr(pkg, name)
    except Exception:  # noqa: BLE001 - an unresolvable name falls back to the whole package
        return _all_modules(package, root)
    mod = getattr(obj, "__module__", None) if not isinstance(obj, type(pkg)) else obj.__name__
    if isinstance(mod, str) and mod.startswith(PACKAGE):
        return {mod}
    where = getattr(pkg, "_WHERE", None)
    if isinstance(where, dict) and name in where:
        target = str(where[name])
        for candidate in (target, f"{package}.{target}"):
            if module_file(candidate, root) is not None:
                return {candidate}
    if name in vars(pkg) and module_file(package, root) is not None:
        return set()  # defined in the package's own __init__ (already counted)
    return _all_modules(package, root)


def _all_modules(package: str, root: Path) -> set[str]:
    base = root.joinpath(*package.split("."))
    if not base.is_dir():
        return {package} if module_file(package, root) else set()
    out = set()
    for p in base.rglob("*.py"):
        rel = p.relative_to(root).with_suffix("")
        parts = list(rel.parts[:-1]) if rel.name == "__init__" else list(rel.parts)
        out.add(".".join(parts))
    return out


def _imports_in(source: str, importer: str, is_package: bool, root: Path) -> set[str]:
    tree = ast.parse(source)
    out: set[str] = set()
    for node in _import_nodes(tree, skip_lazy_getattr=is_package):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
            for t in targets:
                if t.split(".")[0] == PACKAGE and module_file(t, root) is not None:
                    out.add(t)
            continue
        base = _absolute(node, importer, is_package)
        if base.split(".")[0] != PACKAGE or module_file(base, root) is None:
            continue
        out.add(base)
        for alias in node.names:
            sub = f"{base}.{alias.name}"
            if module_file(sub, root) is not None:
                out.add(sub)
            elif alias.name != "*" and module_file(base, root).name == "__init__.py":
                out |= _defining_module(base, alias.name, root)
    return out


def direct_imports(name: str, root: Path | None = None) -> set[str]:
    """The vlmscope modules that module ``name``'s source imports (any scope)."""
    root = root or package_root()
    path = module_file(name, root)
    if path is None:
        raise ModuleNotFoundError(f"{name}: no such module under {root}")
    return _imports_in(path.read_text(), name, path.name == "__init__.py", root)


def script_imports(script: str | os.PathLike[str], root: Path | None = None) -> set[str]:
    """The vlmscope modules a script outside the package (``stages/probe.py``) imports directly."""
    root = root or package_root()
    return _imports_in(Path(script).read_text(), "__main__", False, root)


def closure(names: Iterable[str], root: Path | None = None) -> set[str]:
    """``names`` and everything they import, transitively, with the parent packages Python runs on the way."""
    root = root or package_root()
    seen: set[str] = set()
    todo = list(names)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo.extend(p for p in _parents(name) if p not in seen)
        todo.extend(m for m in direct_imports(name, root) if m not in seen)
    return seen


DATA_SUFFIXES = (".json",)
"""A module's data sidecar (``published.py`` reads ``published.json``) counts as part of the module."""


def module_files(names: Iterable[str], root: Path | None = None) -> list[Path]:
    """Source files of ``names`` and their data sidecars (``x.py`` -> ``x.json``), sorted, relative to ``root``.

    A sidecar is what the module reads instead of holding its data in code,
    so a change to it must rerun the stages and rebuild the stores that
    depend on the module, exactly as a change to the code would.
    """
    root = root or package_root()
    files = {module_file(n, root) for n in names}
    sidecars = {f.with_suffix(s) for f in files if f is not None for s in DATA_SUFFIXES}
    found = {f for f in files if f is not None} | {f for f in sidecars if f.is_file()}
    return sorted(f.relative_to(root) for f in found)


def package_graph(root: Path | None = None, depth: int = 2) -> dict[str, set[str]]:
    """Edges between packages (names cut to ``depth`` parts: ``vlmscope.training``), self-edges left out.

    Top-level modules (``vlmscope.errors``) are nodes of their own; the root
    package ``vlmscope`` is the node for ``vlmscope/__init__.py``.
    """
    root = root or package_root()
    graph: dict[str, set[str]] = {}
    for mod in _all_modules(PACKAGE, root):
        src = ".".join(mod.split(".")[:depth])
        for dep in direct_imports(mod, root):
            dst = ".".join(dep.split(".")[:depth])
            if dst != src:
                graph.setdefault(src, set()).add(dst)
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one node (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []
    counter = 0

    def visit(v: str) -> None:
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in sorted(set(graph) | {w for ws in graph.values() for w in ws}):
        if v not in index:
            visit(v)
    return sorted(groups)


def code_hash(*modules: str, root: Path | None = None) -> str:
    """SHA-256 over the source of ``modules`` and all they import: the identity of the code that runs.

    Paths are hashed relative to the package root, so two checkouts of the
    same commit agree; any edit to a module in the closure changes it.
    """
    root = root or package_root()
    h = hashlib.sha256()
    for rel in module_files(closure(modules, root), root):
        h.update(rel.as_posix().encode() + b"\0")
        h.update((root / rel).read_bytes())
        h.update(b"\0")
    return h.hexdigest()
