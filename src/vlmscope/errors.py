"""The error hierarchy every part of vlmscope raises on bad user input.

Each error also subclasses the matching builtin (as zarr does), so callers
that only know ``FileNotFoundError`` or ``ValueError`` still catch it. The CLI
turns any ``VlmscopeError`` into a one-line message and a non-zero exit; a
traceback means a bug in vlmscope, never in the user's input.
"""

from __future__ import annotations

__all__ = [
    "VlmscopeError",
    "ConfigError",
    "DatasetError",
    "ImageError",
    "NotFound",
    "StoreError",
    "StoreMismatch",
    "StoreLocked",
    "ShardCorrupt",
    "ModelError",
    "ImporterError",
    "TrainingError",
    "VlmscopeWarning",
    "SmallSampleWarning",
    "OutputRefused",
    "DiskFull",
]


class VlmscopeError(Exception):
    """Base of every error vlmscope raises on purpose."""


class ConfigError(VlmscopeError, ValueError):
    """A parameter is out of range or of the wrong kind; the message names it."""


class DatasetError(VlmscopeError, ValueError):
    """A dataset directory or manifest breaks the contract (file, row, field named)."""


class ImageError(DatasetError):
    """An image a dataset lists is missing or unreadable (file, sample and manifest row named)."""


class NotFound(VlmscopeError, FileNotFoundError):
    """A file or directory the operation needs does not exist."""


class StoreError(VlmscopeError, ValueError):
    """An activation store is unusable as asked (incomplete, missing variable, ...)."""


class StoreMismatch(StoreError):
    """An existing store was made for another model, dataset or capture spec."""


class StoreLocked(StoreError):
    """Another process holds the store's write lock."""


class ShardCorrupt(StoreError):
    """A file of a complete activation store is missing, truncated, empty or fails its checksum (file named)."""


class ModelError(VlmscopeError, ValueError):
    """A model cannot be loaded or does not support what was asked of it."""


class ImporterError(VlmscopeError, ValueError):
    """A real-data source file is malformed (file and position named)."""


class TrainingError(VlmscopeError, ValueError):
    """A training run is misconfigured (nothing trainable, empty answer span, ...)."""


class VlmscopeWarning(UserWarning):
    """Base of the warnings vlmscope issues on purpose: the run goes on, but the user should know."""


class SmallSampleWarning(VlmscopeWarning):
    """Too few samples for the numbers computed from them to mean anything (counts named)."""


class OutputRefused(ConfigError):
    """``--out`` names something this command must not replace (user data, an input, another kind)."""


class DiskFull(VlmscopeError, OSError):
    """The file system filled up while writing (path, free and needed space named; partial output removed)."""
