"""Train the embedded default model and print its test accuracy per dataset vs the baselines.

Builds what it needs under ``--work`` (the tiny composite, the four synthetic
training sets at params.yaml's sizes and seeds) unless given, runs
``train_default`` and prints, per dataset and query type, greedy-generation
accuracy on the test split next to uniform chance and the training-majority
answer (the best an image-blind model can do from answer priors), plus the
wall time. Prints numbers; asserts nothing.

    .venv/bin/python benchmarks/train_default.py --work /tmp/default-bench [--max-steps 600] [--lr 1e-3]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import polars as pl

from vlmscope.training.config import LoopConfig
from vlmscope.training.default_model import DefaultTrainConfig, train_default

SETS = {
    "spatial": {"kind": "spatial", "n": 1200, "seed": 1},
    "color": {"kind": "color", "n": 800, "seed": 1},
    "relations": {"kind": "relations", "n": 150, "seed": 1},
    "counting": {"kind": "counting", "variant": "balanced", "n": 1200, "seed": 1},
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--model", type=Path, default=None, help="Start checkpoint (default: build the tiny composite).")
    ap.add_argument("--max-steps", type=int, default=None)
    ap.add_argument("--lr", type=float, default=None)
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--minutes", type=float, default=None)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--sets", default=",".join(SETS), help="Comma-separated subset of " + ",".join(SETS))
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    model = args.model
    if model is None:
        from vlmscope.models.tiny import build_tiny

        model = args.work / "tiny-composite"
        if not (model / "config.json").is_file():
            build_tiny("composite", model, seed=0)
    from vlmscope.data.generators import generate_dataset

    datasets = []
    for name in args.sets.split(","):
        spec = dict(SETS[name])
        out = args.work / f"train-{name}"
        if not (out / "manifest.parquet").is_file():
            generate_dataset(spec.pop("kind"), out, n=spec.pop("n"), seed=spec.pop("seed"), **spec)
        datasets.append(out)
    d = DefaultTrainConfig()
    overrides = {"max_steps": args.max_steps, "lr": args.lr, "batch_size": args.batch_size,
                 "max_minutes": args.minutes, "threads": args.threads}  # fmt: skip
    loop = LoopConfig(**{**d.loop.model_dump(), **{k: v for k, v in overrides.items() if v is not None}})
    cfg = DefaultTrainConfig(loop=loop)
    t = time.perf_counter()
    metrics = train_default(model, datasets, args.work / "default", cfg)
    wall = time.perf_counter() - t
    table = pl.read_csv(args.work / "default" / "eval_by_group.csv")
    with pl.Config(tbl_rows=100, tbl_width_chars=120, float_precision=3):
        print(table)
    print(f"overall test accuracy {metrics['test/accuracy']:.3f}  chance {metrics['test/chance']:.3f}  "
          f"majority {metrics['test/majority']:.3f}  (n={int(metrics['test/n'])})")  # fmt: skip
    print(f"steps {metrics['steps']}  train loss {metrics['loss_first']:.3f} -> {metrics['loss_last']:.3f}  "
          f"training {metrics['seconds']:.0f} s  wall (encode + train + evaluate) {wall:.0f} s")  # fmt: skip


if __name__ == "__main__":
    main()
