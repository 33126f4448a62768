"""DVC stage: fold a LoRA adapter, trained projector tensors or a fine-tuned CLIP tower into a full checkpoint.

No params: what is merged into what is all on the command line (dvc.yaml
declares each directory as a dep). ``--base`` may be a checkpoint directory or
a pinned model directory (``vlmscope-ref.json``: hub id + revision).
"""

from __future__ import annotations

import argparse

from vlmscope.models.merge_checkpoint import merge_checkpoint
from vlmscope.models.ref import resolve_source
from vlmscope.params import run_stage


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--base", required=True, help="the checkpoint to merge into: pinned or built directory")
    what = ap.add_mutually_exclusive_group(required=True)
    what.add_argument("--adapter", help="a `train lora` output (or its adapter/ folder)")
    what.add_argument("--projector", help="a `train projector` output, its projector.safetensors, or an mm_projector.bin")
    what.add_argument("--vision-tower", help="a `train clip` output or a CLIP checkpoint directory")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    base = resolve_source(args.base)
    merge_checkpoint(base.source, args.out, adapter=args.adapter, projector=args.projector,
                     vision_tower=args.vision_tower, revision=base.revision)  # fmt: skip


if __name__ == "__main__":
    run_stage(main)
