"""`dvc pull`, but saying why there is nothing to pull on a clone without a committed dvc.lock.

    python tools/pull.py [DVC PULL ARGS...]      # or: make pull

DVC pulls the outputs whose hashes ``dvc.lock`` records. Until someone has run
``dvc repro``, committed ``dvc.lock`` and ``dvc push``-ed, a fresh clone has no
``dvc.lock``, and ``dvc pull`` has no hash to fetch: it ends quietly and the
user is left wondering where the results are. This wrapper says so in one
line and exits 1; with a ``dvc.lock`` it runs ``dvc pull`` unchanged.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

NOTHING_TO_PULL = (
    "nothing to pull: {root} has no dvc.lock; results become pullable once whoever ran "
    "`dvc repro` commits dvc.lock and runs `dvc push` (then: git pull && make pull), "
    "or build them here with `make repro`"
)


def main(argv: list[str] | None = None, root: Path | None = None) -> int:
    """Exit status of ``dvc pull argv`` run in ``root`` (default: this checkout), or 1 with no dvc.lock."""
    root = (root or Path(__file__).resolve().parents[1]).resolve()
    if not (root / "dvc.lock").is_file():
        print("error: " + NOTHING_TO_PULL.format(root=root), file=sys.stderr)
        return 1
    return subprocess.call([sys.executable, "-m", "dvc", "pull", *(argv if argv is not None else sys.argv[1:])], cwd=root)


if __name__ == "__main__":
    raise SystemExit(main())
