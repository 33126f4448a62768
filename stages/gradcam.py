"""DVC stage: Grad-CAM overlays of one model on one dataset (params: --section, e.g. gradcam)."""

from __future__ import annotations

import argparse

from vlmscope.attribution.gradcam import GradcamConfig, gradcam
from vlmscope.models.ref import resolve_source
from vlmscope.params import load_config, read_params, run_stage


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--section", default="gradcam", help="dotted params.yaml key holding the GradcamConfig")
    ap.add_argument("--model-dir", required=True, help="pinned or trained directory (a dvc.yaml dep)")
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    config = load_config(GradcamConfig, read_params(), args.section)
    model = resolve_source(args.model_dir)
    gradcam(model.source, args.dataset, args.out, config, revision=model.revision)


if __name__ == "__main__":
    run_stage(main)
