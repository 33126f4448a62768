"""Hostile and odd inputs (issue 16, point 4): each ends in one clear line or a warning, never a traceback.

Cases: a decompression-bomb image, a broken ``--set`` value, ``--out .``, a
mistyped local model path, a ``--family`` that contradicts the checkpoint and
a probe on a handful of samples.
"""

from __future__ import annotations

import json
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from vlmscope.cli.app import app
from vlmscope.errors import ConfigError, ImageError, ModelError, NotFound, SmallSampleWarning

runner = CliRunner()


def bomb_png(path: Path, width: int = 30000, height: int = 30000) -> Path:
    """A ~60-byte PNG whose header declares ``width`` x ``height`` pixels (no pixel data needed to refuse it)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * 16)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    return path


def one_line_error(result, *needles: str) -> str:
    """The CLI's error output: exit 1, one line, no traceback, containing every needle."""
    err = result.stderr if hasattr(result, "stderr") else result.output
    assert result.exit_code == 1, (result.exit_code, result.output, result.exception)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]


# -- (a) decompression bomb -------------------------------------------------------------------------


def test_a_bomb_image_is_an_image_error_naming_file_sample_and_row(tmp_path: Path) -> None:
    from vlmscope.data.reader import load_image

    path = bomb_png(tmp_path / "bomb.png")
    with pytest.raises(ImageError, match=r"bomb\.png: image of sample 's7' \(manifest row 7\) is too large"):
        load_image(path, sample_id="s7", row=7)


def test_the_pixel_limit_is_a_parameter_checked_before_decoding(tmp_path: Path) -> None:
    from PIL import Image

    from vlmscope.data.reader import ImageCache, load_image

    path = tmp_path / "ok.png"
    Image.new("RGB", (40, 30)).save(path)
    assert load_image(path, max_pixels=1200).size == (40, 30)
    with pytest.raises(ImageError, match=r"declares 40x30 = 1200 pixels, over the limit of 1199"):
        load_image(path, max_pixels=1199)
    with pytest.raises(ImageError, match="over the limit of 100"):
        ImageCache(max_pixels=100).get(path)
    # between PIL's limit and twice it PIL only warns; vlmscope's default limit refuses it as one bad image
    with pytest.raises(ImageError, match="declares 10000x10000"):
        load_image(bomb_png(tmp_path / "big.png", 10000, 10000))


def test_the_limit_is_a_config_field_of_extract_and_evaluate_reachable_by_set() -> None:
    from vlmscope.activations.config import ExtractConfig
    from vlmscope.activations.loader import SampleTable
    from vlmscope.cli.options import build_config
    from vlmscope.data.reader import MAX_IMAGE_PIXELS, PIL_PIXEL_CEILING
    from vlmscope.evaluation.config import EvaluateConfig

    assert SampleTable.__dataclass_fields__["max_pixels"].default == MAX_IMAGE_PIXELS
    for cls in (ExtractConfig, EvaluateConfig):
        field = cls.model_fields["max_image_pixels"]
        assert field.default == MAX_IMAGE_PIXELS
        assert build_config(cls, sets=["max_image_pixels=1000"]).max_image_pixels == 1000
        with pytest.raises(ValueError):
            build_config(cls, sets=[f"max_image_pixels={PIL_PIXEL_CEILING + 1}"])


def test_extract_skips_a_bomb_under_on_error_skip_and_stops_naming_it_otherwise(tmp_path, tiny_checkpoint, tiny_dataset):
    from vlmscope import open_activations
    from vlmscope.activations.extract import ExtractConfig, extract, skipped_csv_path
    from vlmscope.errors import DatasetError

    data = tmp_path / "data"
    shutil.copytree(tiny_dataset("spatial", 12), data)
    row = pl.read_parquet(data / "manifest.parquet").row(3, named=True)
    bomb_png(data / row["image"])
    model = tiny_checkpoint("composite")
    base = dict(batch_size=4, shard_samples=6, dtype="float32", device="cpu")
    with pytest.raises(DatasetError, match=rf"image of sample '{row['sample_id']}' \(manifest row 3\) is too large"):
        extract(ExtractConfig(**base), model, data, tmp_path / "stop")
    out = extract(ExtractConfig(**base, on_error="skip"), model, data, tmp_path / "skip")
    store = open_activations(out)
    assert row["sample_id"] not in store.sample.values and store.sizes["sample"] == 11
    assert np.isfinite(store.hidden.values).all()
    every = open_activations(out, include_skipped=True)
    assert np.isnan(every.hidden.sel(sample=row["sample_id"]).values).all()
    assert "is too large" in skipped_csv_path(out).read_text()


