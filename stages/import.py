"""DVC stage: import a real released dataset into a dataset directory (params: imports.<name>).

The section names the format (an ``IMPORTERS`` name: ``pixmo-count``,
``counting-qa``, ``relations-queries``, ``vrd``, ``llava``, ...) and the
importer's config; the source file or folder and the image folders come on
the command line, because dvc.yaml also declares them as deps (templated
from the same params, so pointing params.yaml at the real released files is
the only edit a user makes).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from vlmscope.data.importers import IMPORTERS
from vlmscope.params import load_config, read_params, run_stage, section


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--section", required=True, help="dotted params.yaml key, e.g. imports.pixmo")
    ap.add_argument("--source", required=True, type=Path, action="append", help="annotation file or folder (repeat)")
    ap.add_argument("--images", type=Path, help="folder the source's image paths are relative to")
    ap.add_argument("--masked-images", type=Path, help="folder of the masked copies (relations-queries)")
    ap.add_argument("--out", required=True, type=Path)
    args = ap.parse_args()
    params = read_params()
    spec = IMPORTERS.get(section(params, f"{args.section}.format"))
    config = load_config(spec.config, params, f"{args.section}.config") if section(
        params, f"{args.section}.config", default=None
    ) else spec.config()
    extra = {"masked_images": args.masked_images} if args.masked_images is not None else {}
    report = spec.run(args.source, args.out, config, images=args.images, **extra)
    print(report.summary())


if __name__ == "__main__":
    run_stage(main)
