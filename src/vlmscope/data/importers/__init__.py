"""Real-data importers: foreign annotation formats -> the standard dataset directory.

One module per format; each exposes ``<Format>ImportConfig`` (pydantic, the
knobs) and ``import_<format>(sources, [images,] out, config) -> ImportReport``.
``IMPORTERS`` maps the format names used by ``vlmscope import FORMAT`` and
the DVC stages onto them, so a stage can do::

    spec = IMPORTERS.get(name)
    spec.run(sources, out, spec.config(**params), images=images)

(``relations-queries`` also takes ``masked_images=DIR``, passed through.)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vlmscope.data.importers.class_folders import ClassFoldersImportConfig, import_class_folders
from vlmscope.data.importers.common import ImportConfigBase, ImportReport
from vlmscope.data.importers.countbench import CountBenchImportConfig, import_countbench
from vlmscope.data.importers.counting_qa import CountingQaImportConfig, import_counting_qa
from vlmscope.data.importers.llava import LlavaImportConfig, import_llava
from vlmscope.data.importers.pixmo_count import PixmoCountImportConfig, import_pixmo_count
from vlmscope.data.importers.relations_queries import RelationsQueriesImportConfig, import_relations_queries
from vlmscope.data.importers.vrd import VrdImportConfig, import_vrd
from vlmscope.errors import ConfigError
from vlmscope.registry import Registry

__all__ = [
    "IMPORTERS",
    "ImporterSpec",
    "ImportReport",
    "CountBenchImportConfig",
    "CountingQaImportConfig",
    "LlavaImportConfig",
    "PixmoCountImportConfig",
    "RelationsQueriesImportConfig",
    "VrdImportConfig",
    "ClassFoldersImportConfig",
    "import_countbench",
    "import_counting_qa",
    "import_llava",
    "import_pixmo_count",
    "import_relations_queries",
    "import_vrd",
    "import_class_folders",
]


@dataclass(frozen=True)
class ImporterSpec:
    """A format's config class and import function, and whether it reads an images folder."""

    name: str
    config: type[ImportConfigBase]
    function: Callable[..., ImportReport]
    needs_images: bool = True

    def run(
        self,
        sources: Sequence[Path],
        out: Path,
        config: ImportConfigBase | None = None,
        *,
        images: Path | None = None,
        **kwargs: Any,
    ) -> ImportReport:
        """Call the importer with the argument shape it takes."""
        config = config if config is not None else self.config()
        if not isinstance(config, self.config):
            raise ConfigError(f"{self.name} importer needs a {self.config.__name__}, got {type(config).__name__}")
        if self.needs_images:
            if images is None:
                raise ConfigError(f"{self.name} importer needs --images DIR (the folder holding the source images)")
            return self.function(sources, images, out, config, **kwargs)
        return self.function(sources, out, config, **kwargs)


IMPORTERS: Registry[ImporterSpec] = Registry("importer")
for _spec in (
    ImporterSpec("vrd", VrdImportConfig, import_vrd),
    ImporterSpec("llava", LlavaImportConfig, import_llava),
    ImporterSpec("pixmo-count", PixmoCountImportConfig, import_pixmo_count),
    ImporterSpec("countbench", CountBenchImportConfig, import_countbench, needs_images=False),
    ImporterSpec("counting-qa", CountingQaImportConfig, import_counting_qa),
    ImporterSpec("relations-queries", RelationsQueriesImportConfig, import_relations_queries),
    ImporterSpec("class-folders", ClassFoldersImportConfig, import_class_folders, needs_images=False),
):
    IMPORTERS.register(_spec.name)(_spec)
