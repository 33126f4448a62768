"""Split files and split columns honoured; bad split rows named; control labels carry no information."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from safetensors.numpy import load_file

from vlmscope.errors import DatasetError, NotFound, StoreError
from vlmscope.probing import ProbeConfig, control_labels, run_probes
from vlmscope.probing.splits import kfold, random_split, read_split_file

IDS = [f"s{i:05d}" for i in range(10)]


def _write_split(path: Path, test_ids: list[str], all_ids: list[str]) -> None:
    lines = ["sample_id,split"] + [f"{s},{'test' if s in test_ids else 'train'}" for s in all_ids]
    path.write_text("\n".join(lines) + "\n")


def test_split_file_is_honoured(planted: xr.Dataset, tmp_path: Path) -> None:
    ids = planted["sample"].values.tolist()
    rng = np.random.default_rng(3)
    test_ids = sorted(rng.choice(ids, size=37, replace=False).tolist())
    split = tmp_path / "split.csv"
    _write_split(split, test_ids, ids)
    res = run_probes(planted, ProbeConfig(label="relation", split_file=split, controls=0, bootstrap=0, layers=(4,)), tmp_path / "o")
    assert res.table["n_test"].to_list() == [37] and res.table["n_train"].to_list() == [len(ids) - 37]
    # the probe was trained on exactly the file's train rows: refit them by hand and compare
    from vlmscope.probing import LogisticProbe

    X = planted["hidden"].sel(layer=4).values
    y = planted["relation"].values
    is_test = np.isin(ids, test_ids)
    ref = LogisticProbe().fit(X[~is_test], y[~is_test])
    assert res.table["accuracy"][0] == pytest.approx(ref.score(X[is_test], y[is_test]))
    coef = load_file(str(tmp_path / "o" / "probes" / "probes.safetensors"))["coef"][0, 0]
    np.testing.assert_allclose(coef, ref.coef_, atol=1e-4 * np.abs(ref.coef_).max())


def test_split_column_leaves_other_splits_out(planted: xr.Dataset, tmp_path: Path) -> None:
    split = planted["split"].values.copy()
    split[:10] = "valid"
    ds = planted.assign_coords(split=("sample", split))
    res = run_probes(ds, ProbeConfig(label="relation", split_column="split", controls=0, bootstrap=0, layers=(4,)), tmp_path / "o")
    n_test = int((split == "test").sum())
    assert res.table["n_test"][0] == n_test and res.table["n_train"][0] == int((split == "train").sum())
    with pytest.raises(StoreError, match=r"split column 'fold' is not a coordinate on 'sample'.*available: image, relation, split"):
        run_probes(ds, ProbeConfig(label="relation", split_column="fold"), tmp_path / "p")


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("a.csv", "sample_id,split\ns00001,train\ns99999,test\n", r"a.csv:3: sample 's99999' is not in the store"),
        ("b.csv", "sample_id,split\ns00001,train\ns00001,test\n", r"b.csv:3: sample 's00001' listed again \(first on line 2\)"),
        ("c.csv", "id,split\ns00001,train\n", r"c.csv: missing column 'sample_id' \(columns: id, split\)"),
        ("d.csv", "sample_id,split\ns00001,trian\n", r"d.csv:2: unknown split 'trian' for sample 's00001'"),
        ("e.txt", "s00001 train\ns00002\n", r"e.txt:2: expected 'sample_id split', got 's00002'"),
        ("f.json", '["s00001"]', r"f.json: expected \{\"train\": \[ids...\], \"test\": \[ids...\]\}"),
        ("g.csv", "sample_id,split\ns00001,train\n,test\n", r"g.csv:3: empty sample_id or split"),
    ],
)
def test_bad_split_file_rows_are_named(tmp_path: Path, name: str, text: str, message: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(DatasetError, match=message):
        read_split_file(path, IDS)


def test_split_file_formats_agree(tmp_path: Path) -> None:
    (tmp_path / "s.txt").write_text("# comment\ns00001 test\ns00002 train\ns00003 valid\n")
    (tmp_path / "s.json").write_text(json.dumps({"test": ["s00001"], "train": ["s00002"], "valid": ["s00003"]}))
    (tmp_path / "s.tsv").write_text("sample_id\tsplit\ns00001\ttest\ns00002\ttrain\ns00003\tvalid\n")
    want = ["", "test", "train", "valid"] + [""] * 6
    for name in ("s.txt", "s.json", "s.tsv"):
        assert read_split_file(tmp_path / name, IDS) == want, name
    with pytest.raises(NotFound, match="split file not found"):
        read_split_file(tmp_path / "nope.csv", IDS)


def test_split_without_test_rows_is_refused(planted: xr.Dataset, tmp_path: Path) -> None:
    split = tmp_path / "all_train.csv"
    _write_split(split, [], planted["sample"].values.tolist())
    with pytest.raises(DatasetError, match=r"need both 'train' and 'test' samples; got 240 train and 0 test"):
        run_probes(planted, ProbeConfig(label="relation", split_file=split), tmp_path / "o")


def test_random_split_and_folds_are_stratified_and_seeded() -> None:
    y = np.repeat(np.arange(4), 25)
    (fit,) = random_split(y, test_size=0.2, seed=0, stratify=True)
    assert np.bincount(y[fit.test]).tolist() == [5, 5, 5, 5]
    assert np.array_equal(fit.test, random_split(y, test_size=0.2, seed=0, stratify=True)[0].test)
    assert not np.array_equal(fit.test, random_split(y, test_size=0.2, seed=1, stratify=True)[0].test)
    folds = kfold(y, folds=5, seed=0, stratify=True)
    assert sorted(np.concatenate([f.test for f in folds]).tolist()) == list(range(100))
    assert all(np.bincount(y[f.test]).tolist() == [5, 5, 5, 5] for f in folds)


# -- control task ----------------------------------------------------------------------


def test_controls_are_seeded_permutations_with_the_same_balance() -> None:
    y = np.repeat(np.arange(3), [10, 20, 30])
    c = control_labels(y, n=3, seed=5)
    assert c.shape == (3, 60)
    for row in c:
        assert np.bincount(row).tolist() == [10, 20, 30]
    assert np.array_equal(c, control_labels(y, n=3, seed=5))
    assert not np.array_equal(c[0], c[1])
    assert not np.array_equal(c[0], control_labels(y, n=1, seed=6)[0])
    # a permutation across samples, not a relabelling of values: agreement with y is near chance
    agree = (c == y[None]).mean()
    assert abs(agree - (10**2 + 20**2 + 30**2) / 60**2) < 0.15


def test_rows_sharing_an_image_share_a_control_label() -> None:
    y = np.arange(40) % 4
    images = [f"img{i // 4}.png" for i in range(40)]  # 10 images, 4 questions each
    c = control_labels(y, n=2, seed=0, groups=images)
    for k in range(2):
        for g in range(10):
            assert len(set(c[k, 4 * g : 4 * g + 4].tolist())) == 1


def test_control_probe_is_at_chance_even_where_the_signal_is(planted: xr.Dataset, tmp_path: Path) -> None:
    res = run_probes(planted, ProbeConfig(label="relation", controls=3, bootstrap=0, layers=(4, 5)), tmp_path / "o")
    assert (res.table["control_accuracy"] < 0.4).all() and (res.table["accuracy"] > 0.8).all()
    assert (res.table["control_accuracy_std"] >= 0).all()
