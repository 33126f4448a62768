"""DVC stage: import one real-format dataset into the standard dataset directory (params: --section imports.<name>).

The section: ``format`` (an ``IMPORTERS`` name), ``source`` (a file or folder,
or a list of them), ``images`` (the image folder, for formats that read one),
``config`` (the importer's config) and, optionally, ``options`` (the
importer's keyword arguments, e.g. llava's ``seen_classes`` file).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from vlmscope.data.importers import IMPORTERS
from vlmscope.params import load_config, read_params, run_stage, section


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--section", required=True, help="dotted params.yaml key, e.g. imports.vg")
    ap.add_argument("--out", required=True, type=Path)
    args = ap.parse_args()
    params = read_params()
    p = section(params, args.section)
    spec = IMPORTERS.get(str(p["format"]))
    source = p["source"]
    sources = [Path(s) for s in (source if isinstance(source, list) else [source])]
    images = p.get("images")
    config = load_config(spec.config, params, f"{args.section}.config") if p.get("config") else spec.config()
    options = dict(p.get("options") or {})
    report = spec.run(sources, args.out, config, images=None if images is None else Path(images), **options)
    print(report.summary())


if __name__ == "__main__":
    run_stage(main)
