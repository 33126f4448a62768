"""`pip install` into the running venv, through uv when uv is available.

Why: the bootstrap installs ~3 GB of wheels (torch, its CUDA libraries,
transformers, dvc ...). pip unpacks them one at a time; uv unpacks them in
parallel. Measured on a 2-core machine of this workplace, fresh venv, torch +
torchvision + the package: 157 s with pip, 54 s with uv (empty uv cache,
bytecode compiled as pip does).

uv does not read pip's configuration, so the index URLs, find-links and
constraints pip would use (pip.conf files and PIP_* variables, as `pip config
list` reports them) are passed to it, and it picks the best version across
all indexes as pip does. uv keeps its usual cache (~/.cache/uv, hard-linked
into the venv where the file system allows). uv is only ever a speed-up: when
it cannot be installed or its install fails, the same arguments go to pip.

Usage (the Makefile's): python tools/pip_install.py [pip install arguments]
Set VLMSCOPE_NO_UV=1 to use pip only.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

_OPTIONS = {
    "index-url": "--index-url",
    "extra-index-url": "--extra-index-url",
    "find-links": "--find-links",
    "constraint": "--constraint",
}


def pip_config_args(listing: str) -> list[str]:
    """uv options equivalent to pip's configured sources, from `pip config list` output.

    Lines look like ``global.extra-index-url='file:///a file:///b'`` or
    ``:env:.find-links='/opt/wheels'``; list-valued options are
    whitespace-separated. The first ``index-url`` wins (uv takes one).
    """
    args: list[str] = []
    seen: set[tuple[str, str]] = set()
    index_given = False
    for line in listing.splitlines():
        name, sep, raw = line.partition("=")
        key = name.rsplit(".", 1)[-1].strip()
        if not sep or key not in _OPTIONS:
            continue
        try:
            value = ast.literal_eval(raw.strip())
        except (ValueError, SyntaxError):
            value = raw.strip()
        for item in str(value).split():
            if (key, item) in seen or (key == "index-url" and index_given):
                continue
            seen.add((key, item))
            index_given = index_given or key == "index-url"
            args += [_OPTIONS[key], item]
    return args


def _run(cmd: list[str]) -> int:
    return subprocess.run(cmd).returncode


def _uv() -> str | None:
    """Path of uv in this venv, installing it with pip first if needed; None if that fails."""
    uv = Path(sys.executable).with_name("uv")
    if not uv.exists():
        _run([sys.executable, "-m", "pip", "install", "-q", "uv"])
    return str(uv) if uv.exists() else None


def main(argv: list[str]) -> int:
    uv = None if os.environ.get("VLMSCOPE_NO_UV") else _uv()
    if uv is not None:
        listing = subprocess.run(
            [sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True
        ).stdout
        # --compile-bytecode: pip writes .pyc files at install and uv does not by default; without
        # them (and with PYTHONDONTWRITEBYTECODE set, as on these machines) every stage process
        # recompiles torch and transformers: 14 s instead of 6 s per import, measured here
        cmd = [uv, "pip", "install", "--python", sys.executable, "--index-strategy", "unsafe-best-match",
               "--compile-bytecode"]  # fmt: skip
        if _run(cmd + pip_config_args(listing) + argv) == 0:
            return 0
        print("pip_install: uv failed; installing the same with pip", file=sys.stderr)
    return _run([sys.executable, "-m", "pip", "install", *argv])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
