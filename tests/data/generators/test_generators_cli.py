"""`vlmscope generate ...` through typer's CliRunner on the real root app."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from vlmscope.cli.app import app
from vlmscope.data.manifest import load_dataset_info, read_manifest

runner = CliRunner()


def test_generate_writes_a_dataset(tmp_path: Path) -> None:
    out = tmp_path / "spatial"
    res = runner.invoke(app, ["generate", "spatial", "--out", str(out), "--n", "8", "--seed", "3",
                              "--set", "colors=red,blue,green", "--set", "size-max=30"])
    assert res.exit_code == 0, res.output
    assert f"wrote 8 samples (8 images) to {out}" in res.output
    df = read_manifest(out)
    assert len(df) == 8
    info = load_dataset_info(out)
    assert info.seed == 3
    assert info.params["colors"] == ["red", "blue", "green"]
    assert info.params["size_max"] == 30
    assert set(df["subject_color"]) | set(df["reference_color"]) <= {"red", "blue", "green"}


def test_variant_and_yaml_values(tmp_path: Path) -> None:
    out = tmp_path / "c"
    res = runner.invoke(app, ["generate", "counting", "--out", str(out), "--n", "6", "--variant", "distractors",
                              "--set", "n_distractors=9", "--set", "counts=[1, 2]"])
    assert res.exit_code == 0, res.output
    df = read_manifest(out)
    assert set(df["n_distractors"]) == {9}
    assert set(df["count"]) <= {1, 2}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["spatial", "--n", "-5"], "invalid parameter for spatial: --n: Input should be greater than 0 (got -5)"),
        (["spatial", "--n", "4", "--set", "colors=red,mauve"], "--set colors: unknown colour 'mauve'"),
        (["color", "--n", "4", "--set", "colour=red"], "unknown parameter(s) 'colour' for generator 'color'"),
        (["spatial", "--n", "4", "--set", "size_max"], "--set expects key=value, got 'size_max'"),
        (["spatial", "--n", "4", "--variant", "x"], "generator 'spatial' has no variants"),
        (["counting", "--n", "4", "--variant", "dense"], "--variant: Input should be 'balanced'"),
        (["counting", "--n", "4", "--set", "n_distractors=3"], "n_distractors applies only to variant 'distractors'"),
        (["relations", "--n", "4", "--set", "n=5"], "--n given twice"),
    ],
)
def test_bad_parameters_exit_1_with_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    out = tmp_path / "x"
    res = runner.invoke(app, ["generate", args[0], "--out", str(out), *args[1:]])
    assert res.exit_code == 1, res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1, res.output
    assert message in lines[0]
    assert "Traceback" not in res.output
    assert not out.exists()


def test_help_lists_kinds_and_parameters() -> None:
    res = runner.invoke(app, ["generate", "--help"])
    assert res.exit_code == 0
    for kind in ("spatial", "color", "relations", "counting"):
        assert kind in res.output
    res = runner.invoke(app, ["generate", "relations", "--help"])
    assert res.exit_code == 0
    assert "arrow_probability" in res.output and "mask_remove_probability" in res.output


def test_params_file_is_the_params_yaml_section(tmp_path: Path) -> None:
    """`--params` takes the section as params.yaml writes it; --set and options override it."""
    section = tmp_path / "color.yaml"
    section.write_text("kind: color\nn: 6\nseed: 3\ncolors: [red, blue, green]\n")
    res = runner.invoke(app, ["generate", "color", "--out", str(tmp_path / "d"), "--params", str(section), "--n", "4"])
    assert res.exit_code == 0, res.output
    assert "wrote 4 samples" in res.output
    info = load_dataset_info(tmp_path / "d")
    assert info.seed == 3 and info.params["colors"] == ["red", "blue", "green"]
    section.write_text("kind: spatial\nn: 6\n")
    res = runner.invoke(app, ["generate", "color", "--out", str(tmp_path / "e"), "--params", str(section)])
    assert res.exit_code == 1 and "kind 'spatial' is not 'color'" in res.output
