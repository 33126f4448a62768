"""DVC stage: extract activations of one pipeline model on one dataset (params: extract, models.<name>)."""

from __future__ import annotations

import argparse

from vlmscope.activations.config import ExtractConfig
from vlmscope.activations.extract import extract
from vlmscope.models.ref import pipeline_model
from vlmscope.params import load_config, read_params, run_stage, section


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", required=True, help="name under params.yaml `models`")
    ap.add_argument("--model-dir", required=True, help="its pinned or trained directory (a dvc.yaml dep)")
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    params = read_params()
    model = pipeline_model(args.model, section(params, f"models.{args.model}"), args.model_dir)
    config = load_config(ExtractConfig, params, "extract", model_dtype=model.dtype, device=model.device)
    # resume a matching unfinished store (persisted by DVC), replace a stale one
    extract(config, model.source, args.dataset, args.out, revision=model.revision, overwrite=True)


if __name__ == "__main__":
    run_stage(main)
