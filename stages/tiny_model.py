"""DVC stage: build a tiny random checkpoint of one family (params: --section, default tiny_model)."""

from __future__ import annotations

import argparse

from vlmscope.models.tiny import build_tiny
from vlmscope.params import read_params, run_stage, section


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--section", default="tiny_model", help="dotted params.yaml key holding {family, seed}")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    p = section(read_params(), args.section)
    build_tiny(p["family"], args.out, seed=int(p["seed"]))


if __name__ == "__main__":
    run_stage(main)
