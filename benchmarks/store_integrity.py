"""What the store's integrity checks cost: the file record at write, the stat on open, CRC-32C on read, verify.

Prints a table, asserts nothing. Writes one synthetic store (float16, the
store's sharded layout) twice, with and without the per-chunk CRC-32C codec,
and measures in this process:

  - write_activations, with / without the chunk CRC-32C (the file record's
    CRC-32 is included in both: it is taken right after each shard is written);
  - the whole-file digest alone: CRC-32 (what the record uses) vs BLAKE2b and
    SHA-256 (what it could have used);
  - open_activations' size/presence check, and a full read with / without
    the chunk CRC-32C;
  - ``verify_path`` (every byte: file CRC-32s plus decoding every shard).

    python benchmarks/store_integrity.py            # 1024 samples x 33 layers x 2048 dims (~140 MB on disk)
    python benchmarks/store_integrity.py --small    # 256 x 9 x 512

Goal: the open check in milliseconds whatever the store size; the record and
the chunk CRC-32C within the noise of writing and reading.
"""

from __future__ import annotations

import argparse
import hashlib
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _best(fn: Callable[[], Any], repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--small", action="store_true")
    args = ap.parse_args()
    import numpy as np
    import xarray as xr

    from vlmscope.activations import integrity, layout
    from vlmscope.activations import store as store_mod
    from vlmscope.verify import verify_path

    n, layers, dim = (256, 9, 512) if args.small else (1024, 33, 2048)
    rng = np.random.default_rng(0)
    ds = xr.Dataset(
        {"hidden": (("sample", "layer", "dim"), rng.standard_normal((n, layers, dim), dtype=np.float32))},
        coords={"sample": np.array([f"s{i}" for i in range(n)], dtype=object), "layer": np.arange(layers)},
    )
    with tempfile.TemporaryDirectory() as tmp:
        with_crc, without = Path(tmp) / "crc.zarr", Path(tmp) / "plain.zarr"
        rows = []
        rows.append(("write (chunk CRC-32C)", _best(lambda: store_mod.write_activations(
            with_crc, ds, dtype="float16", shard_samples=256))))  # fmt: skip
        plain = layout.compressors()[:1]
        original, store_mod.compressors = store_mod.compressors, lambda: plain
        try:
            rows.append(("write (no chunk CRC-32C)", _best(lambda: store_mod.write_activations(
                without, ds, dtype="float16", shard_samples=256))))  # fmt: skip
        finally:
            store_mod.compressors = original
        files = [p for p in store_mod.store_files(with_crc) if "/c/" in p.as_posix()]
        size = sum(p.stat().st_size for p in files)
        rows.append(("file record: CRC-32", _best(lambda: [integrity.describe_file(p) for p in files])))
        for algo in ("blake2b", "sha256"):
            rows.append((f"  (alternative: {algo})", _best(lambda a=algo: [hashlib.new(a, p.read_bytes()) for p in files])))
        attrs = store_mod.read_store_attrs(with_crc) or {}
        rows.append(("open: size/presence check", _best(lambda: integrity.check_files(with_crc, attrs))))
        reads: dict[str, list[float]] = {"read all (chunk CRC-32C)": [], "read all (no chunk CRC-32C)": []}
        for _ in range(5):  # interleaved: on a shared machine the load drifts between runs
            for times, path in zip(reads.values(), (with_crc, without)):
                times.append(_best(lambda p=path: store_mod.open_activations(p).hidden.values, repeat=1))
        rows.extend((name, min(times)) for name, times in reads.items())
        rows.append(("vlmscope verify", _best(lambda: verify_path(with_crc), repeat=1)))
    print(f"store: {n} samples x {layers} layers x {dim} dims float16, {len(files)} data files, {size / 1e6:.0f} MB\n")
    print("| step | ms | MB/s of store |")
    print("|---|---|---|")
    for name, sec in rows:
        rate = f"{size / 1e6 / sec:.0f}" if sec > 1e-2 else "-"
        print(f"| {name} | {sec * 1e3:.1f} | {rate} |")


if __name__ == "__main__":
    main()
