"""Model loading: one adapter per family, chosen from the checkpoint itself.

``load_model(source)`` reads ``config.json`` (and the ``vlmscope.json``
sidecar that vlmscope's own builders write) to pick the family, then loads
through that family's adapter and transformers' Auto classes. ``source`` is a
hub id or a local directory; nothing here special-cases a family.
"""

from __future__ import annotations

import json
import os
import re
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
    "check_family",
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


_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$")
"""``name`` or ``owner/name``: what the hub accepts as a repo id (no ``..``, ``--`` edge cases needed here)."""


def _check_source(source: str | os.PathLike[str]) -> None:
    """Refuse a missing local path before the hub is asked about it.

    Why: a mistyped ``./artifacts/modle`` otherwise reaches the hub client and
    comes back as an "unreachable or no such repo" error about a hub id the
    user never meant. A source is a path when it is a ``PathLike``, starts with
    ``.``, ``/`` or ``~``, has a backslash or more than one ``/``, is not a
    well-formed hub id, or its first component is an existing local directory.
    """
    if _is_local(source):
        return
    s = str(source)
    looks_local = (
        isinstance(source, os.PathLike)
        or s.startswith((".", "/", "~"))
        or "\\" in s
        or not _HUB_ID.match(s)
        or ("/" in s and Path(s.split("/", 1)[0]).is_dir())
    )
    if looks_local:
        raise NotFound(f"no such directory: {s} (a local checkpoint directory was expected; hub ids are owner/name)")


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
    from vlmscope.io.jsonfile import read_json_object
    from vlmscope.models.sidecar import SIDECAR, read_sidecar

    _check_source(source)
    if _is_local(source):
        d = Path(source)
        cfg = d / "config.json"
        if not cfg.is_file():
            raise NotFound(f"{d}: no config.json; expected a transformers checkpoint directory")
        return read_json_object(cfg, ModelError), read_sidecar(d)
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


def check_family(source: str | os.PathLike[str], family: str, *, revision: str | None = None) -> None:
    """Refuse a forced ``family`` that the checkpoint contradicts.

    Contradicts: the ``vlmscope.json`` sidecar names another family, or
    ``config.json``'s ``model_type`` belongs to other families and not to this
    one. Forcing stays possible where detection has no answer (no sidecar and
    a ``model_type`` no family claims) and where families share a
    ``model_type`` (``composite`` over a llava config). Why: loading a Qwen
    checkpoint through the LLaVA adapter fails deep inside transformers, or
    worse, loads and reads the wrong layers.
    """
    _families()
    cls = ADAPTERS.get(family)  # unknown family -> ConfigError listing the valid ones
    config, sidecar = read_config(source, revision=revision)
    if sidecar and sidecar.get("family") and str(sidecar["family"]) != family:
        raise ModelError(
            f"--family {family} contradicts {source}: its vlmscope.json says family {sidecar['family']!r}; "
            "drop --family to use the detected one"
        )
    model_type = config.get("model_type")
    if (sidecar and sidecar.get("family")) or not model_type or model_type in cls.model_types:
        return
    owners = [n for n in ADAPTERS.names() if model_type in ADAPTERS.get(n).model_types]
    if owners:
        raise ModelError(
            f"--family {family} contradicts {source}: its config.json model_type {model_type!r} is "
            f"family {' or '.join(owners)}; drop --family to use the detected one"
        )


def load_model(
    source: str | os.PathLike[str],
    *,
    family: str | None = None,
    options: LoadOptions = LoadOptions(),
) -> ModelAdapter | ContrastiveAdapter:
    """Load a checkpoint (hub id or local directory) behind its family's adapter."""
    _families()
    _check_source(source)
    if family is not None and _is_local(source):
        check_family(source, family)
    fam = family or detect_family(source, revision=options.revision)
    cls = ADAPTERS.get(fam)
    if _is_local(source) and Path(source).is_dir():
        from vlmscope.io.tensorfile import check_safetensors_dir

        check_safetensors_dir(source)  # a truncated shard is one line naming it, not a safetensors traceback
    return cls.from_pretrained(str(source), options)
