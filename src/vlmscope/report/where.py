"""``python -m vlmscope.report.where DIR``: one line saying where the report is.

The Makefile calls it at the end of ``make repro``. When no report exists yet
it says so and still exits 0: reporting the location is never an error.
"""

from __future__ import annotations

import sys
from pathlib import Path

__all__ = ["report_location", "main"]

INDEX = "index.html"
"""Same as ``vlmscope.report.build.INDEX``; repeated so this stays import-light."""


def report_location(out: str | Path) -> str:
    """``Report: file:///abs/out/index.html``, or a line saying there is none yet."""
    index = Path(out) / INDEX
    if index.is_file():
        return f"Report: {index.resolve().as_uri()}"
    return f"No report yet at {index} (run `dvc repro` or `vlmscope report --out {out}`)."


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0] in ("-h", "--help"):
        print("usage: python -m vlmscope.report.where REPORT_DIR  (the Makefile passes dvc.yaml's report out)")
        return 0 if args and args[0] in ("-h", "--help") else 2
    print(report_location(args[0]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
