"""The lazy re-export helper: names resolve to their submodule, unknown names fail like a normal module."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

from vlmscope._lazy import lazy_exports


def test_names_resolve_to_their_submodule_on_first_access(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pkg = tmp_path / "lazy_demo_pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "heavy.py").write_text("VALUE = 41\nOTHER = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    where, getattr_ = lazy_exports("lazy_demo_pkg", {"heavy": ("VALUE", "OTHER")})
    assert where == {"VALUE": "lazy_demo_pkg.heavy", "OTHER": "lazy_demo_pkg.heavy"}
    assert "lazy_demo_pkg.heavy" not in sys.modules
    assert getattr_("VALUE") == 41
    assert "lazy_demo_pkg.heavy" in sys.modules
    monkeypatch.delitem(sys.modules, "lazy_demo_pkg.heavy")
    monkeypatch.delitem(sys.modules, "lazy_demo_pkg")


def test_unknown_name_raises_attribute_error_naming_the_package() -> None:
    _, getattr_ = lazy_exports("vlmscope.data", {"manifest": ("MANIFEST",)})
    with pytest.raises(AttributeError, match=r"module 'vlmscope.data' has no attribute 'nope'"):
        getattr_("nope")


@pytest.mark.parametrize(
    "package", ["vlmscope.activations", "vlmscope.lens", "vlmscope.probing", "vlmscope.report", "vlmscope.training"]
)
def test_every_exported_name_is_served(package: str) -> None:
    pkg = importlib.import_module(package)
    assert set(pkg._WHERE) == set(pkg.__all__)
    for name in pkg.__all__:
        assert getattr(pkg, name) is getattr(importlib.import_module(pkg._WHERE[name]), name)
