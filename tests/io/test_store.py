"""io/store.py: open a store and check a variable, one error naming store and variable."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from vlmscope.activations.store import open_store
from vlmscope.errors import NotFound, StoreError
from vlmscope.io.store import require_complete, require_variable


def _ds() -> xr.Dataset:
    return xr.Dataset(
        {"hidden": (("sample", "layer", "dim"), np.zeros((2, 3, 4))), "attn": (("sample", "stat", "layer"), np.zeros((2, 1, 3)))},
        attrs={"complete": True},
    )


def test_require_variable_names_store_variable_and_fix() -> None:
    ds = _ds()
    assert require_variable(ds, "hidden", ("sample", "layer", "dim"), path="s.zarr").dims == ("sample", "layer", "dim")
    assert require_variable(ds, "hidden", ("sample", "layer"), exact=False).name == "hidden"
    with pytest.raises(StoreError, match=r"^s.zarr: no variable 'mlp' in the store \(has: attn, hidden\); .*extract --mlp"):
        require_variable(ds, "mlp", path="s.zarr")
    with pytest.raises(StoreError, match=r"^the in-memory store: no variable 'hidden_image_mean' .*--positions image_mean"):
        require_variable(ds, "hidden_image_mean")
    with pytest.raises(StoreError, match=r"s.zarr: variable 'attn' has dims \('sample', 'stat', 'layer'\), expected "
                       r"\('sample', 'layer', '...'\)"):
        require_variable(ds, "attn", ("sample", "layer"), path="s.zarr", exact=False)
    with pytest.raises(StoreError, match=r"variable 'hidden' has dims .* expected \('sample', 'layer'\)$"):
        require_variable(ds, "hidden", ("sample", "layer"))


def test_open_store_checks_completeness_and_existence(tmp_path: Path) -> None:
    ds = _ds()
    assert open_store(ds) is ds and require_complete(ds) is ds
    with pytest.raises(StoreError, match="incomplete"):
        require_complete(ds.assign_attrs(complete=False))
    with pytest.raises(StoreError, match="incomplete"):
        open_store(ds.assign_attrs(complete=False))
    with pytest.raises(NotFound, match="no activation store here"):
        open_store(tmp_path / "none.zarr")
