"""Model loading: one adapter per family, chosen from the checkpoint itself.

``load_model(source)`` reads ``config.json`` (and the ``vlmscope.json``
sidecar that vlmscope's own builders write) to pick the family, then loads
through that family's adapter and transformers' Auto classes. ``source`` is a
hub id or a local directory; nothing here special-cases a family.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vlmscope.errors import ModelError, NotFound
from vlmscope.models.adapter import (
    ADAPTERS,
    Capabilities,
    ContrastiveAdapter,
    EncodedBatch,
    LoadOptions,
    ModelAdapter,
    TensorNames,
)

__all__ = [
    "ADAPTERS",
    "Capabilities",
    "ContrastiveAdapter",
    "EncodedBatch",
    "FamilyInfo",
    "LoadOptions",
    "ModelAdapter",
    "TensorNames",
    "classifier_names",
    "detect_family",
    "family_info",
    "list_families",
    "load_model",
    "read_config",
    "tiny_owner",
]


@dataclass(frozen=True)
class FamilyInfo:
    """One row of ``vlmscope models list``."""

    name: str
    capabilities: Capabilities
    model_types: tuple[str, ...]
    """``config.json`` ``model_type`` values that map to this family."""
    examples: tuple[str, ...]
    """Hub ids the studies used."""
    tiny: bool
    """Whether ``vlmscope models tiny`` can build it."""
    tiny_builds: tuple[str, ...] = ()
    """Tiny build names of this family: its own name and its variants (``llava-mistral``)."""


def _families() -> None:
    import vlmscope.models.families  # noqa: F401  (registers every family)


def list_families() -> list[str]:
    """Registered family names, sorted."""
    _families()
    return ADAPTERS.names()


def tiny_owner(build: str) -> str | None:
    """The family a tiny build belongs to: the family of the same name, else the longest family-name prefix."""
    _families()
    names = ADAPTERS.names()
    if build in names:
        return build
    prefixes = [n for n in names if build.startswith(n)]
    return max(prefixes, key=len) if prefixes else None


def family_info() -> list[FamilyInfo]:
    """Capabilities, model types, example ids and tiny builds of every family."""
    from vlmscope.models.registry import TINY

    _families()
    builds = {b: tiny_owner(b) for b in TINY.names()}
    rows = []
    for name in ADAPTERS.names():
        cls = ADAPTERS.get(name)
        rows.append(
            FamilyInfo(
                name=name,
                capabilities=cls.capabilities,
                model_types=tuple(cls.model_types),
                examples=tuple(cls.examples),
                tiny=name in TINY,
                tiny_builds=tuple(b for b, owner in builds.items() if owner == name),
            )
        )
    return rows


def classifier_names() -> frozenset[str]:
    """Family names and ``model_type`` values (lower case) of image classifiers (CLIP-like models).

    For code that only has a recorded name (a report reading ``config.json``)
    and must tell a classifier from a generator without loading anything.
    """
    _families()
    out: set[str] = set()
    for name in ADAPTERS.names():
        cls = ADAPTERS.get(name)
        if cls.is_classifier:
            out |= {name, *cls.model_types, *cls.related_model_types}
    return frozenset(n.lower() for n in out)


def _is_local(source: str | os.PathLike[str]) -> bool:
    return Path(source).exists()


def _hub_json(source: str, filename: str, revision: str | None) -> dict[str, Any] | None:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    try:
        path = hf_hub_download(source, filename, revision=revision)
    except EntryNotFoundError:
        return None
    except Exception as e:  # offline, unknown repo, auth ...
        if filename == "config.json":
            raise ModelError(
                f"cannot read config.json of {source!r}: not a local directory and the hub is unreachable "
                f"or the repo does not exist ({type(e).__name__}: {e})"
            ) from e
        return None
    with open(path) as fh:
        data = json.load(fh)
    return data if isinstance(data, dict) else None


def read_config(
    source: str | os.PathLike[str], *, revision: str | None = None
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """``(config.json, vlmscope.json or None)`` of a local directory or hub id."""
    from vlmscope.models.sidecar import SIDECAR, read_sidecar

    if _is_local(source):
        d = Path(source)
        cfg = d / "config.json"
        if not cfg.is_file():
            raise NotFound(f"{d}: no config.json; expected a transformers checkpoint directory")
        try:
            config = json.loads(cfg.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ModelError(f"{cfg}: not valid JSON ({e})") from e
        if not isinstance(config, dict):
            raise ModelError(f"{cfg}: expected a JSON object, got {type(config).__name__}")
        return config, read_sidecar(d)
    s = str(source)
    config = _hub_json(s, "config.json", revision)
    if config is None:
        raise ModelError(f"{s}: config.json on the hub is not a JSON object")
    return config, _hub_json(s, SIDECAR, revision)


def detect_family(source: str | os.PathLike[str], *, revision: str | None = None) -> str:
    """The family of a checkpoint: the sidecar's ``family`` if present, else from ``model_type``."""
    _families()
    config, sidecar = read_config(source, revision=revision)
    if sidecar and "family" in sidecar:
        fam = str(sidecar["family"])
        ADAPTERS.get(fam)  # unknown family -> ConfigError listing the valid ones
        return fam
    model_type = config.get("model_type")
    if not model_type:
        raise ModelError(f"{source}: config.json has no model_type; pass family= explicitly")
    matches = [n for n in ADAPTERS.names() if model_type in ADAPTERS.get(n).model_types]
    if not matches:
        raise ModelError(
            f"{source}: no vlmscope family handles model_type {model_type!r}; "
            f"families: {', '.join(ADAPTERS.names())}. Pass family= to force one"
        )
    # several families may share a model_type (llava vs composite): the first declared default wins
    defaults = [n for n in matches if ADAPTERS.get(n).default_for_model_type]
    return (defaults or matches)[0]


def load_model(
    source: str | os.PathLike[str],
    *,
    family: str | None = None,
    options: LoadOptions = LoadOptions(),
) -> ModelAdapter | ContrastiveAdapter:
    """Load a checkpoint (hub id or local directory) behind its family's adapter."""
    _families()
    fam = family or detect_family(source, revision=options.revision)
    cls = ADAPTERS.get(fam)
    return cls.from_pretrained(str(source), options)