def test_importers_drop_a_bomb_as_an_unreadable_image_instead_of_crashing(tmp_path: Path) -> None:
    from PIL import Image

    from vlmscope.data.importers.common import image_readable
    from vlmscope.data.importers.countbench import _decode

    ok = tmp_path / "ok.png"
    Image.new("RGB", (8, 8)).save(ok)
    assert image_readable(ok) and _decode(ok.read_bytes()) == "png"
    for w in (30000, 10000):  # above PIL's own ceiling (it raises) and between its limit and the ceiling (it warns)
        bomb = bomb_png(tmp_path / f"bomb{w}.png", w, w)
        assert not image_readable(bomb)
        assert _decode(bomb.read_bytes()) is None


# -- (b) --set with broken YAML --------------------------------------------------------------------


@pytest.mark.parametrize("value", ["counts=[1,2", "counts={a: 1", "counts='1"])
def test_a_broken_set_value_names_key_and_value(value: str) -> None:
    from vlmscope.cli.options import parse_sets

    key, _, raw = value.partition("=")
    with pytest.raises(ConfigError, match=rf"--set {key}: .*is not a valid YAML value"):
        parse_sets([value])


def test_plain_text_that_is_not_yaml_stays_text() -> None:
    from vlmscope.cli.options import parse_sets

    assert parse_sets(["prompt=a: b: c", "split=[test, valid]"]) == {"prompt": "a: b: c", "split": ["test", "valid"]}


def test_generate_with_a_broken_list_is_one_line(tmp_path: Path) -> None:
    result = runner.invoke(app, ["generate", "counting", "--out", str(tmp_path / "d"), "--n", "4", "--set", "counts=[1,2"])
    one_line_error(result, "--set counts", "'[1,2'")
    assert not (tmp_path / "d").exists()


def test_extract_with_a_broken_set_is_one_line(tmp_path: Path) -> None:
    argv = ["extract", "--model", "m", "--dataset", str(tmp_path), "--out", str(tmp_path / "s"), "--set", "layers=[0,1"]
    result = runner.invoke(app, argv)
    one_line_error(result, "--set layers")


# -- (c) --out . ----------------------------------------------------------------------------------


@pytest.mark.parametrize("out", [".", "..", "./", "~"])
def test_out_naming_the_working_directory_or_above_is_one_line_and_touches_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, out: str
) -> None:
    work = tmp_path / "home" / "work"
    work.mkdir(parents=True)
    (work / "notes.txt").write_text("mine")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(work)
    result = runner.invoke(app, ["generate", "spatial", "--out", out, "--n", "2"])
    one_line_error(result, "refusing to write over")
    assert (work / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in work.iterdir()) == ["notes.txt"]


def test_out_at_a_repository_root_is_refused_but_a_subdirectory_is_fine(tmp_path: Path, monkeypatch) -> None:
    from vlmscope.cli.outdir import refuse_cwd_out

    (tmp_path / "repo" / ".git").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="root of a git/DVC repository"):
        refuse_cwd_out(Path("repo"))
    assert refuse_cwd_out(Path("repo/out")) == Path("repo/out")


@pytest.mark.parametrize(
    "argv",
    [["evaluate", "--out", "."], ["probe", "--out", ".", "s"], ["models", "tiny", "--out", ".", "llava"],
     ["import", "vrd", "--out", ".", "x.json"], ["report", "--out", "."], ["extract", "--out", "."],
     ["train", "projector", "--out", "."], ["lens", "logit", "--out", ".", "s"]],
)  # fmt: skip
def test_every_verb_refuses_out_dot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, argv: list[str]) -> None:
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, argv)
    assert "refusing to write over the current directory" in result.output, result.output
    assert "Traceback" not in result.output


# -- (d) mistyped local model path ----------------------------------------------------------------


@pytest.mark.parametrize("source", ["./artifacts/modls/tiny", "/nowhere/model", "~/models/x", "a/b/c", "bad id!"])
def test_a_mistyped_model_path_says_no_such_directory(source: str) -> None:
    from vlmscope.models import detect_family, load_model

    for call in (detect_family, load_model):
        with pytest.raises(NotFound, match=f"no such directory: {source}"):
            call(source)


def test_a_missing_directory_under_an_existing_one_is_a_path_not_a_hub_id(tmp_path, monkeypatch) -> None:
    from vlmscope.models import load_model

    (tmp_path / "artifacts").mkdir()
    monkeypatch.chdir(tmp_path)
    with pytest.raises(NotFound, match="no such directory: artifacts/modle"):
        load_model("artifacts/modle", family="llava")


def test_extract_with_a_mistyped_model_is_one_line(tmp_path: Path, tiny_dataset) -> None:
    data = str(tiny_dataset("spatial", 12))
    result = runner.invoke(app, ["extract", "--model", "./no/such/model", "--dataset", data, "--out", str(tmp_path / "s")])
    one_line_error(result, "no such directory: ./no/such/model")


