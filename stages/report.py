"""DVC stage: build the self-contained HTML report over everything under the --artifacts root,
and the published figures next to this run's numbers as a flat metrics file (--comparison)."""

from __future__ import annotations

import argparse

from vlmscope.params import load_config, read_params, run_stage
from vlmscope.report import ReportConfig, build_report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--artifacts", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--comparison", default=None, help="published_comparison.json for dvc metrics (outside --out)")
    args = ap.parse_args()
    config = load_config(ReportConfig, read_params(), "report")
    build_report(args.artifacts, args.out, config, comparison=args.comparison)


if __name__ == "__main__":
    run_stage(main)
