"""Synthetic dataset generators: one module per kind, one registry, one entry point.

``generate_dataset(kind, out, n=..., seed=...)`` writes a dataset directory
(``manifest.parquet``, ``images/``, ``dataset.json``) atomically and
deterministically: the same seed and params give byte-identical files.
Kinds: ``spatial`` and ``color`` (study A), ``relations`` (study B),
``counting`` (study C, with variants). ``GENERATORS`` maps names to specs;
``make_config`` + ``generate`` is the same operation for callers that hold a
config (DVC stages building it from ``params.yaml``).
"""

from vlmscope.data.generators.base import (
    GENERATORS,
    GeneratorConfig,
    GeneratorSpec,
    ImageJob,
    Plan,
    generate,
    generate_dataset,
    make_config,
)
from vlmscope.data.generators.color import ColorConfig
from vlmscope.data.generators.counting import COUNTING_VARIANTS, CountingConfig
from vlmscope.data.generators.relations import RelationsConfig
from vlmscope.data.generators.spatial import SpatialConfig
from vlmscope.data.manifest import DatasetInfo

__all__ = [
    "GENERATORS",
    "GeneratorConfig",
    "GeneratorSpec",
    "ImageJob",
    "Plan",
    "DatasetInfo",
    "SpatialConfig",
    "ColorConfig",
    "RelationsConfig",
    "CountingConfig",
    "COUNTING_VARIANTS",
    "make_config",
    "generate",
    "generate_dataset",
]
