"""Train the embedded default model and print its test accuracy per dataset vs the baselines.

Uses the recipe ``make repro`` runs: the training sets of ``params.yaml``'s
``train_datasets`` (built under ``--work`` unless there) and its
``train_default`` section over the library defaults, with the overrides
given here. Prints, per dataset and query type, greedy-generation accuracy
on the test split next to uniform chance and the training-majority answer
(the best an image-blind model can do from answer priors), the vision
pre-training's held-out accuracy, and the wall time. ``--seeds 0,1,2`` trains
once per loop seed and prints the spread, because one run of a model trained
from scratch for minutes says little on its own. Asserts nothing.

    .venv/bin/python benchmarks/train_default.py --work /tmp/default-bench [--seeds 0,1] [--max-steps 600]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import polars as pl

from vlmscope.params import load_config, merge, read_params
from vlmscope.training.trainers.default_model import DefaultTrainConfig, train_default


def build_inputs(work: Path, params: dict, sets: list[str] | None) -> tuple[Path, list[Path]]:
    from vlmscope.data.generators import generate_dataset
    from vlmscope.models.tiny import build_tiny

    model = work / "tiny-composite"
    if not (model / "config.json").is_file():
        build_tiny(params["tiny_model"]["family"], model, seed=params["tiny_model"]["seed"])
    datasets = []
    for name, spec in params["train_datasets"].items():
        if sets is not None and name not in sets:
            continue
        spec = dict(spec)
        out = work / f"train-{name}"
        if not (out / "manifest.parquet").is_file():
            generate_dataset(spec.pop("kind"), out, n=spec.pop("n"), seed=spec.pop("seed"), **spec)
        datasets.append(out)
    return model, datasets


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--params", type=Path, default=Path("params.yaml"))
    ap.add_argument("--model", type=Path, default=None, help="Start checkpoint (default: the tiny composite).")
    ap.add_argument("--seeds", default=None, help="Comma-separated loop seeds (default: params.yaml's).")
    ap.add_argument("--max-steps", type=int, default=None)
    ap.add_argument("--lr", type=float, default=None)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--pretrain-steps", type=int, default=None, help="Vision pre-training steps (0: none).")
    ap.add_argument("--sets", default=None, help="Comma-separated subset of train_datasets (default: all).")
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    params = read_params(args.params)
    model, datasets = build_inputs(args.work, params, args.sets.split(",") if args.sets else None)
    model = args.model or model
    base = load_config(DefaultTrainConfig, params, "train_default", base=DefaultTrainConfig())
    loop = {k: v for k, v in {"max_steps": args.max_steps, "lr": args.lr, "threads": args.threads}.items()
            if v is not None}  # fmt: skip
    seeds = [int(s) for s in args.seeds.split(",")] if args.seeds else [base.loop.seed]
    rows = []
    for seed in seeds:
        raw = merge(base.model_dump(), {"loop": {**loop, "seed": seed}})
        if args.pretrain_steps is not None:
            raw["vision_pretrain"] = None if args.pretrain_steps == 0 else {**raw["vision_pretrain"],
                                                                             "steps": args.pretrain_steps}  # fmt: skip
        cfg = DefaultTrainConfig.model_validate(raw)
        out = args.work / f"default-seed{seed}"
        t = time.perf_counter()
        metrics = train_default(model, datasets, out, cfg, run_dir=args.work / f".default-seed{seed}.run")
        wall = time.perf_counter() - t
        table = pl.read_csv(out / "eval_by_group.csv").with_columns(seed=pl.lit(seed))
        rows.append(table)
        with pl.Config(tbl_rows=100, tbl_width_chars=120, float_precision=3):
            print(table)
        pre = {k: round(v, 3) for k, v in metrics.items() if k.startswith("pretrain/") and "accuracy" in k}
        print(f"seed {seed}: overall test accuracy {metrics['test/accuracy']:.3f}  chance {metrics['test/chance']:.3f}  "
              f"majority {metrics['test/majority']:.3f}  (n={int(metrics['test/n'])}); vision pre-training {pre or 'off'}")  # fmt: skip
        print(f"seed {seed}: steps {metrics['steps']} (best {metrics.get('best_step')})  train loss "
              f"{metrics['loss_first']:.3f} -> {metrics['loss_last']:.3f}  training {metrics['seconds']:.0f} s  "
              f"pre-training {metrics.get('pretrain/seconds', 0):.0f} s  wall {wall:.0f} s", flush=True)  # fmt: skip
    if len(rows) > 1:
        spread = (
            pl.concat(rows).group_by("dataset", "query_type")
            .agg(pl.col("accuracy").mean().alias("mean"), pl.col("accuracy").min().alias("min"),
                 pl.col("accuracy").max().alias("max"), pl.col("chance").first(), pl.col("majority").first())
            .sort("dataset", "query_type")
        )  # fmt: skip
        with pl.Config(tbl_rows=100, tbl_width_chars=120, float_precision=3):
            print(f"over seeds {seeds}:")
            print(spread)


if __name__ == "__main__":
    main()
