"""DVC stage: train a projector, a LoRA adapter or a CLIP classifier (params: --section, e.g. train.projector).

The trainer's checkpoints live beside ``--out`` (``.<name>.run``, outside any
DVC output) and are deleted after a successful run unless ``loop.keep_run_dir``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from vlmscope.models.ref import resolve_source
from vlmscope.params import load_config, read_params, run_stage
from vlmscope.training.trainers.clip import ClipTrainConfig, train_clip
from vlmscope.training.trainers.lora import LoraTrainConfig, train_lora
from vlmscope.training.trainers.projector import ProjectorTrainConfig, train_projector

TRAINERS = {
    "projector": (ProjectorTrainConfig, train_projector),
    "lora": (LoraTrainConfig, train_lora),
    "clip": (ClipTrainConfig, train_clip),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--trainer", required=True, choices=sorted(TRAINERS))
    ap.add_argument("--section", required=True, help="dotted params.yaml key holding the trainer's config")
    ap.add_argument("--model-dir", required=True, help="the model to train: pinned or built directory (a dvc.yaml dep)")
    ap.add_argument("--dataset", required=True, action="append", type=Path, help="a training dataset (repeat)")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    config_class, trainer = TRAINERS[args.trainer]
    config = load_config(config_class, read_params(), args.section)
    model = resolve_source(args.model_dir)
    trainer(model.source, args.dataset, args.out, config, revision=model.revision)


if __name__ == "__main__":
    run_stage(main)
