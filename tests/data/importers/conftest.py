"""Small sources in the real importer formats, written per test into ``tmp_path``."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from PIL import Image


def _png(path: Path, color: tuple[int, int, int] = (200, 30, 30)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 6), color).save(path)
    return path


@pytest.fixture
def png() -> Callable[..., Path]:
    """``png(path, color=(r, g, b)) -> path``: a tiny real PNG file."""
    return _png


@pytest.fixture
def write_json() -> Callable[[Path, Any], Path]:
    def write(path: Path, data: Any) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data, indent=1))
        return path

    return write


def _vrd_records() -> list[dict[str, Any]]:
    """Three images in the VRD scene-graph format; b.jpg is never on disk."""
    box = {"xmin": 0, "ymin": 0, "xmax": 4, "ymax": 4}
    return [
        {
            "filename": "a.jpg",
            "photo_id": "a",
            "objects": [
                {"names": ["person"], "bbox": box},
                {"names": ["dog"], "bbox": box},
                {"names": ["truck"], "bbox": box},
                {"names": ["truck 2"], "bbox": box},
            ],
            "relationships": [
                {"objects": [0, 1], "relationship": "left of", "text": ["person", "left of", "dog"]},
                {"objects": [1, 0], "relationship": "right of", "text": ["dog", "right of", "person"]},
                {"objects": [2, 3], "relationship": "left of", "text": ["truck", "left of", "truck 2"]},
                {"objects": [0, 2], "relationship": "wear", "text": ["person", "wear", "truck"]},
                {"objects": [0, 2], "relationship": "behind", "text": ["person", "behind", "truck"]},
                {"objects": [0, 1], "relationship": "left of", "text": ["person", "left of", "dog"]},
            ],
        },
        {
            "filename": "b.jpg",
            "objects": [{"names": ["cat"], "bbox": box}, {"names": ["sofa"], "bbox": box}],
            "relationships": [{"objects": [0, 1], "relationship": "above"}],
        },
        {
            "filename": "c.png",
            "objects": [{"names": ["lamp"], "bbox": box}, {"names": ["table"], "bbox": box}],
            "relationships": [{"objects": [0, 1], "relationship": "above"}],
        },
    ]


@pytest.fixture
def vrd_records() -> Callable[[], list[dict[str, Any]]]:
    """``vrd_records()`` -> a fresh copy of the three-image VRD annotation list."""
    return _vrd_records


@pytest.fixture
def vrd_source(tmp_path: Path, png: Callable[..., Path], write_json: Callable[[Path, Any], Path]) -> tuple[Path, Path]:
    """(annotation file, images root) in the Kaggle layout: ``sg_train_images/<file>``."""
    root = tmp_path / "sg_dataset"
    png(root / "sg_train_images" / "a.jpg")
    png(root / "sg_train_images" / "c.png", (10, 200, 10))
    ann = write_json(root / "sg_train_annotations.json", _vrd_records())
    return ann, root
