"""DVC stage: generate one synthetic dataset from its params.yaml section."""

from __future__ import annotations

import argparse

from vlmscope.data.generators import generate_dataset
from vlmscope.params import read_params, run_stage, section


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--section", required=True, help="dotted params.yaml key, e.g. datasets.spatial.generator")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    params = dict(section(read_params(), args.section))
    kind = params.pop("kind")
    generate_dataset(kind, args.out, **params)


if __name__ == "__main__":
    run_stage(main)
