"""Family knowledge stays inside ``vlmscope.models``: no family or architecture name, no private adapter access.

Every other package asks the adapter (``vision_blocks()``, ``vision_feed()``,
``projector_module_paths()``, ``attention_module(i)``, ``is_classifier`` ...)
instead of naming a family, a ``model_type`` or a module of a family's tree.
Code is checked (identifiers, imported module paths, string literals);
docstrings and comments are prose and may cite the models a study used.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from vlmscope.io.import_graph import direct_imports, find_cycles, package_graph, package_root
from vlmscope.models import ADAPTERS, list_families
from vlmscope.models.families.composite import LMS, TOWERS
from vlmscope.models.tiny import TINY, tiny_families

SRC = package_root() / "vlmscope"

ALLOWED: dict[str, frozenset[str]] = {
    # `vlmscope train clip`: a CLI command and trainer name (kept for users and dvc.yaml), not a family lookup
    "cli/train.py": frozenset({"clip"}),
    "training/__init__.py": frozenset({"clip"}),
    "training/trainers/clip.py": frozenset({"clip"}),
    "attribution/gradcam.py": frozenset({"clip"}),  # imports the trainer's prototype classifier
    "report/studies.py": frozenset({"clip", "llava"}),  # the trainer above; the llava dataset importer below
    "report/comparison.py": frozenset({"clip"}),  # the `train clip` trainer's name in training_args.json
    # `vlmscope import llava`: LLaVA's conversation-JSON dataset format, a data source rather than a model
    "cli/importers.py": frozenset({"llava"}),
    "data/importers/__init__.py": frozenset({"llava"}),
    "data/importers/llava.py": frozenset({"llava"}),
    # `vlmscope models composite`: the models command group's own verb for models/families/composite.py
    "cli/models.py": frozenset({"composite"}),
}
"""Names that are user-facing command / format names; each entry says why."""

NOT_ARCHITECTURES = frozenset({"mae"})
"""``mae`` is also the mean-absolute-error metric (``count/mae``); the MAE tower is named ``vit_mae``."""


def family_names() -> set[str]:
    """Families, tiny builds, ``model_type`` values, family modules, composite towers and LMs (lower case)."""
    list_families()
    tiny_families()
    names = set(ADAPTERS.names()) | set(TINY.names())
    for name in ADAPTERS.names():
        cls = ADAPTERS.get(name)
        names |= {*cls.model_types, *cls.related_model_types}
    names |= {p.stem for p in (SRC / "models" / "families").glob("*.py") if p.stem != "__init__"}
    names |= set(TOWERS) | set(LMS) | {"vit_mae"}
    return {n.lower() for n in names} - NOT_ARCHITECTURES


def _docstrings(tree: ast.AST) -> set[int]:
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            out.add(id(node.value))  # module / class / function docstrings and attribute docstrings
    return out


def code_words(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, text) of every identifier, imported module path and non-docstring string literal.

    Attribute names are left out: they name other libraries' APIs (``ndarray.clip``).
    """
    docs = _docstrings(tree)
    out: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
            out.append((node.lineno, node.value))
        elif isinstance(node, ast.Name):
            out.append((node.lineno, node.id))
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            out.append((node.lineno, node.name))
        elif isinstance(node, ast.arg):
            out.append((node.lineno, node.arg))
        elif isinstance(node, ast.Import):
            out.extend((node.lineno, a.name.replace(".", " ")) for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            out.append((node.lineno, " ".join([*(node.module or "").split("."), *(a.name for a in node.names)])))
    return out


def mentions(text: str, names: set[str]) -> set[str]:
    """The names that occur in ``text`` as whole words (``llava-style`` yes, ``clip_grad_norm_`` no)."""
    low = text.lower()
    return {n for n in names if re.search(rf"(?<![a-z0-9_]){re.escape(n)}(?![a-z0-9_])", low)}


def outside_models() -> list[Path]:
    return sorted(p for p in SRC.rglob("*.py") if p.relative_to(SRC).parts[0] != "models")


def test_the_name_list_covers_families_model_types_and_architectures() -> None:
    names = family_names()
    assert {"llava", "llava_next", "qwen2_vl", "qwen2.5-vl", "paligemma", "internvl", "composite", "siglip"} <= names
    assert {"llama", "qwen3", "dinov2", "vit_mae", "paligemma2", "llava-interleave"} <= names
    assert "mae" not in names


def test_mentions_match_whole_words_only() -> None:
    names = family_names()
    assert mentions("a LLaVA-style model", names) == {"llava"}
    assert mentions("qwen2-vl / Qwen2.5-VL", names) >= {"qwen2-vl", "qwen2.5-vl"}
    assert mentions("clip_grad_norm_ llavaX count/mae", names) == set()


def test_code_words_see_code_and_skip_prose() -> None:
    planted = ast.parse(
        '"""A LLaVA-style docstring."""\n'
        "import vlmscope.models.families.qwen_vl\n"
        "def f(adapter):\n"
        '    """Docstrings may cite PaliGemma."""\n'
        "    # comments may cite InternVL\n"
        "    return adapter.family == 'composite' or adapter.model.clip(0, 1)\n"
    )
    found = set().union(*(mentions(t, family_names()) for _, t in code_words(planted)))
    assert found == {"qwen_vl", "composite"}


def test_no_family_or_architecture_name_outside_models() -> None:
    names = family_names()
    found = []
    for path in outside_models():
        rel = path.relative_to(SRC).as_posix()
        allowed = ALLOWED.get(rel, frozenset())
        for line, text in code_words(ast.parse(path.read_text())):
            hit = mentions(text, names) - allowed
            if hit:
                found.append(f"{rel}:{line}: {sorted(hit)} in {text[:60]!r}")
    assert not found, "family knowledge outside vlmscope.models (declare it on the adapter):\n" + "\n".join(found)


def test_the_allow_list_has_no_stale_entries() -> None:
    names = family_names()
    for rel, allowed in ALLOWED.items():
        tree = ast.parse((SRC / rel).read_text())
        used = set().union(*(mentions(t, names) for _, t in code_words(tree)))
        assert allowed <= used, f"{rel}: {sorted(allowed - used)} allowed but no longer used; drop the entry"


MODEL_TREE = ("vision_tower", "multi_modal_projector", "vision_model", "visual_projection", "self_attn",
              "vision_feature_layer", "vision_feature_select_strategy", "logit_bias", "language_model")  # fmt: skip
"""Module and config names of families' transformers trees: adapters answer with them."""


def test_no_module_tree_name_or_private_adapter_access_outside_models() -> None:
    found = []
    for path in outside_models():
        rel = path.relative_to(SRC).as_posix()
        tree = ast.parse(path.read_text())
        docs = _docstrings(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute):
                if node.attr in MODEL_TREE:
                    found.append(f"{rel}:{node.lineno}: .{node.attr}")
                owner = node.value.id if isinstance(node.value, ast.Name) else getattr(node.value, "attr", "")
                if owner == "adapter" and node.attr.startswith("_"):
                    found.append(f"{rel}:{node.lineno}: adapter.{node.attr}")
            elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
                if node.value in MODEL_TREE:
                    found.append(f"{rel}:{node.lineno}: {node.value!r}")
    assert not found, "model internals used outside vlmscope.models:\n" + "\n".join(found)


@pytest.mark.parametrize("module", ["vlmscope.models.registry", "vlmscope.models.sidecar", "vlmscope.models.tiny_parts"])
def test_leaf_modules_import_no_family_and_no_tiny_driver(module: str) -> None:
    """What the module's own imports reach (the parent package's ``__init__`` aside)."""
    reached, todo = set(), [module]
    while todo:
        name = todo.pop()
        if name not in reached:
            reached.add(name)
            todo.extend(direct_imports(name))
    assert not any(m.startswith("vlmscope.models.families") for m in reached)
    assert "vlmscope.models.tiny" not in reached


def test_families_and_tiny_do_not_import_each_other() -> None:
    graph = package_graph(depth=4)
    families = [m for m in graph if m.startswith("vlmscope.models.families.")]
    assert families, "expected the family modules in the graph"
    for fam in families:
        assert "vlmscope.models.tiny" not in graph[fam], fam
    assert "vlmscope.models.tiny" in graph and not any(
        d.startswith("vlmscope.models.families.") for d in graph["vlmscope.models.tiny"]
    )


def test_no_import_cycle_inside_models() -> None:
    graph = package_graph(depth=4)
    inside = {k: {d for d in v if d.startswith("vlmscope.models")} for k, v in graph.items()
              if k.startswith("vlmscope.models")}  # fmt: skip
    assert find_cycles(inside) == []
