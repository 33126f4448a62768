"""A persisted store is reused only when the code that made it is the same (DVC ``persist: true``)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import zarr

from vlmscope import open_activations
from vlmscope.activations.extract import ExtractConfig, extract
from vlmscope.activations.store import store_files
from vlmscope.errors import StoreMismatch
from vlmscope.io.import_graph import code_hash, package_root

CONFIG = ExtractConfig(batch_size=4, shard_samples=6, dtype="float32", positions=("last",), device="cpu")


@pytest.fixture(scope="module")
def reference(tiny_model, spatial12, tmp_path_factory) -> Path:
    path, adapter = tiny_model
    return extract(CONFIG, path, spatial12, tmp_path_factory.mktemp("ref") / "ref.zarr", adapter=adapter)


def _set_attr(store: Path, **attrs: str) -> None:
    group = zarr.open_group(zarr.storage.LocalStore(store), mode="r+")
    group.attrs.update(attrs)


def test_store_records_the_code_that_made_it(reference: Path) -> None:
    attrs = open_activations(reference).attrs
    assert attrs["code_hash"] == code_hash("vlmscope.activations.extract")
    assert attrs["vlmscope_version"]


def test_store_from_other_code_is_refused_then_rebuilt(tmp_path: Path, tiny_model, spatial12, reference) -> None:
    path, adapter = tiny_model
    out = tmp_path / "old.zarr"
    shutil.copytree(reference, out)
    _set_attr(out, code_hash="0" * 64)
    with pytest.raises(StoreMismatch, match=r"code: store was written by vlmscope .*code sha256 000000000000"):
        extract(CONFIG, path, spatial12, out, adapter=adapter)
    extract(CONFIG, path, spatial12, out, adapter=adapter, overwrite=True)  # what the DVC stage does
    rebuilt = open_activations(out)
    assert rebuilt.attrs["code_hash"] == code_hash("vlmscope.activations.extract")
    np.testing.assert_array_equal(rebuilt["hidden"].values, open_activations(reference)["hidden"].values)

    _set_attr(out, vlmscope_version="0.0.0")  # an older release, same source: rebuilt too
    with pytest.raises(StoreMismatch, match=r"code: store was written by vlmscope 0\.0\.0"):
        extract(CONFIG, path, spatial12, out, adapter=adapter)


def test_a_change_to_capture_rebuilds_the_persisted_store(tmp_path: Path, tiny_model, spatial12, reference) -> None:
    """The stage's call (overwrite=True) under an edited capture.py rebuilds; under the same code it keeps the store."""
    path, _ = tiny_model
    out = tmp_path / "s.zarr"
    shutil.copytree(reference, out)
    src = tmp_path / "src"
    shutil.copytree(package_root() / "vlmscope", src / "vlmscope", ignore=shutil.ignore_patterns("__pycache__"))
    run = (
        "import sys; from vlmscope.activations.extract import ExtractConfig, extract; "
        f"extract(ExtractConfig.model_validate_json({CONFIG.model_dump_json()!r}), sys.argv[1], sys.argv[2], "
        "sys.argv[3], overwrite=True)"
    )

    def stage() -> None:
        env = {**os.environ, "PYTHONPATH": str(src)}
        proc = subprocess.run(
            [sys.executable, "-c", run, str(path), str(spatial12), str(out)],
            env=env, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-3000:]

    before = {p: p.stat().st_mtime_ns for p in store_files(out)}
    stage()  # same code: the finished store is kept as it is
    assert {p: p.stat().st_mtime_ns for p in store_files(out)} == before

    capture = src / "vlmscope" / "activations" / "capture.py"
    capture.write_text(capture.read_text() + "\n# a fix to capture\n")
    stage()
    attrs = open_activations(out).attrs
    assert attrs["code_hash"] == code_hash("vlmscope.activations.extract", root=src)
    assert attrs["code_hash"] != open_activations(reference).attrs["code_hash"]
    assert {p: p.stat().st_mtime_ns for p in store_files(out)} != before
    # same numbers up to the attention kernel (the reference ran eager attention, the stage the default)
    np.testing.assert_allclose(
        open_activations(out)["hidden"].values, open_activations(reference)["hidden"].values, rtol=1e-4, atol=1e-6
    )
