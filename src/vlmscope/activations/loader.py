"""Load images and encode batches ahead of the forward pass (a prefetch thread).

PIL decoding, ``convert("RGB")`` and the processor run in a background
thread feeding a bounded queue, so they overlap the model's forward pass
(torch releases the GIL) and memory stays bounded by ``prefetch`` batches.

Unreadable images: with ``on_error="stop"`` the first one raises
:class:`~vlmscope.errors.ImageError` naming the file and the sample; with ``"skip"`` the
sample is left out of its batch and reported in :attr:`LoadedBatch.skipped`.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from vlmscope.activations.plan import ShardTask, batch_bounds
from vlmscope.errors import DatasetError, VlmscopeError

if TYPE_CHECKING:  # pragma: no cover
    from PIL.Image import Image

    from vlmscope.models.adapter import EncodedBatch

__all__ = ["SampleTable", "LoadedBatch", "iter_batches", "Prefetcher"]

T = TypeVar("T")


@dataclass(frozen=True)
class SampleTable:
    """The manifest columns extraction needs, row-aligned with the store's ``sample`` axis."""

    dataset_dir: Path
    sample_ids: Sequence[str]
    images: Sequence[str]
    """Paths relative to ``dataset_dir``."""
    prompts: Sequence[str]
    max_pixels: int = 89_478_485
    """Pixel limit per image (:class:`~vlmscope.activations.config.ExtractConfig` ``max_image_pixels``)."""

    def image(self, row: int) -> Image:
        """Row ``row``'s image as RGB (:func:`vlmscope.data.reader.load_image`: ImageError naming file, sample, row)."""
        from vlmscope.data.reader import image_path, load_image

        path = image_path(self.dataset_dir, self.images[row])
        return load_image(path, sample_id=self.sample_ids[row], row=row, max_pixels=self.max_pixels)


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


_STOP_HINT = (
    "; fix or remove it and rerun (finished shards are kept and the run resumes), "
    "or rerun with --on-error skip to record such samples and go on"
)


def _try_load(table: SampleTable, row: int) -> Any:
    try:
        return table.image(row)
    except DatasetError as e:
        return e


def iter_batches(
    table: SampleTable,
    tasks: Sequence[ShardTask],
    *,
    batch_size: int,
    encode: Callable[..., EncodedBatch],
    on_error: str,
    threads: int = 1,
) -> Iterator[LoadedBatch]:
    """Yield the batches of ``tasks`` in order (see :func:`vlmscope.activations.plan.batch_bounds`).

    Images are decoded by ``threads`` worker threads (PIL releases the GIL
    while decoding), two batches ahead of the one being encoded.
    """
    bounds = [(task, lo, hi) for task in tasks for lo, hi in batch_bounds(task, batch_size)]
    pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="vlmscope-load")
    pending: deque[list[Future[Any]]] = deque()
    submitted = 0
    try:
        for task, lo, hi in bounds:
            while submitted < len(bounds) and len(pending) < 2:
                _, slo, shi = bounds[submitted]
                pending.append([pool.submit(_try_load, table, r) for r in range(slo, shi)])
                submitted += 1
            loaded = [f.result() for f in pending.popleft()]
            rows, images, skipped = [], [], []
            for r, im in zip(range(lo, hi), loaded):
                if isinstance(im, DatasetError):
                    if on_error == "stop":
                        raise type(im)(str(im) + _STOP_HINT) from None
                    skipped.append({"sample_id": str(table.sample_ids[r]), "reason": str(im)})
                else:
                    images.append(im)
                    rows.append(r)
            rows, encoded = _encode_batch(table, encode, rows, images, skipped, on_error)
            yield LoadedBatch(task, lo, hi, rows, encoded, skipped)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _encode_batch(
    table: SampleTable,
    encode: Callable[..., EncodedBatch],
    rows: list[int],
    images: list[Any],
    skipped: list[dict[str, str]],
    on_error: str,
) -> tuple[list[int], EncodedBatch | None]:
    """Encode the readable samples; with ``skip``, a processor failure is narrowed to its samples."""
    if not rows:
        return rows, None
    try:
        return rows, encode(images, [table.prompts[r] for r in rows])
    except VlmscopeError:
        raise
    except Exception as e:
        if on_error == "stop":
            ids = [table.sample_ids[r] for r in rows]
            raise DatasetError(
                f"{table.dataset_dir}: the processor failed on samples {ids} ({type(e).__name__}: {e})" + _STOP_HINT
            ) from e
    keep_rows, keep_images = [], []
    for r, im in zip(rows, images):
        try:
            encode([im], [table.prompts[r]])
        except Exception as e1:  # noqa: BLE001 - reported per sample
            skipped.append({"sample_id": str(table.sample_ids[r]), "reason": f"processor: {type(e1).__name__}: {e1}"})
        else:
            keep_rows.append(r)
            keep_images.append(im)
    if not keep_rows:
        return keep_rows, None
    return keep_rows, encode(keep_images, [table.prompts[r] for r in keep_rows])


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
        finally:
            close = getattr(source, "close", None)
            if close is not None:
                close()  # a generator's finally (worker pool shutdown) runs in this thread
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
