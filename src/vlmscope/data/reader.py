"""One dataset reader for extract, evaluate and train: manifest rows, splits, images.

Every stage reads a dataset directory (:mod:`vlmscope.data.manifest`) the
same way: the manifest's rows, filtered to some splits, and the images they
point at, decoded as RGB. Reading them here gives one behaviour and one
error (:class:`~vlmscope.errors.ImageError`, naming the file, the sample and
the manifest row) for a missing or broken image, whichever stage meets it.

A decompression bomb (a small file declaring e.g. 30000x30000 pixels, which
would take gigabytes to decode) is one more broken image: its size is read
from the header and refused before any pixel is decoded, above ``max_pixels``
(a config field of the stages that read images, default
:data:`MAX_IMAGE_PIXELS`), so ``--on-error skip`` skips it like any other.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from vlmscope.data.manifest import MANIFEST, read_manifest, resolve_image
from vlmscope.errors import DatasetError, ImageError

if TYPE_CHECKING:  # pragma: no cover
    from PIL.Image import Image

__all__ = ["MAX_IMAGE_PIXELS", "PIL_PIXEL_CEILING", "ImageCache", "image_path", "load_image", "read_rows", "split_rows"]

MAX_IMAGE_PIXELS = 89_478_485
"""Default pixel limit per image: PIL's own (about 9459 x 9459, ~0.27 GB decoded as RGB)."""

PIL_PIXEL_CEILING = 2 * MAX_IMAGE_PIXELS
"""PIL refuses images above twice its limit whatever vlmscope asks, so no limit can go higher."""


def split_rows(df: pl.DataFrame, splits: Sequence[str], where: str, *, hint: str = "") -> pl.DataFrame:
    """Rows whose ``split`` is in ``splits``; the error lists the splits the manifest has (then ``hint``)."""
    out = df.filter(pl.col("split").is_in(list(splits)))
    if out.is_empty():
        have = sorted(df["split"].unique().to_list())
        raise DatasetError(f"{where}: no rows in split(s) {list(splits)}; the manifest has splits {have}{hint}")
    return out


def read_rows(
    dataset: str | os.PathLike[str],
    splits: Sequence[str] | None = None,
    *,
    limit: int | None = None,
    allow_empty: bool = False,
    hint: str = "",
) -> pl.DataFrame:
    """The manifest rows of ``splits`` (None: all), in manifest order, the first ``limit`` of them.

    Raises:
        NotFound / DatasetError: no or a malformed manifest (:func:`read_manifest`);
            DatasetError: no row in ``splits`` unless ``allow_empty`` (``hint`` is appended).
    """
    root = Path(dataset)
    df = read_manifest(root)
    if splits is not None:
        if allow_empty:
            df = df.filter(pl.col("split").is_in(list(splits)))
        else:
            df = split_rows(df, splits, str(root / MANIFEST), hint=hint)
    if limit is not None:
        df = df.head(limit)
    return df


def image_path(dataset: str | os.PathLike[str], image: str) -> Path:
    """Absolute path of a manifest ``image`` entry (refusing paths that leave the dataset)."""
    return resolve_image(Path(dataset), image)


def _whose(sample_id: str | None, row: int | None) -> str:
    if sample_id is None and row is None:
        return "image"
    parts = [f"sample {sample_id!r}"] if sample_id is not None else []
    if row is not None:
        parts.append(f"(manifest row {row})")
    return "image of " + " ".join(parts)


def load_image(
    path: str | os.PathLike[str],
    *,
    sample_id: str | None = None,
    row: int | None = None,
    max_pixels: int = MAX_IMAGE_PIXELS,
) -> Image:
    """Open and decode one image as RGB, refusing more than ``max_pixels`` pixels before decoding.

    Raises:
        ImageError: ``"<path>: image of sample 's1' (manifest row 7) does not exist"``,
            ``... is unreadable (<PIL's error>)`` for a truncated or non-image file, or
            ``... declares 30000x30000 = 900000000 pixels, over the limit of ...`` (a decompression bomb).
    """
    from PIL import Image as PILImage

    path = Path(path)
    try:
        with warnings.catch_warnings():
            # vlmscope applies its own limit below; PIL's warning between its limit and twice it is noise
            warnings.simplefilter("ignore", PILImage.DecompressionBombWarning)
            im_ctx = PILImage.open(path)
        with im_ctx as im:
            _check_pixels(path, im.size, max_pixels, sample_id, row)
            return im.convert("RGB")
    except ImageError:
        raise
    except FileNotFoundError:
        raise ImageError(f"{path}: {_whose(sample_id, row)} does not exist") from None
    except PILImage.DecompressionBombError as e:  # above PIL's ceiling: PIL refuses at open
        raise ImageError(f"{path}: {_whose(sample_id, row)} is too large to decode ({e})") from None
    except (OSError, ValueError, SyntaxError) as e:  # PIL raises these on truncated / non-image files
        raise ImageError(f"{path}: {_whose(sample_id, row)} is unreadable ({type(e).__name__}: {e})") from None


def _check_pixels(path: Path, size: tuple[int, int], max_pixels: int, sample_id: str | None, row: int | None) -> None:
    """Refuse an image whose header declares more than ``max_pixels`` pixels (nothing decoded yet)."""
    w, h = size
    if w * h > max_pixels:
        raise ImageError(
            f"{path}: {_whose(sample_id, row)} declares {w}x{h} = {w * h} pixels, over the limit of "
            f"{max_pixels} (a decompression bomb?); raise max_image_pixels if the image is genuine"
        )


class ImageCache:
    """Decoded RGB images by path, loaded once per run (datasets share images across rows).

    ``keep=False`` decodes on every call (datasets too large to hold in memory);
    ``max_pixels`` is :func:`load_image`'s limit.
    """

    def __init__(self, *, keep: bool = True, max_pixels: int = MAX_IMAGE_PIXELS) -> None:
        self._images: dict[Path, Any] = {}
        self.keep = keep
        self.max_pixels = max_pixels

    def get(self, path: Path, *, sample_id: str | None = None, row: int | None = None) -> Any:
        """The image at ``path`` (:func:`load_image`, same errors)."""
        img = self._images.get(path)
        if img is None:
            img = load_image(path, sample_id=sample_id, row=row, max_pixels=self.max_pixels)
            if self.keep:
                self._images[path] = img
        return img

    def many(self, paths: Sequence[Path]) -> list[Any]:
        return [self.get(p) for p in paths]
