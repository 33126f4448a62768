"""Read ``params.yaml`` sections into typed configs at the DVC-stage boundary.

Stages never pass raw dicts down: a section is validated into the library's
pydantic ``<Thing>Config`` here, and a bad key or value fails with the dotted
path of the parameter in the message.

Every read goes through ``section``, so what a stage reads can be recorded:
with ``VLMSCOPE_STAGE_TRACE=FILE`` set, each dotted key read and, at the end of
``run_stage``, the vlmscope modules the process imported are appended to FILE
as JSON lines. The pipeline's test compares them with the stage's ``params``
and ``deps`` in ``dvc.yaml``, so a stage cannot read a key or run a module that
DVC does not watch.
"""

from __future__ import annotations

import copy
import json
import os
import sys
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from vlmscope.errors import ConfigError, NotFound

__all__ = ["read_params", "section", "load_config", "run_stage", "merge", "TRACE_ENV"]

C = TypeVar("C", bound=BaseModel)

TRACE_ENV = "VLMSCOPE_STAGE_TRACE"
"""Environment variable naming a JSON-lines file that records params keys read and modules run."""

_MISSING: Any = object()


def _trace(record: dict[str, Any]) -> None:
    path = os.environ.get(TRACE_ENV)
    if not path:
        return
    record = {"argv": sys.argv, **record}
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")


def merge(base: dict[str, Any], profile: dict[str, Any]) -> dict[str, Any]:
    """Deep merge: mappings merge key by key, anything else is replaced."""
    out = copy.deepcopy(base)
    for key, value in profile.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def read_params(path: str | os.PathLike[str] = "params.yaml") -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise NotFound(f"{p}: no params file (run from the repository root)")
    data = yaml.safe_load(p.read_text()) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: top level must be a mapping, got {type(data).__name__}")
    return data


def section(params: dict[str, Any], dotted: str, default: Any = _MISSING) -> Any:
    """``section(params, "datasets.spatial.generator")``; errors name the missing key.

    With ``default``, a missing key gives ``default`` instead of an error (the
    read is recorded all the same: a key the stage would use if present is a
    key it depends on).
    """
    _trace({"param": dotted})
    node: Any = params
    done: list[str] = []
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            if default is not _MISSING:
                return default
            have = ", ".join(sorted(node)) if isinstance(node, dict) else type(node).__name__
            where = ".".join(done) or "<top level>"
            raise ConfigError(f"params.yaml: no key {part!r} under {where} (has: {have})")
        node = node[part]
        done.append(part)
    return node


def load_config(
    model: type[C],
    params: dict[str, Any],
    dotted: str,
    *,
    drop: tuple[str, ...] = (),
    base: BaseModel | None = None,
    **overrides: Any,
) -> C:
    """Validate ``params[dotted]`` (less ``drop``, plus ``overrides``) into ``model``; errors carry the dotted path.

    ``drop`` names keys that belong to the pipeline's wiring (e.g. which
    datasets a stage fans out over), not to the library config. ``base`` is a
    config whose values the section overrides key by key, nested sections
    included (so ``train_default.loop.max_steps`` keeps the other tuned loop
    defaults).
    """
    raw = {k: v for k, v in dict(section(params, dotted) or {}).items() if k not in drop}
    if base is not None:
        raw = merge(base.model_dump(), raw)
    raw.update(overrides)
    try:
        return model.model_validate(raw)
    except ValidationError as e:
        first = e.errors()[0]
        loc = ".".join(str(x) for x in first.get("loc", ()))
        raise ConfigError(
            f"params.yaml: {dotted}.{loc}: {first.get('msg')} (got {first.get('input')!r})"
        ) from None


def run_stage(main: Any) -> None:
    """Run a ``stages/*.py`` main: user errors become one line and exit status 1."""
    import warnings

    from vlmscope.errors import VlmscopeError, VlmscopeWarning

    if os.environ.get("VLMSCOPE_WARNINGS_AS_ERRORS") == "1":
        # the end-to-end test runs every stage this way (STYLE.md practice 10); vlmscope's own
        # warnings (a probe on the smoke profile's few samples) are messages to the user, not defects
        warnings.simplefilter("error")
        warnings.simplefilter("default", VlmscopeWarning)
    try:
        main()
    except VlmscopeError as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(1) from None
    finally:
        _trace({"modules": sorted(m for m in sys.modules if m == "vlmscope" or m.startswith("vlmscope."))})
