"""Datasets: the manifest contract, synthetic generators and real-data importers."""

from vlmscope.data.manifest import (
    REQUIRED_COLUMNS,
    DatasetInfo,
    load_dataset_info,
    read_manifest,
    write_dataset,
)

__all__ = ["REQUIRED_COLUMNS", "DatasetInfo", "load_dataset_info", "read_manifest", "write_dataset"]