# -- (e) --family contradicting the checkpoint -----------------------------------------------------


def test_family_contradicting_the_sidecar_is_refused(tiny_checkpoint) -> None:
    from vlmscope.models import check_family, load_model

    path = tiny_checkpoint("clip")
    with pytest.raises(ModelError, match=r"--family llava contradicts .*vlmscope.json says family 'clip'"):
        load_model(path, family="llava")
    check_family(path, "clip")  # agreeing is fine


def test_family_contradicting_the_model_type_is_refused_but_shared_types_and_unknown_ones_pass(tmp_path, tiny_checkpoint) -> None:
    from vlmscope.models import check_family

    plain = tmp_path / "plain"
    plain.mkdir()
    cfg = json.loads((tiny_checkpoint("composite") / "config.json").read_text())
    (plain / "config.json").write_text(json.dumps(cfg))  # model_type llava, no sidecar
    with pytest.raises(ModelError, match=r"model_type 'llava' is family composite or llava"):
        check_family(plain, "clip")
    check_family(plain, "composite")  # composite shares llava's model_type
    (plain / "config.json").write_text(json.dumps({**cfg, "model_type": "brand_new"}))
    check_family(plain, "llava")  # no family claims it: forcing is the way to load it


def test_extract_with_a_contradicting_family_is_one_line(tmp_path, tiny_checkpoint, tiny_dataset) -> None:
    model = tiny_checkpoint("composite")
    result = runner.invoke(
        app,
        ["extract", "--model", str(model), "--dataset", str(tiny_dataset("spatial", 12)), "--out", str(tmp_path / "s"),
         "--family", "clip"],
    )
    one_line_error(result, "--family clip contradicts")


# -- (f) probe on a handful of samples -------------------------------------------------------------


def test_the_probe_cli_shows_the_warning_and_still_writes_its_outputs(tmp_path: Path) -> None:
    from vlmscope.activations.store import write_activations
    from vlmscope.probing.synthetic import planted_dataset

    store = tmp_path / "few"
    ds = planted_dataset(n_samples=24, n_layers=2, dim=4, n_classes=2, signal_from=1, snr=1.5, seed=0)
    write_activations(store, ds, dtype="float32", shard_samples=24)
    result = runner.invoke(app, ["probe", str(store), "--label", "relation", "--out", str(tmp_path / "p")])
    assert result.exit_code == 0, result.output
    assert "warning: probing 24 samples, 12 of class" in result.output
    assert (tmp_path / "p" / "metrics.json").is_file()


def test_a_probe_on_few_samples_warns_that_its_numbers_mean_nothing() -> None:
    from vlmscope.probing.run import warn_if_small

    with pytest.warns(SmallSampleWarning, match="probing 20 samples, 10 of class 'a'.*mean nothing"):
        warn_if_small(np.arange(20) % 2, ["a", "b"])
    with pytest.warns(SmallSampleWarning, match="3 of class 'rare'"):
        warn_if_small(np.r_[np.zeros(97, int), np.ones(3, int)], ["common", "rare"])


def test_a_probe_on_enough_samples_does_not_warn() -> None:
    import warnings

    from vlmscope.probing.run import warn_if_small

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_if_small(np.arange(100) % 5, list("abcde"))


# -- (g) dvc pull on a clone without dvc.lock ------------------------------------------------------


def _pull_tool():
    import importlib.util

    path = Path(__file__).resolve().parents[2] / "tools" / "pull.py"
    spec = importlib.util.spec_from_file_location("vlmscope_tools_pull", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_pull_without_a_dvc_lock_says_there_is_nothing_to_pull_yet(tmp_path: Path, capsys, monkeypatch) -> None:
    pull = _pull_tool()
    calls: list[list[str]] = []
    monkeypatch.setattr(pull.subprocess, "call", lambda argv, cwd: calls.append(argv) or 0)
    assert pull.main([], root=tmp_path) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("error: nothing to pull") and "commits dvc.lock" in err
    assert calls == []
    (tmp_path / "dvc.lock").write_text("schema: '2.0'\nstages: {}\n")
    assert pull.main(["-j", "2"], root=tmp_path) == 0
    assert calls and calls[0][-4:] == ["dvc", "pull", "-j", "2"]


def test_readme_and_makefile_say_how_a_team_shares_results() -> None:
    root = Path(__file__).resolve().parents[2]
    readme = (root / "README.md").read_text()
    section = readme.split("### How a team shares results", 1)[1].split("\n## ", 1)[0]
    for step in ("make repro", "git add dvc.lock", "dvc push", "make pull"):
        assert step in section, step
    makefile = (root / "Makefile").read_text()
    assert "tools/pull.py" in makefile and "git add dvc.lock" in makefile
