"""DVC stage: pin a hub model (id + revision) into the model directory dvc.yaml names (--out)."""

from __future__ import annotations

import argparse

from vlmscope.models.ref import ModelRef, write_ref
from vlmscope.params import read_params, run_stage, section


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--section", required=True, help="dotted params.yaml key, e.g. hub_models.llava15-7b")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    p = section(read_params(), args.section)
    write_ref(args.out, ModelRef(source=str(p["source"]), revision=p.get("revision")))


if __name__ == "__main__":
    run_stage(main)
