"""Lens benchmark: per-layer cost of the logit lens and the FFN analysis at real model shapes (CPU).

Prints numbers, asserts nothing. Uses the library's per-layer kernels
(``lens_layer``, ``ffn_layer``) on random weights of a LLaVA-1.5-7B-shaped LM
(D 4096, V 32000, F 11008) and random activations, so no checkpoint is
needed; the end-to-end runs add one lazy store read per layer and writing
the tables.

    python benchmarks/lens.py                       # N 256, 2 layers timed
    python benchmarks/lens.py --n 1024 --dim 3072 --vocab 128256 --ffn 8192   # Llama-3.2-3B shapes
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from vlmscope.lens.ffn import ffn_layer
from vlmscope.lens.logit import lens_layer
from vlmscope.lens.weights import FinalNorm


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=256, help="samples")
    ap.add_argument("--dim", type=int, default=4096)
    ap.add_argument("--vocab", type=int, default=32000)
    ap.add_argument("--ffn", type=int, default=11008)
    ap.add_argument("--layers", type=int, default=2, help="layers timed (per-layer cost is reported)")
    ap.add_argument("--batch-size", type=int, default=256)
    args = ap.parse_args()

    g = torch.Generator().manual_seed(0)
    W_U = torch.randn(args.vocab, args.dim, generator=g) * 0.02
    W_down = torch.randn(args.dim, args.ffn, generator=g) * 0.02
    norm = FinalNorm(torch.ones(args.dim), None, "rms", 1e-6)
    rng = np.random.default_rng(0)
    hidden = rng.standard_normal((args.n, args.dim), dtype=np.float32)
    acts = rng.standard_normal((args.n, args.ffn), dtype=np.float32)
    targets = rng.integers(0, args.vocab, args.n)
    print(f"threads {torch.get_num_threads()}; N {args.n}, D {args.dim}, V {args.vocab}, F {args.ffn}")

    t = []
    for _ in range(args.layers):
        t0 = time.perf_counter()
        lens_layer(hidden, targets, W_U, norm=norm, softcap=None, top_k=10, batch_size=args.batch_size)
        t.append(time.perf_counter() - t0)
    per = float(np.median(t))
    gflop = 2 * args.n * args.dim * args.vocab / 1e9
    print(f"logit lens : {per:.3f} s/layer ({per / args.n * 1e3:.2f} ms/sample/layer, {gflop / per:.0f} GFLOP/s)")

    t, uniq = [], 0
    for layer in range(args.layers):
        t0 = time.perf_counter()
        r = ffn_layer(acts, W_down, W_U, n=3, t=3, rng=np.random.default_rng([0, layer]), batch_size=1024)
        t.append(time.perf_counter() - t0)
        uniq = len(np.unique(np.concatenate([r.top_neurons.ravel(), r.random_neurons.ravel()])))
    per = float(np.median(t))
    print(
        f"ffn        : {per:.3f} s/layer ({uniq} unique value vectors projected for {args.n} samples x 6 neurons; "
        f"{per / args.n * 1e3:.2f} ms/sample/layer)"
    )


if __name__ == "__main__":
    main()
