"""DVC stage: build the self-contained HTML report over everything under the --artifacts root."""

from __future__ import annotations

import argparse

from vlmscope.params import load_config, read_params, run_stage
from vlmscope.report import ReportConfig, build_report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--artifacts", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    build_report(args.artifacts, args.out, load_config(ReportConfig, read_params(), "report"))


if __name__ == "__main__":
    run_stage(main)
