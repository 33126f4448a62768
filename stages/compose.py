"""DVC stage: join a vision tower and an LM into a LLaVA-style composite (params: --section, e.g. compose).

A part given on the command line (``--tower DIR`` / ``--lm DIR``, a checkpoint
another stage wrote, so dvc.yaml declares it as a dep) replaces the section's
``tower`` / ``lm``; otherwise the section names a tiny kind or a hub id.
"""

from __future__ import annotations

import argparse

from vlmscope.models.compose import ComposeConfig, compose
from vlmscope.params import load_config, read_params, run_stage


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--section", default="compose", help="dotted params.yaml key holding the ComposeConfig")
    ap.add_argument("--tower", help="a tower checkpoint directory written by another stage (overrides the section)")
    ap.add_argument("--lm", help="an LM checkpoint directory written by another stage (overrides the section)")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    parts = {k: v for k, v in (("tower", args.tower), ("lm", args.lm)) if v is not None}
    compose(load_config(ComposeConfig, read_params(), args.section, **parts), args.out)


if __name__ == "__main__":
    run_stage(main)
