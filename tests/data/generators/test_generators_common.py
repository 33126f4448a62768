"""Contract tests every generator kind must pass: manifest, determinism, atomicity, errors."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest
from PIL import Image
from pydantic import ValidationError

from vlmscope.data.generators import GENERATORS, generate_dataset, make_config
from vlmscope.data.generators import base as gen_base
from vlmscope.data.manifest import SPLITS, load_dataset_info, read_manifest
from vlmscope.errors import ConfigError
from vlmscope.io.fingerprint import fingerprint_dir

KINDS = [
    ("spatial", None),
    ("color", None),
    ("relations", None),
    ("counting", "balanced"),
    ("counting", "distractors"),
    ("counting", "clustered"),
    ("counting", "scattered"),
    ("counting", "unseen-combinations"),
]


def _files(d: Path) -> dict[str, bytes]:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def test_registry_lists_the_four_kinds() -> None:
    assert GENERATORS.names() == ["color", "counting", "relations", "spatial"]
    assert GENERATORS.get("counting").variants == (
        "balanced", "distractors", "clustered", "scattered", "unseen-combinations",
    )
    assert GENERATORS.get("spatial").variants == ()


def test_unknown_kind_lists_valid_ones(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown generator 'spacial'; valid: color, counting, relations, spatial"):
        generate_dataset("spacial", tmp_path / "x", n=4, seed=0)


@pytest.mark.parametrize(("kind", "variant"), KINDS)
def test_manifest_contract(rendered: Callable[..., Path], kind: str, variant: str | None) -> None:
    d = rendered(kind, variant=variant)
    df = read_manifest(d)
    info = load_dataset_info(d)
    assert info.generator == kind
    assert info.seed == 0
    assert info.n_samples == len(df)
    assert info.fingerprint == fingerprint_dir(d, exclude={"dataset.json"})
    assert info.params["n"] == 40
    if variant:
        assert info.params["variant"] == variant
    assert df["sample_id"].n_unique() == len(df)
    assert df["sample_id"].str.starts_with(f"{kind}-").all()
    assert set(df["split"].unique()) <= set(SPLITS)
    assert set(df["answer_type"].unique()) <= {"choice", "count", "open"}
    # prompt is the question only: no image placeholder, no chat template
    assert not df["prompt"].str.contains("<image>|<\\|").any()
    # every image exists, is a PNG the size the config says, and every file is referenced
    images = set(df["image"].unique())
    assert images == {str(p.relative_to(d)) for p in (d / "images").glob("*.png")}
    with Image.open(d / sorted(images)[0]) as first:
        assert first.format == "PNG" and first.mode == "RGB"
    # choice rows: the answer is the option the index points at (or its letter)
    choice = df.filter(pl.col("answer_type") == "choice")
    for row in choice.iter_rows(named=True):
        opt = row["choices"][row["answer_index"]]
        assert row["answer"] in (opt, "ABCDEFGHIJ"[row["answer_index"]])
    if kind == "counting":
        assert (df["answer_type"] == "count").all()
        assert (df["answer"] == df["count"].cast(pl.String)).all()


@pytest.mark.parametrize(("kind", "variant"), KINDS)
def test_same_seed_gives_identical_bytes(tmp_path: Path, kind: str, variant: str | None) -> None:
    n = 12
    a = generate_dataset(kind, tmp_path / "a", n=n, seed=7, variant=variant)
    b = generate_dataset(kind, tmp_path / "b", n=n, seed=7, variant=variant)
    assert a == b
    fa, fb = _files(tmp_path / "a"), _files(tmp_path / "b")
    assert fa.keys() == fb.keys()
    assert [k for k in fa if fa[k] != fb[k]] == []
    c = generate_dataset(kind, tmp_path / "c", n=n, seed=8, variant=variant)
    assert c.fingerprint != a.fingerprint


@pytest.mark.parametrize(("kind", "variant"), [("spatial", None), ("relations", None), ("counting", "balanced")])
def test_split_is_about_eighty_twenty(tmp_path: Path, kind: str, variant: str | None) -> None:
    plan = GENERATORS.get(kind).plan(make_config(kind, n=200, seed=3, **({"variant": variant} if variant else {})))
    df = plan.manifest
    if kind == "relations":  # split per source image
        df = df.filter(pl.col("variant") == "original").unique("image_id")
    share = (df["split"] == "test").mean()
    assert share == pytest.approx(0.2, abs=0.01)


@pytest.mark.parametrize("fraction", [0.0, 0.5])
def test_test_fraction_is_honoured(fraction: float) -> None:
    plan = GENERATORS.get("spatial").plan(make_config("spatial", n=100, seed=1, test_fraction=fraction))
    assert (plan.manifest["split"] == "test").sum() == round(100 * fraction)


def test_split_does_not_move_shapes() -> None:
    a = GENERATORS.get("spatial").plan(make_config("spatial", n=50, seed=1, test_fraction=0.2)).manifest
    b = GENERATORS.get("spatial").plan(make_config("spatial", n=50, seed=1, test_fraction=0.5)).manifest
    assert a.drop("split").equals(b.drop("split"))
    assert not a["split"].equals(b["split"])


def test_crash_mid_render_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = gen_base.save_png
    calls = {"n": 0}

    def flaky(img: Image.Image, path: Path) -> None:
        calls["n"] += 1
        if calls["n"] > 5:
            raise RuntimeError("simulated crash while rendering image 6")
        real(img, path)

    monkeypatch.setattr(gen_base, "save_png", flaky)
    out = tmp_path / "ds"
    with pytest.raises(RuntimeError, match="simulated crash"):
        generate_dataset("spatial", out, n=20, seed=0)
    assert calls["n"] == 6
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []  # no temp directory left behind


def test_crash_keeps_previous_dataset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "ds"
    generate_dataset("color", out, n=6, seed=0)
    before = _files(out)

    def boom(img: Image.Image, path: Path) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(gen_base, "save_png", boom)
    with pytest.raises(KeyboardInterrupt):
        generate_dataset("color", out, n=6, seed=1)
    assert _files(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]


def test_regenerating_replaces_the_directory(tmp_path: Path) -> None:
    out = tmp_path / "ds"
    generate_dataset("spatial", out, n=8, seed=0)
    (out / "stale.txt").write_text("left over")
    info = generate_dataset("spatial", out, n=4, seed=0)
    assert not (out / "stale.txt").exists()
    assert len(read_manifest(out)) == 4 == info.n_samples
    assert len(list((out / "images").iterdir())) == 4


@pytest.mark.parametrize(
    ("kind", "params", "field"),
    [
        ("spatial", {"n": 0}, "n"),
        ("spatial", {"n": -5}, "n"),
        ("spatial", {"colors": ["red", "mauve"]}, "colors"),
        ("spatial", {"colors": ["red"]}, "colors"),
        ("spatial", {"colors": ["red", "red", "blue"]}, "colors"),
        ("spatial", {"shapes": ["hexagon"]}, "shapes"),
        ("spatial", {"relations": ["behind"]}, "relations"),
        ("spatial", {"test_fraction": 1.0}, "test_fraction"),
        ("color", {"max_shapes": 6}, None),
        ("relations", {"sizes": [2]}, "sizes"),
        ("relations", {"arrow_probability": 1.5}, "arrow_probability"),
        ("counting", {"counts": [1, 1]}, "counts"),
        ("counting", {"counts": [-1]}, "counts"),
        ("counting", {"variant": "distractors", "distractor_type": "red_circle"}, "distractor_type"),
        ("counting", {"variant": "unseen-combinations", "valid_combinations": ["pink_circle"]}, None),
        ("counting", {"n_distractors": 5}, None),
        ("counting", {"counts": [80], "variant": "distractors", "n_distractors": 5}, None),
    ],
)
def test_bad_params_name_the_field(kind: str, params: dict, field: str | None) -> None:
    params = {"n": 4, **params}
    with pytest.raises(ValidationError) as err:
        make_config(kind, **params)
    locs = [e["loc"] for e in err.value.errors()]
    if field is not None:
        assert locs and locs[0][0] == field


def test_unknown_param_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"unknown parameter\(s\) 'colour' for generator 'spatial'; valid: .*colors"):
        make_config("spatial", n=4, colour="red")


def test_variant_on_a_kind_without_variants(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="generator 'spatial' has no variants"):
        generate_dataset("spatial", tmp_path / "x", n=4, seed=0, variant="balanced")
    assert not (tmp_path / "x").exists()


def test_dataset_json_records_params(rendered: Callable[..., Path]) -> None:
    d = rendered("counting", variant="unseen-combinations")
    data = json.loads((d / "dataset.json").read_text())
    assert data["generator"] == "counting"
    assert data["params"]["test_fraction"] == 0.0
    assert data["params"]["n_valid_combinations"] == 6
    assert len(data["extra"]["valid_combinations"]) == 6
    assert data["extra"]["n_images"] == 40
