"""DVC stage: evaluate one pipeline model on one dataset (params: evaluate, models.<name>)."""

from __future__ import annotations

import argparse
from pathlib import Path

from vlmscope.evaluation.config import EvaluateConfig
from vlmscope.evaluation.runner import evaluate
from vlmscope.models.ref import pipeline_model
from vlmscope.params import load_config, read_params, run_stage, section


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", required=True, help="name under params.yaml `models`")
    ap.add_argument("--model-dir", required=True, help="its pinned or trained directory (a dvc.yaml dep)")
    ap.add_argument("--dataset", required=True, type=Path)
    ap.add_argument("--out", required=True, type=Path)
    args = ap.parse_args()
    params = read_params()
    model = pipeline_model(args.model, section(params, f"models.{args.model}"), args.model_dir)
    per_dataset = section(params, f"datasets.{args.dataset.name}.evaluate", default={})
    config = load_config(EvaluateConfig, params, "evaluate", dtype=model.dtype, device_map=model.device_map, **per_dataset)
    evaluate(model.source, args.dataset, args.out, config, revision=model.revision, progress=False)


if __name__ == "__main__":
    run_stage(main)
