"""DVC stage: per-layer probes with control task on one store (params: probe, datasets.<name>.probe)."""

from __future__ import annotations

import argparse

from vlmscope.params import load_config, read_params, run_stage, section
from vlmscope.probing.config import ProbeConfig
from vlmscope.probing.run import run_probes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--dataset", required=True, help="name under params.yaml `datasets` (what to probe for)")
    ap.add_argument("--store", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    params = read_params()
    target = section(params, f"datasets.{args.dataset}.probe")
    config = load_config(ProbeConfig, params, "probe", **target)
    run_probes(args.store, config, args.out, progress=False)


if __name__ == "__main__":
    run_stage(main)
