"""DVC stage: fold a LoRA adapter or trained projector tensors into a full checkpoint (no params)."""

from __future__ import annotations

import argparse

from vlmscope.models.merge import merge_adapter, merge_tensors
from vlmscope.models.ref import resolve_source
from vlmscope.params import run_stage


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--base", required=True, help="the checkpoint to merge into: pinned or built directory")
    what = ap.add_mutually_exclusive_group(required=True)
    what.add_argument("--adapter", help="a `train lora` output (or its adapter/ folder)")
    what.add_argument("--projector", help="a `train projector` output or its projector.safetensors")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    # TODO(ckpt): pass revision=base.revision once merge takes it
    base = resolve_source(args.base)
    if args.adapter is not None:
        merge_adapter(base.source, args.adapter, args.out)
    else:
        merge_tensors(base.source, args.projector, args.out)


if __name__ == "__main__":
    run_stage(main)
