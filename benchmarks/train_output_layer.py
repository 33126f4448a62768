"""Time output-layer fine-tuning on random states (prints numbers; asserts nothing).

The counting study trains a copy of the unembedding on cached last-layer
states. This times :func:`vlmscope.training.trainers.head_math.fit_head` at a real
model's sizes (default: a Llama/Mistral-7B head, V=32000, D=4096) on N rows,
both with every row trainable (``--rows all``) and with only the answer
vocabulary's rows (``--rows answer-tokens``, K=10 digits).

    .venv/bin/python benchmarks/train_output_layer.py [--n 3000] [--vocab 32000] [--dim 4096] [--epochs 5]
"""

from __future__ import annotations

import argparse
import time

import torch

from vlmscope.training.trainers.head_math import fit_head, rest_stats


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=3000)
    ap.add_argument("--vocab", type=int, default=32000)
    ap.add_argument("--dim", type=int, default=4096)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--skip-full", action="store_true", help="Only time the answer-token rows mode.")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(0)
    W0 = torch.randn(args.vocab, args.dim, generator=g) * 0.02
    rows = torch.arange(100, 110)
    # states carry their class (a random direction per class) plus noise: a learnable mapping
    cls = torch.randint(0, 10, (args.n,), generator=g)
    centres = torch.randn(10, args.dim, generator=g)
    z = centres[cls] + 0.5 * torch.randn(args.n, args.dim, generator=g)
    y = rows[cls]
    n_va = args.n // 10
    print(f"N={args.n} V={args.vocab} D={args.dim} epochs={args.epochs} threads={torch.get_num_threads()}", flush=True)
    t = time.perf_counter()
    rest_stats(z, W0, rows)
    print(f"  frozen-logit statistics (one pass over the vocabulary): {time.perf_counter() - t:.2f} s", flush=True)
    modes = [("answer-tokens", rows)] + ([] if args.skip_full else [("all", None)])
    for name, r in modes:
        t = time.perf_counter()
        fit = fit_head(z[n_va:], y[n_va:], z[:n_va], y[:n_va], W0, epochs=args.epochs, lr=1e-3, weight_decay=0.01,
                       batch_size=32, kl_lambda=0.2, seed=0, rows=r)  # fmt: skip
        dt = time.perf_counter() - t
        print(f"  rows={name:14s} {dt:8.2f} s total, {dt / args.epochs:7.2f} s/epoch, "
              f"valid acc {fit.history[-1]['valid_accuracy']:.3f}", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
