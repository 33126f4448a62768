"""DVC stage: output-layer fine-tuning on one store's cached last-layer states, scored on further stores (params: output_layer)."""

from __future__ import annotations

import argparse

from vlmscope.models.ref import resolve_source
from vlmscope.params import load_config, read_params, run_stage
from vlmscope.training.trainers.output_layer import OutputLayerTrainConfig, train_output_layer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model-dir", required=True, help="the store's model: pinned or trained directory (a dvc.yaml dep)")
    ap.add_argument("--store", required=True, help="store whose train/valid rows fit the head")
    ap.add_argument("--eval-store", action="append", default=[], help="further store scored with the trained head")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    # `datasets` (the root pipeline) and `train` / `test` (a study's) say which stores dvc.yaml passes;
    # they are wiring, not training knobs
    config = load_config(OutputLayerTrainConfig, read_params(), "output_layer", drop=("datasets", "train", "test"))
    model = resolve_source(args.model_dir)
    train_output_layer(args.store, model.source, args.out, config, eval_stores=args.eval_store, revision=model.revision)


if __name__ == "__main__":
    run_stage(main)
