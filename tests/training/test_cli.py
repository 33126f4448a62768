"""The `train` group, `merge` and `gradcam` at the CLI edge: bad input gives one line and exit 1."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from vlmscope.cli.app import app
from vlmscope.data.manifest import read_manifest, write_dataset

runner = CliRunner()


def _run(*args: str) -> tuple[int, str]:
    res = runner.invoke(app, [str(a) for a in args])
    return res.exit_code, res.output


@pytest.fixture(scope="module")
def empty_answer_ds(tmp_path_factory: pytest.TempPathFactory, bbox_ds: Path) -> Path:
    """One row whose answer is a bare bracket: nothing is left for the loss."""
    src = read_manifest(bbox_ds).head(3)

    def build(tmp: Path) -> pl.DataFrame:
        for r in src.iter_rows(named=True):
            (tmp / r["image"]).write_bytes((bbox_ds / r["image"]).read_bytes())
        return src.with_columns(pl.when(pl.col("sample_id") == "vg1").then(pl.lit("[0.1, 0.2, 0.3, 0.4]"))
                                .otherwise(pl.col("answer")).alias("answer"))  # fmt: skip

    out = tmp_path_factory.mktemp("empty") / "ds"
    write_dataset(out, generator="test", params={}, seed=0, build=build)
    return out


def test_commands_are_mounted() -> None:
    code, out = _run("train", "--help")
    assert code == 0 and all(c in out for c in ("projector", "lora", "output-layer", "clip", "default"))
    for top in ("merge", "gradcam"):
        assert _run(top, "--help")[0] == 0


def test_bad_parameter_is_one_line(composite: Path, color_ds: Path, tmp_path: Path) -> None:
    code, out = _run("train", "projector", "--model", composite, "--dataset", color_ds, "--out", tmp_path / "o",
                     "--subsample", "0")  # fmt: skip
    assert code == 1 and out.startswith("error: invalid parameter") and "proportion" in out
    assert len(out.strip().splitlines()) == 1


def test_merge_needs_exactly_one_source(composite: Path, tmp_path: Path) -> None:
    code, out = _run("merge", "--base", composite, "--out", tmp_path / "m")
    assert code == 1 and "exactly one of --adapter, --projector, --tensors or --vision-tower" in out
    code, out = _run("merge", "--base", composite, "--out", tmp_path / "m", "--projector", tmp_path / "nope")
    assert code == 1 and "no such file" in out


def test_no_trainable_parameters(composite: Path, color_ds: Path, tmp_path: Path) -> None:
    code, out = _run("train", "lora", "--model", composite, "--dataset", color_ds, "--out", tmp_path / "o",
                     "--target-modules", "qkv,fc9", "--max-steps", "1")  # fmt: skip
    assert code == 1 and "no trainable parameters selected" in out and "q_proj" in out


def test_empty_answer_span(composite: Path, empty_answer_ds: Path, tmp_path: Path) -> None:
    code, out = _run("train", "projector", "--model", composite, "--dataset", empty_answer_ds,
                     "--out", tmp_path / "o", "--max-steps", "1")  # fmt: skip
    assert code == 1 and "'vg1'" in out and "tokenizes to nothing" in out
    assert not (tmp_path / "o").exists()


def test_output_layer_missing_store(composite: Path, tmp_path: Path) -> None:
    code, out = _run("train", "output-layer", "--store", tmp_path / "none.zarr", "--model", composite,
                     "--out", tmp_path / "o")  # fmt: skip
    assert code == 1 and "none.zarr" in out


def test_clip_on_a_generative_model_is_refused(composite: Path, color_ds: Path, tmp_path: Path) -> None:
    code, out = _run("train", "clip", "--model", composite, "--dataset", color_ds, "--out", tmp_path / "o")
    assert code == 1 and "not a contrastive image-text model" in out
