"""Train/test index sets for probes: one seeded split, K folds, a split file or a split column.

Every kind yields a list of :class:`Fit` (train and test row indices into the
probed samples); a single split is one fit, K-fold is K fits whose test sets
partition the samples. Split files are validated row by row, with the file,
line and value named in every error.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vlmscope.errors import ConfigError, DatasetError, NotFound

__all__ = ["Fit", "kfold", "make_fits", "random_split", "read_split_file", "split_from_values"]

TRAIN, TEST = "train", "test"
LEFT_OUT = frozenset({"valid", "validation", "val", "dev", "heldout", "unused"})
"""Split names a split file may use for rows that neither train nor test a probe."""


@dataclass(frozen=True)
class Fit:
    """One probe fit: ``train`` and ``test`` are sorted int64 row indices (disjoint)."""

    train: np.ndarray
    test: np.ndarray


def _check_classes(y: np.ndarray, n_needed: int, what: str) -> None:
    values, counts = np.unique(y, return_counts=True)
    small = [(v, c) for v, c in zip(values.tolist(), counts.tolist()) if c < n_needed]
    if small:
        shown = ", ".join(f"{v!r} ({c})" for v, c in small[:5])
        raise ConfigError(
            f"{what} needs at least {n_needed} samples per class; too few for {shown}. "
            "Use fewer folds, --no-stratify, or drop rare classes"
        )


def random_split(y: np.ndarray, *, test_size: float, seed: int, stratify: bool) -> list[Fit]:
    """One seeded train/test split (sklearn's ``train_test_split`` semantics)."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(y))
    if stratify:
        _check_classes(y, 2, "a stratified split")
    try:
        tr, te = train_test_split(idx, test_size=test_size, random_state=seed, stratify=y if stratify else None)
    except ValueError as e:
        raise ConfigError(f"cannot split {len(y)} samples with test_size={test_size}: {e}") from None
    return [Fit(np.sort(tr), np.sort(te))]


def kfold(y: np.ndarray, *, folds: int, seed: int, stratify: bool) -> list[Fit]:
    """K shuffled folds (stratified by default); each sample is tested exactly once."""
    from sklearn.model_selection import KFold, StratifiedKFold

    if folds > len(y):
        raise ConfigError(f"folds={folds} exceeds the {len(y)} samples")
    if stratify:
        _check_classes(y, folds, f"stratified {folds}-fold cross-validation")
        splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    else:
        splitter = KFold(n_splits=folds, shuffle=True, random_state=seed)
    return [Fit(np.sort(tr), np.sort(te)) for tr, te in splitter.split(np.zeros(len(y)), y)]


def split_from_values(values: Sequence[str], *, where: str) -> list[Fit]:
    """One fit from per-sample split names; names other than train/test are left out."""
    arr = np.asarray([str(v) for v in values], dtype=object)
    train = np.flatnonzero(arr == TRAIN)
    test = np.flatnonzero(arr == TEST)
    if len(train) == 0 or len(test) == 0:
        seen = sorted(set(arr.tolist()))
        raise DatasetError(
            f"{where}: need both 'train' and 'test' samples; got {len(train)} train and {len(test)} test "
            f"(split values seen: {seen[:10]})"
        )
    return [Fit(train, test)]


def read_split_file(path: Path, sample_ids: Sequence[str], *, column: str | None = None) -> list[str]:
    """Per-sample split names from ``path``, aligned with ``sample_ids``.

    Samples the file does not list get ``""`` (left out). Unknown sample ids,
    duplicates, missing columns and empty values are errors naming the file and line.
    """
    path = Path(path)
    if not path.is_file():
        raise NotFound(f"{path}: split file not found")
    col = column or "split"
    rows: list[tuple[int, str, str]] = []  # (line, sample_id, split)
    suffix = path.suffix.lower()
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise DatasetError(f"{path}: not UTF-8 text (byte {e.start}): is this the split file?") from None
    if suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise DatasetError(f"{path}: not valid JSON ({e})") from None
        if not isinstance(data, dict) or not all(isinstance(v, list) for v in data.values()):
            raise DatasetError(f'{path}: expected {{"train": [ids...], "test": [ids...]}}, got {type(data).__name__}')
        for name, ids in data.items():
            for i, sid in enumerate(ids):
                rows.append((i + 1, str(sid), str(name)))
    elif suffix in (".csv", ".tsv"):
        import polars as pl

        try:
            df = pl.read_csv(path, separator="\t" if suffix == ".tsv" else ",", infer_schema=False)
        except Exception as e:  # noqa: BLE001  (polars raises several kinds)
            raise DatasetError(f"{path}: unreadable {suffix[1:].upper()} ({e})") from None
        for need in ("sample_id", col):
            if need not in df.columns:
                raise DatasetError(f"{path}: missing column {need!r} (columns: {', '.join(df.columns)})")
        for i, (sid, sp) in enumerate(zip(df["sample_id"].to_list(), df[col].to_list())):
            rows.append((i + 2, "" if sid is None else str(sid), "" if sp is None else str(sp)))
    else:
        for i, line in enumerate(text.splitlines()):
            parts = line.split()
            if not parts or parts[0].startswith("#"):
                continue
            if len(parts) != 2:
                raise DatasetError(f"{path}:{i + 1}: expected 'sample_id split', got {line!r}")
            rows.append((i + 1, parts[0], parts[1]))
    index = {sid: k for k, sid in enumerate(sample_ids)}
    out = [""] * len(sample_ids)
    seen: dict[str, int] = {}
    for line, sid, sp in rows:
        if not sid or not sp:
            raise DatasetError(f"{path}:{line}: empty sample_id or split ({sid!r}, {sp!r})")
        if sid in seen:
            raise DatasetError(f"{path}:{line}: sample {sid!r} listed again (first on line {seen[sid]})")
        seen[sid] = line
        if sp not in (TRAIN, TEST) and sp not in LEFT_OUT:
            raise DatasetError(
                f"{path}:{line}: unknown split {sp!r} for sample {sid!r}; expected 'train' or 'test' "
                f"(or one of {sorted(LEFT_OUT)} to leave the row out)"
            )
        if sid not in index:
            raise DatasetError(
                f"{path}:{line}: sample {sid!r} is not in the store; is the split file for another dataset?"
            )
        out[index[sid]] = sp
    return out


def make_fits(
    y: np.ndarray,
    sample_ids: Sequence[str],
    *,
    kind: str,
    test_size: float = 0.2,
    folds: int | None = None,
    seed: int = 0,
    stratify: bool = True,
    split_file: Path | None = None,
    split_values: Sequence[str] | None = None,
    split_column: str | None = None,
) -> list[Fit]:
    """The fits of one probing run, by ``kind`` (``random``, ``folds``, ``file``, ``column``)."""
    if kind == "folds":
        assert folds is not None
        return kfold(y, folds=folds, seed=seed, stratify=stratify)
    if kind == "file":
        assert split_file is not None
        values = read_split_file(split_file, sample_ids, column=split_column)
        return split_from_values(values, where=str(split_file))
    if kind == "column":
        assert split_values is not None
        return split_from_values(split_values, where=f"split column {split_column!r}")
    return random_split(y, test_size=test_size, seed=seed, stratify=stratify)
