"""Load images and encode batches ahead of the forward pass (a prefetch thread).

PIL decoding, ``convert("RGB")`` and the processor run in a background
thread feeding a bounded queue, so they overlap the model's forward pass
(torch releases the GIL) and memory stays bounded by ``prefetch`` batches.

Unreadable images: with ``on_error="stop"`` the first one raises
:class:`DatasetError` naming the file and the sample; with ``"skip"`` the
sample is left out of its batch and reported in :attr:`LoadedBatch.skipped`.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from vlmscope.activations.plan import ShardTask, batch_bounds
from vlmscope.errors import DatasetError, VlmscopeError

if TYPE_CHECKING:  # pragma: no cover
    from PIL.Image import Image

    from vlmscope.models.adapter import EncodedBatch

__all__ = ["SampleTable", "LoadedBatch", "load_image", "iter_batches", "Prefetcher"]

T = TypeVar("T")


@dataclass(frozen=True)
class SampleTable:
    """The manifest columns extraction needs, row-aligned with the store's ``sample`` axis."""

    dataset_dir: Path
    sample_ids: Sequence[str]
    images: Sequence[str]
    """Paths relative to ``dataset_dir``."""
    prompts: Sequence[str]


@dataclass
class LoadedBatch:
    """Rows ``[lo, hi)`` of one shard: the encoded readable samples plus what was skipped."""

    task: ShardTask
    lo: int
    hi: int
    rows: list[int]
    """Absolute rows of the samples in ``encoded`` (in order)."""
    encoded: EncodedBatch | None
    """None when every sample of the batch was skipped."""
    skipped: list[dict[str, str]] = field(default_factory=list)


def load_image(table: SampleTable, row: int) -> Image:
    """Open and decode one sample's image as RGB; errors name the file, sample and row."""
    from PIL import Image as PILImage

    from vlmscope.data.manifest import resolve_image

    sid = table.sample_ids[row]
    path = resolve_image(table.dataset_dir, table.images[row])
    try:
        with PILImage.open(path) as im:
            return im.convert("RGB")
    except FileNotFoundError:
        raise DatasetError(f"{path}: image of sample {sid!r} (manifest row {row}) does not exist") from None
    except (OSError, ValueError, SyntaxError) as e:  # PIL raises these on truncated / non-image files
        raise DatasetError(
            f"{path}: image of sample {sid!r} (manifest row {row}) is unreadable ({type(e).__name__}: {e})"
        ) from None


_STOP_HINT = (
    "; fix or remove it and rerun (finished shards are kept and the run resumes), "
    "or rerun with --on-error skip to record such samples and go on"
)


def _encode(encode: Callable[..., EncodedBatch], images: list[Any], prompts: list[str]) -> EncodedBatch:
    return encode(images, prompts)


def iter_batches(
    table: SampleTable,
    tasks: Sequence[ShardTask],
    *,
    batch_size: int,
    encode: Callable[..., EncodedBatch],
    on_error: str,
) -> Iterator[LoadedBatch]:
    """Yield the batches of ``tasks`` in order (see :func:`vlmscope.activations.plan.batch_bounds`)."""
    for task in tasks:
        for lo, hi in batch_bounds(task, batch_size):
            rows, images, skipped = [], [], []
            for r in range(lo, hi):
                try:
                    images.append(load_image(table, r))
                    rows.append(r)
                except DatasetError as e:
                    if on_error == "stop":
                        raise DatasetError(str(e) + _STOP_HINT) from None
                    skipped.append({"sample_id": str(table.sample_ids[r]), "reason": str(e)})
            encoded = None
            if rows:
                prompts = [table.prompts[r] for r in rows]
                try:
                    encoded = _encode(encode, images, prompts)
                except VlmscopeError:
                    raise
                except Exception as e:
                    if on_error == "stop":
                        ids = [table.sample_ids[r] for r in rows]
                        raise DatasetError(
                            f"{table.dataset_dir}: the processor failed on samples {ids} "
                            f"({type(e).__name__}: {e})" + _STOP_HINT
                        ) from e
                    # find the culprits one by one, keep the rest
                    keep_rows, keep_images = [], []
                    for r, im in zip(rows, images):
                        try:
                            _encode(encode, [im], [table.prompts[r]])
                        except Exception as e1:  # noqa: BLE001 - reported per sample
                            skipped.append(
                                {"sample_id": str(table.sample_ids[r]), "reason": f"processor: {type(e1).__name__}: {e1}"}
                            )
                        else:
                            keep_rows.append(r)
                            keep_images.append(im)
                    rows = keep_rows
                    encoded = _encode(encode, keep_images, [table.prompts[r] for r in rows]) if rows else None
            yield LoadedBatch(task, lo, hi, rows, encoded, skipped)


class Prefetcher(Generic[T]):
    """Run an iterator in a daemon thread, ``maxsize`` items ahead; re-raises its errors in order."""

    _DONE = object()

    def __init__(self, source: Iterator[T], maxsize: int) -> None:
        self._q: queue.Queue[Any] = queue.Queue(maxsize=maxsize)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(source,), name="vlmscope-prefetch", daemon=True)
        self._thread.start()

    def _put(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self, source: Iterator[T]) -> None:
        try:
            for item in source:
                if not self._put(("item", item)):
                    return
        except BaseException as e:  # noqa: BLE001 - handed to the consumer
            self._put(("error", e))
            return
        self._put(("done", None))

    def __iter__(self) -> Iterator[T]:
        while True:
            kind, value = self._q.get()
            if kind == "item":
                yield value
            elif kind == "error":
                raise value
            else:
                return

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
