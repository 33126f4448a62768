"""Apply a params profile (a partial ``params.yaml``) by deep merge.

A profile names only what differs (``profiles/real-gpu.yaml`` adds hub models
and full-size datasets; ``profiles/smoke.yaml`` shrinks everything), so the
one ``params.yaml`` stays the single source of defaults.

    python -m vlmscope.profiles profiles/real-gpu.yaml [--params params.yaml]
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import yaml

from vlmscope.errors import ConfigError
from vlmscope.params import merge, read_params

__all__ = ["merge", "apply_profile"]


def apply_profile(profile: str | Path, params: str | Path = "params.yaml") -> dict[str, Any]:
    prof = yaml.safe_load(Path(profile).read_text()) or {}
    if not isinstance(prof, dict):
        raise ConfigError(f"{profile}: a profile must be a mapping of params.yaml sections")
    merged = merge(read_params(params), prof)
    Path(params).write_text(yaml.safe_dump(merged, sort_keys=False))
    return merged


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("profile")
    ap.add_argument("--params", default="params.yaml")
    args = ap.parse_args()
    apply_profile(args.profile, args.params)
    print(f"applied {args.profile} to {args.params}")


if __name__ == "__main__":
    main()
