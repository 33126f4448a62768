"""DVC stage: train every weight of the tiny composite into the embedded default model (params: train_default)."""

from __future__ import annotations

import argparse
from pathlib import Path

from vlmscope.params import load_config, read_params, run_stage
from vlmscope.training.trainers.default_model import DefaultTrainConfig, train_default


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", required=True, help="the tiny checkpoint to start from")
    ap.add_argument("--dataset", required=True, action="append", type=Path, help="a training dataset (repeat)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--logs", required=True, help="metrics and curves for DVC, outside the checkpoint")
    args = ap.parse_args()
    config = load_config(DefaultTrainConfig, read_params(), "train_default", base=DefaultTrainConfig())
    train_default(args.model, args.dataset, args.out, config, logs=args.logs)


if __name__ == "__main__":
    run_stage(main)
