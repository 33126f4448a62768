"""The generator plumbing every synthetic kind shares.

A kind is a ``GeneratorSpec``: a pydantic ``<Kind>Config``, a pure ``plan``
function (config -> manifest rows + one scene per image, no I/O) and a pure
``render`` function (scene -> PIL image). ``generate`` is the only place that
touches the disk: it renders every planned image into the temporary directory
``write_dataset`` provides, so a crash at image k leaves no ``out`` behind.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, get_args, get_origin

import polars as pl
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field

from vlmscope.data.generators.draw import save_png
from vlmscope.data.manifest import DatasetInfo, write_dataset
from vlmscope.errors import ConfigError
from vlmscope.registry import Registry

__all__ = [
    "MAX_N",
    "GeneratorConfig",
    "ImageJob",
    "Plan",
    "GeneratorSpec",
    "GENERATORS",
    "Progress",
    "make_config",
    "generate",
    "generate_dataset",
]

MAX_N = 10_000_000
"""Upper bound on ``n`` for every kind (a typo guard, not a resource limit)."""

Progress = Callable[[int, int], None]
"""``progress(done, total)`` called after each rendered image."""


class GeneratorConfig(BaseModel):
    """Knobs every kind has. Subclasses set ``kind`` and their own ``n`` default."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    kind: ClassVar[str] = ""

    n: int = Field(gt=0, le=MAX_N)
    """Number of samples (for ``relations``: source images)."""
    seed: int = Field(42, ge=0, le=2**63 - 1)
    """Seed of every random choice; same seed and params give byte-identical output."""
    test_fraction: float = Field(0.2, ge=0.0, lt=1.0)
    """Fraction of samples in the ``test`` split (stratified by the main label)."""


@dataclass(frozen=True)
class ImageJob:
    """One image to render: where it goes (relative path) and what it shows."""

    path: str
    scene: Any


@dataclass(frozen=True)
class Plan:
    """Everything a generator decided, before any pixel is drawn."""

    manifest: pl.DataFrame
    images: tuple[ImageJob, ...]
    extra: Mapping[str, Any] = field(default_factory=dict)
    """Recorded in ``dataset.json`` under ``extra`` (e.g. held-out combinations)."""


@dataclass(frozen=True)
class GeneratorSpec:
    """A registered kind: its config class, planner and renderer."""

    name: str
    config: type[GeneratorConfig]
    plan: Callable[[Any], Plan]
    render: Callable[[Any, Any], Image.Image]
    summary: str

    @property
    def variants(self) -> tuple[str, ...]:
        """Allowed ``variant`` values, empty when the kind has none."""
        f = self.config.model_fields.get("variant")
        if f is None:
            return ()
        ann = f.annotation
        return tuple(get_args(ann)) if get_origin(ann) is Literal else ()


GENERATORS: Registry[GeneratorSpec] = Registry("generator")
"""Kind name -> spec; filled by the kind modules on import."""


def make_config(kind: str, **params: Any) -> GeneratorConfig:
    """Validate ``params`` into the kind's config (pydantic ValidationError on bad values).

    Unknown parameter names raise ``ConfigError`` listing the valid ones, so a
    typo in ``params.yaml`` or ``--set`` is fixed from the message.
    """
    spec = GENERATORS.get(kind)
    fields = spec.config.model_fields
    unknown = sorted(set(params) - set(fields))
    if unknown:
        raise ConfigError(
            f"unknown parameter(s) {', '.join(map(repr, unknown))} for generator {kind!r}; "
            f"valid: {', '.join(sorted(fields))}"
        )
    return spec.config(**params)


def generate(
    config: GeneratorConfig,
    out: str | os.PathLike[str],
    *,
    progress: Progress | None = None,
) -> DatasetInfo:
    """Plan, render and write one dataset directory atomically; returns its ``DatasetInfo``."""
    spec = GENERATORS.get(config.kind)
    if not isinstance(config, spec.config):
        raise ConfigError(f"config for {config.kind!r} must be {spec.config.__name__}, got {type(config).__name__}")
    plan = spec.plan(config)

    def build(tmp: Path) -> pl.DataFrame:
        total = len(plan.images)
        for i, job in enumerate(plan.images):
            save_png(spec.render(job.scene, config), tmp / job.path)
            if progress is not None:
                progress(i + 1, total)
        return plan.manifest

    return write_dataset(
        out,
        generator=spec.name,
        params=config.model_dump(mode="json"),
        seed=config.seed,
        build=build,
        extra={"n_images": len(plan.images), **plan.extra},
    )


def generate_dataset(
    kind: str,
    out: str | os.PathLike[str],
    *,
    n: int,
    seed: int,
    variant: str | None = None,
    progress: Progress | None = None,
    **params: Any,
) -> DatasetInfo:
    """Generate a ``kind`` dataset of ``n`` samples into ``out`` (the one-call entry point).

    ``variant`` picks a sub-design where the kind has some (``counting``:
    balanced, distractors, clustered, scattered, unseen-combinations); other
    ``params`` are fields of the kind's config.
    """
    spec = GENERATORS.get(kind)
    if variant is not None:
        if not spec.variants:
            raise ConfigError(f"generator {kind!r} has no variants; got variant={variant!r} (drop it)")
        params["variant"] = variant
    return generate(make_config(kind, n=n, seed=seed, **params), out, progress=progress)
