"""Verify a dataset directory: manifest valid, dataset.json consistent, every image there and decodable."""

from __future__ import annotations

from pathlib import Path

from vlmscope.errors import VlmscopeError
from vlmscope.verify import Verdict

__all__ = ["verify_dataset"]


def verify_dataset(path: Path) -> Verdict:
    """Every problem of the dataset at ``path``: one line per bad image, manifest or info field."""
    from vlmscope.data.manifest import INFO, load_dataset_info, read_manifest
    from vlmscope.data.reader import image_path, load_image
    from vlmscope.io.fingerprint import fingerprint_dir

    v = Verdict(path, "dataset")
    df = info = None
    try:
        df = read_manifest(path)
    except VlmscopeError as e:
        v.problems.append(str(e))
    try:
        info = load_dataset_info(path)
    except VlmscopeError as e:
        v.problems.append(str(e))
    if df is not None:
        for row, (sid, rel) in enumerate(zip(df["sample_id"].to_list(), df["image"].to_list())):
            try:
                load_image(image_path(path, rel), sample_id=sid, row=row)
            except VlmscopeError as e:
                v.problems.append(str(e))
    if df is not None and info is not None:
        if info.n_samples != len(df):
            v.problems.append(f"{path / INFO}: n_samples is {info.n_samples}, the manifest has {len(df)} rows")
        fp = fingerprint_dir(path, exclude={INFO})
        if fp != info.fingerprint:
            v.problems.append(
                f"{path / INFO}: fingerprint {info.fingerprint[:12]}... does not match the content ({fp[:12]}...): "
                "files were changed, added or removed since the dataset was written"
            )
    n = len(df) if df is not None else 0
    v.summary = f"dataset {path}: {n} samples, every image decodes, dataset.json consistent"
    return v
