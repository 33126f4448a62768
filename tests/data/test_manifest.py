"""The dataset directory contract (data/manifest.py) and atomic writes (io/atomic.py)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import polars as pl
import pytest

from vlmscope.data.manifest import (
    DatasetInfo,
    load_dataset_info,
    read_manifest,
    resolve_image,
    write_dataset,
)
from vlmscope.errors import DatasetError, NotFound
from vlmscope.io.atomic import atomic_dir, atomic_write_bytes, atomic_write_text
from vlmscope.io.fingerprint import fingerprint_dir


def _rows(n: int = 3, **over: object) -> dict[str, list]:
    rows: dict[str, list] = {
        "sample_id": [f"s{i}" for i in range(n)],
        "image": [f"images/s{i}.png" for i in range(n)],
        "prompt": ["q"] * n,
        "answer": ["a"] * n,
        "split": ["train"] * n,
    }
    rows.update(over)  # type: ignore[arg-type]
    return rows


def _build(rows: dict[str, list], write_images: bool = True):  # noqa: ANN202
    def build(tmp: Path) -> pl.DataFrame:
        if write_images:
            for rel in set(rows["image"]):
                if rel:
                    (tmp / rel).write_bytes(b"img:" + rel.encode())
        return pl.DataFrame(rows)

    return build


def test_write_then_read_round_trip(tmp_path: Path) -> None:
    out = tmp_path / "ds"
    info = write_dataset(out, generator="g", params={"n": 3}, seed=1, build=_build(_rows(relation=["x", "y", "z"])))
    df = read_manifest(out)
    assert df["sample_id"].to_list() == ["s0", "s1", "s2"]
    assert df["relation"].to_list() == ["x", "y", "z"]
    assert load_dataset_info(out) == info
    assert info.n_samples == 3 and info.generator == "g" and info.seed == 1
    assert info.fingerprint == fingerprint_dir(out, exclude={"dataset.json"})


def test_fingerprint_changes_with_content_only(tmp_path: Path) -> None:
    a = write_dataset(tmp_path / "a", generator="g", params={}, seed=0, build=_build(_rows()))
    b = write_dataset(tmp_path / "b", generator="g", params={}, seed=0, build=_build(_rows()))
    c = write_dataset(tmp_path / "c", generator="g", params={}, seed=0, build=_build(_rows(answer=["a", "a", "b"])))
    assert a.fingerprint == b.fingerprint != c.fingerprint


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ({k: v for k, v in _rows().items() if k != "answer"}, "missing required column 'answer'"),
        (_rows(sample_id=["a", "a", "b"]), "sample_id must be unique; duplicated: \\['a'\\]"),
        (_rows(split=["train", "val", "test"]), "split must be one of train, valid, test; sample 's1' has 'val'"),
        (_rows(split=["train", None, "test"]), "column 'split' is null in 1 row\\(s\\) \\(first: sample 's1'\\)"),
        (_rows(prompt=["q", "q", None]), "column 'prompt' is null"),
        (_rows(image=["images/s0.png", "/etc/passwd", "images/s2.png"]), "sample 's1' has '/etc/passwd'"),
        (_rows(image=["images/s0.png", "images/../../x.png", "images/s2.png"]), "must be relative and stay inside"),
        (_rows(answer=[1, 2, 3]), "column 'answer' must be String"),
    ],
)
def test_bad_manifests_are_refused_and_leave_nothing(tmp_path: Path, rows: dict, message: str) -> None:
    out = tmp_path / "ds"

    def build(tmp: Path) -> pl.DataFrame:
        return pl.DataFrame(rows)

    with pytest.raises(DatasetError, match=message):
        write_dataset(out, generator="g", params={}, seed=0, build=build)
    assert list(tmp_path.iterdir()) == []


def test_missing_image_is_refused(tmp_path: Path) -> None:
    rows = _rows()

    def build(tmp: Path) -> pl.DataFrame:
        (tmp / "images/s0.png").write_bytes(b"x")
        (tmp / "images/s2.png").write_bytes(b"x")
        return pl.DataFrame(rows)

    with pytest.raises(DatasetError, match="sample 's1' names image 'images/s1.png', which the build did not write"):
        write_dataset(tmp_path / "ds", generator="g", params={}, seed=0, build=build)
    assert not (tmp_path / "ds").exists()


def test_symlinked_images_are_accepted(tmp_path: Path) -> None:
    src = tmp_path / "src.png"
    src.write_bytes(b"png")
    rows = _rows(1)

    def build(tmp: Path) -> pl.DataFrame:
        os.symlink(src, tmp / "images/s0.png")
        return pl.DataFrame(rows)

    write_dataset(tmp_path / "ds", generator="g", params={}, seed=0, build=build)
    assert (tmp_path / "ds/images/s0.png").read_bytes() == b"png"


def test_read_manifest_errors(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="no manifest"):
        read_manifest(tmp_path)
    (tmp_path / "manifest.parquet").write_bytes(b"not parquet")
    with pytest.raises(DatasetError, match="unreadable parquet"):
        read_manifest(tmp_path)
    pl.DataFrame(_rows(split=["train", "x", "test"])).write_parquet(tmp_path / "manifest.parquet")
    with pytest.raises(DatasetError, match="manifest.parquet: split must be one of"):
        read_manifest(tmp_path)


def test_load_dataset_info_errors(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="no dataset.json"):
        load_dataset_info(tmp_path)
    (tmp_path / "dataset.json").write_text("{not json")
    with pytest.raises(DatasetError, match="dataset.json: not valid JSON"):
        load_dataset_info(tmp_path)
    (tmp_path / "dataset.json").write_text("[1, 2]")
    with pytest.raises(DatasetError, match="expected a JSON object, got list"):
        load_dataset_info(tmp_path)
    (tmp_path / "dataset.json").write_text(json.dumps({"generator": "g", "colour": 1}))
    with pytest.raises(DatasetError, match="unexpected keys \\['colour'\\] / missing keys"):
        load_dataset_info(tmp_path)


def test_dataset_info_json_is_stable() -> None:
    info = DatasetInfo(generator="g", params={"b": 1, "a": [1, 2]}, seed=3, fingerprint="f", n_samples=2)
    assert info.to_json() == DatasetInfo(**json.loads(info.to_json())).to_json()
    assert info.to_json().index('"a"') < info.to_json().index('"b"')  # sorted keys


def test_resolve_image(tmp_path: Path) -> None:
    assert resolve_image(tmp_path, "images/x.png") == tmp_path / "images" / "x.png"
    for bad in ("/abs.png", "../x.png", "images/../../x.png"):
        with pytest.raises(DatasetError):
            resolve_image(tmp_path, bad)


# ---- io/atomic.py ---------------------------------------------------------


def test_atomic_dir_publishes_on_success_with_normal_permissions(tmp_path: Path) -> None:
    final = tmp_path / "out"
    old_mask = os.umask(0o022)
    try:
        with atomic_dir(final) as tmp:
            assert not final.exists()
            (tmp / "f").write_text("x")
    finally:
        os.umask(old_mask)
    assert (final / "f").read_text() == "x"
    assert stat.S_IMODE(final.stat().st_mode) == 0o755  # not mkdtemp's 0o700
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_atomic_dir_keeps_the_old_one_on_error(tmp_path: Path) -> None:
    final = tmp_path / "out"
    final.mkdir()
    (final / "old").write_text("keep")
    with pytest.raises(ValueError, match="boom"):
        with atomic_dir(final) as tmp:
            (tmp / "new").write_text("x")
            raise ValueError("boom")
    assert sorted(p.name for p in final.iterdir()) == ["old"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_atomic_dir_replaces_an_existing_dir_or_file(tmp_path: Path) -> None:
    final = tmp_path / "out"
    final.mkdir()
    (final / "old").write_text("x")
    with atomic_dir(final) as tmp:
        (tmp / "new").write_text("y")
    assert sorted(p.name for p in final.iterdir()) == ["new"]
    other = tmp_path / "file"
    other.write_text("plain file")
    with atomic_dir(other) as tmp:
        (tmp / "inside").write_text("z")
    assert (other / "inside").read_text() == "z"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "out"]


def test_atomic_dir_restores_old_when_the_swap_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    final = tmp_path / "out"
    final.mkdir()
    (final / "old").write_text("keep")
    real = os.replace
    calls = {"n": 0}

    def flaky(src: object, dst: object) -> None:
        calls["n"] += 1
        if calls["n"] == 2:  # the rename of the new directory into place
            raise OSError("disk on fire")
        real(src, dst)

    monkeypatch.setattr("vlmscope.io.atomic.os.replace", flaky)
    with pytest.raises(OSError, match="disk on fire"):
        with atomic_dir(final) as tmp:
            (tmp / "new").write_text("x")
    assert sorted(p.name for p in final.iterdir()) == ["old"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_atomic_write_bytes_and_text(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "f.bin"
    old_mask = os.umask(0o022)
    try:
        atomic_write_bytes(path, b"\x00\x01")
    finally:
        os.umask(old_mask)
    assert path.read_bytes() == b"\x00\x01"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644  # not mkstemp's 0o600
    atomic_write_text(path, "héllo")
    assert path.read_text(encoding="utf-8") == "héllo"
    assert [p.name for p in path.parent.iterdir()] == ["f.bin"]


def test_atomic_write_bytes_leaves_no_temp_on_error(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(b"old")
    with pytest.raises(TypeError):
        atomic_write_bytes(path, "not bytes")  # type: ignore[arg-type]
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]
