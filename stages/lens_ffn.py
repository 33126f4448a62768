"""DVC stage: FFN value-vector analysis of one store vs a random-neuron baseline (params: ffn)."""

from __future__ import annotations

import argparse

from vlmscope.lens import FfnConfig, ffn_analysis
from vlmscope.params import load_config, read_params, run_stage


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model-dir", required=True, help="the store's model: pinned or trained directory (a dvc.yaml dep)")
    ap.add_argument("--store", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    config = load_config(FfnConfig, read_params(), "ffn")
    ffn_analysis(args.store, args.model_dir, config, args.out)


if __name__ == "__main__":
    run_stage(main)
