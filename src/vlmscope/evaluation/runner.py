"""``evaluate``: run a model over a dataset split and write predictions and metrics.

Writes into ``out`` (replaced atomically, so DVC never sees half a result):

- ``predictions.jsonl``: one JSON object per row: ``sample_id``, ``prompt``,
  ``answer``, ``answer_type``, ``output`` (raw generation; null in the
  scoring modes), ``scores`` (per-option mean NLL or similarity; null when
  generating), ``parsed``, ``prediction``, ``correct``, then the group columns.
- ``metrics.json``: flat numbers (see :func:`vlmscope.evaluation.metrics.flatten_metrics`).
- ``summary.json``: the headline numbers of ``metrics.json`` (no per-group keys):
  what the pipeline registers for ``dvc metrics show``, which would otherwise
  print one column per group value of every dataset side by side.
- ``per_group.csv``: ``group, value, n, n_correct, accuracy, macro_accuracy``.
- ``config.json``: the config, model, family and dataset fingerprint.

Modes (shapes: B samples per batch, K options, T tokens, V vocabulary):

- ``generate``: ``adapter.encode(images, prompts)`` (left-padded) then greedy
  ``adapter.generate``; identical to batch size 1 because the adapters pass
  position ids from the attention mask.
- ``option-loss``: every (sample, option) pair is encoded with the option as
  the answer; its score is the mean NLL of the answer tokens (the option's
  tokens plus the end-of-sequence token the adapter appends: "the answer is
  this option and nothing more"). Lowest wins. Only the last logits
  (answer length + 1) are materialised, so (B, T, V) never is.
- ``contrastive``: ``ContrastiveAdapter.score(images, texts)`` of each image
  against ``contrastive_template`` filled with each option; highest wins.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from vlmscope.data.manifest import INFO, load_dataset_info
from vlmscope.data.reader import ImageCache, image_path, read_rows
from vlmscope.errors import ConfigError, DatasetError, ModelError
from vlmscope.evaluation.config import EvaluateConfig
from vlmscope.evaluation.scoring import (
    Scored,
    generate_and_score,
    pick_group_columns,
    prepare_rows,
    score_index,
    summarize,
)
from vlmscope.io.atomic import atomic_dir
from vlmscope.io.jsonfile import write_json
from vlmscope.io.outguard import check_out

if TYPE_CHECKING:  # pragma: no cover
    from PIL.Image import Image

    from vlmscope.models.adapter import ContrastiveAdapter, ModelAdapter

__all__ = ["evaluate", "headline", "option_nll", "load_rows", "PREDICTIONS", "METRICS", "SUMMARY", "PER_GROUP", "CONFIG"]

PREDICTIONS = "predictions.jsonl"
METRICS = "metrics.json"
SUMMARY = "summary.json"
PER_GROUP = "per_group.csv"
CONFIG = "config.json"

Progress = Callable[[int], None]


def load_rows(dataset: Path, config: EvaluateConfig) -> pl.DataFrame:
    """The manifest rows of ``config.split`` (first ``limit``), validated for scoring."""
    splits = None if config.split == "all" else [config.split]
    df = read_rows(dataset, splits, limit=config.limit, hint="; pass --split")
    if df.height == 0:
        raise DatasetError(f"{dataset}: the manifest has no rows; nothing to evaluate")
    return prepare_rows(df, str(dataset))


def _images(dataset: Path, rows: Sequence[dict[str, Any]], max_pixels: int) -> list[Image]:
    """The batch's images, each file decoded once (rows may share an image), at most ``max_pixels`` each."""
    cache = ImageCache(max_pixels=max_pixels)
    return [cache.get(image_path(dataset, r["image"]), sample_id=r["sample_id"]) for r in rows]


def _batches(n: int, size: int) -> Iterator[range]:
    for start in range(0, n, size):
        yield range(start, min(start + size, n))


def headline(metrics: dict[str, Any]) -> dict[str, Any]:
    """The overall numbers of a flat ``metrics.json``: its keys without a group in them.

    Kept: plain keys (``accuracy``, ``n`` ...), ``paired/<stat>``,
    ``count/<stat>`` and ``grade/<stat>``; left out: ``accuracy/<group>/<value>`` and the like.
    """
    return {k: v for k, v in metrics.items() if k.count("/") == 0 or (k.count("/") == 1 and k.split("/")[0] in ("paired", "count", "grade"))}


def option_nll(
    adapter: ModelAdapter, images: Sequence[Image], prompts: Sequence[str], options: Sequence[str]
) -> list[float]:
    """Mean NLL per pair of the ``options[i]`` tokens (answer span incl. eos) after ``prompts[i]`` with ``images[i]``.

    Returns one float per pair (B,). Only the answer positions go through the
    unembedding (:func:`vlmscope.scoring.answer_span.answer_logits`).
    """
    import torch

    from vlmscope.scoring.answer_span import per_example_loss

    batch = adapter.encode(images, prompts, answers=options).to(adapter.device)
    if batch.labels is None:
        raise ModelError(f"{type(adapter).__name__}.encode returned no labels for the given answers")
    if bool(((batch.labels[:, 1:] != -100).sum(1) == 0).any()):
        raise ModelError("an option encoded to zero answer tokens; cannot score it")
    with torch.inference_mode():
        nll = per_example_loss(adapter.model, batch)
    return [float(x) for x in nll.cpu()]


def _run_generate(
    adapter: Any, dataset: Path, rows: list[dict[str, Any]], config: EvaluateConfig, tick: Progress
) -> list[tuple[str | None, list[float] | None, Scored]]:
    from vlmscope.models.adapter import ModelAdapter

    if not isinstance(adapter, ModelAdapter) or not adapter.capabilities.generation:
        raise ConfigError(
            f"--mode generate needs a generative model; {adapter.source!r} ({adapter.family}) cannot generate: "
            "use --mode contrastive"
        )

    def encode(idx: range) -> Any:
        chunk = [rows[i] for i in idx]
        return adapter.encode(_images(dataset, chunk, config.max_image_pixels), [r["prompt"] for r in chunk])

    scored = generate_and_score(
        adapter, rows, encode, batch_size=config.batch_size, max_new_tokens=config.max_new_tokens, tick=tick
    )
    return [(t, None, s) for t, s in scored]


def _require_choices(rows: list[dict[str, Any]], mode: str) -> None:
    bad = [r for r in rows if r["answer_type"] != "choice"]
    if bad:
        raise DatasetError(
            f"--mode {mode} scores options, but {len(bad)} row(s) have no choices "
            f"(e.g. sample {bad[0]['sample_id']!r}, answer_type {bad[0]['answer_type']!r}); use --mode generate"
        )


def _run_option_loss(
    adapter: Any, dataset: Path, rows: list[dict[str, Any]], config: EvaluateConfig, tick: Progress
) -> list[tuple[str | None, list[float] | None, Scored]]:
    from vlmscope.models.adapter import ModelAdapter

    if not isinstance(adapter, ModelAdapter):
        raise ConfigError(f"--mode option-loss needs a language model; {adapter.source!r} is {adapter.family}")
    _require_choices(rows, "option-loss")
    pairs = [(i, k) for i, r in enumerate(rows) for k in range(len(r["choices"]))]
    losses: list[list[float]] = [[math.nan] * len(r["choices"]) for r in rows]
    left = [len(r["choices"]) for r in rows]
    for idx in _batches(len(pairs), config.batch_size):
        chunk = [pairs[j] for j in idx]
        sel = [rows[i] for i, _ in chunk]
        nll = option_nll(
            adapter,
            _images(dataset, sel, config.max_image_pixels),
            [r["prompt"] for r in sel],
            [r["choices"][k] for r, (_, k) in zip(sel, chunk, strict=True)],
        )
        done = 0
        for (i, k), v in zip(chunk, nll, strict=True):
            losses[i][k] = v
            left[i] -= 1
            done += left[i] == 0
        tick(done)
    out = []
    for r, ls in zip(rows, losses, strict=True):
        best = min(range(len(ls)), key=ls.__getitem__)
        out.append((None, ls, score_index(r, best)))
    return out


def _run_contrastive(
    adapter: Any, dataset: Path, rows: list[dict[str, Any]], config: EvaluateConfig, tick: Progress
) -> list[tuple[str | None, list[float] | None, Scored]]:
    import torch

    from vlmscope.models.adapter import ContrastiveAdapter

    if not isinstance(adapter, ContrastiveAdapter):
        raise ConfigError(
            f"--mode contrastive needs a contrastive image-text model; {adapter.source!r} is {adapter.family}: "
            "use --mode generate or option-loss"
        )
    _require_choices(rows, "contrastive")
    out: list[tuple[str | None, list[float] | None, Scored]] = []
    for idx in _batches(len(rows), config.batch_size):
        chunk = [rows[i] for i in idx]
        images = _images(dataset, chunk, config.max_image_pixels)
        by_k: dict[int, list[int]] = {}
        for j, r in enumerate(chunk):
            by_k.setdefault(len(r["choices"]), []).append(j)
        scores: list[list[float]] = [[] for _ in chunk]
        for js in by_k.values():
            texts = [[config.contrastive_template.format(option=o) for o in chunk[j]["choices"]] for j in js]
            with torch.inference_mode():
                s = adapter.score([images[j] for j in js], texts)  # (b, K)
            for j, row in zip(js, s.float().cpu().tolist(), strict=True):
                scores[j] = row
        for r, s in zip(chunk, scores, strict=True):
            best = max(range(len(s)), key=s.__getitem__)
            out.append((None, s, score_index(r, best)))
        tick(len(chunk))
    return out


_MODES = {"generate": _run_generate, "option-loss": _run_option_loss, "contrastive": _run_contrastive}


def _json_value(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def _progress_bar(total: int, enabled: bool) -> tuple[Any, Any]:
    from vlmscope.io.progress import progress_bar

    bar = progress_bar(enabled=None if enabled else False)
    task = bar.add_task("evaluate", total=total)
    return bar, lambda n: bar.advance(task, n)


def evaluate(
    model: str,
    dataset: Path,
    out: Path,
    config: EvaluateConfig = EvaluateConfig(),
    *,
    adapter: ModelAdapter | ContrastiveAdapter | None = None,
    revision: str | None = None,
    progress: bool = True,
) -> dict[str, float | int]:
    """Score ``model`` (hub id or local checkpoint) on ``dataset`` and write ``out``; returns the flat metrics.

    ``adapter`` reuses an already loaded model (``model`` is then only recorded); ``revision`` is the hub
    revision to load (a ``pin_model`` pin's), recorded as ``model_revision``.
    """
    check_out(out, "evaluation", [model, dataset])  # before the model runs: refuse early
    dataset = Path(dataset)
    frame = load_rows(dataset, config)
    groups = pick_group_columns(frame, config)
    if adapter is None:
        from vlmscope.models import LoadOptions, load_model

        adapter = load_model(
            model,
            family=config.family,
            options=LoadOptions(dtype=config.dtype, device_map=config.device_map, revision=revision),
        )
    rows = list(frame.iter_rows(named=True))
    bar, tick = _progress_bar(len(rows), progress)
    with bar:
        results = _MODES[config.mode](adapter, dataset, rows, config, tick)

    scored = [s for _, _, s in results]
    preds = frame.with_columns(
        pl.Series("correct", [s.correct for s in scored], dtype=pl.Boolean),
        pl.Series(
            "parsed_count",
            [s.parsed if r["answer_type"] == "count" else None for r, s in zip(rows, scored, strict=True)],
            dtype=pl.Int64,
        ),
        pl.Series(
            "parsed_grade",
            [s.parsed if r["answer_type"] == "grade" else None for r, s in zip(rows, scored, strict=True)],
            dtype=pl.Int64,
        ),
        pl.Series(
            "unparsed",
            [s.prediction is None for s in scored],
            dtype=pl.Boolean,
        ),
    )
    metrics, table = summarize(preds, groups, config)

    records = []
    for r, (text, scores, s) in zip(rows, results, strict=True):
        rec = {
            "sample_id": r["sample_id"],
            "prompt": r["prompt"],
            "answer": r["answer"],
            "answer_type": r["answer_type"],
            "output": text,
            "scores": None if scores is None else [_json_value(x) for x in scores],
            "parsed": s.parsed,
            "prediction": s.prediction,
            "correct": s.correct,
        }
        rec.update({g: r[g] for g in groups if g not in rec})
        records.append(rec)
    info = load_dataset_info(dataset) if (dataset / INFO).is_file() else None
    provenance = {
        "config": config.model_dump(),
        "model": model,
        "model_revision": adapter.revision,
        "family": adapter.family,
        "dataset": str(dataset),
        "dataset_fingerprint": info.fingerprint if info else None,
        "groups": groups,
        "n_rows": len(rows),
    }
    with atomic_dir(out, kind="evaluation", inputs=[model, dataset]) as tmp:
        with open(tmp / PREDICTIONS, "w", encoding="utf-8") as fh:
            for rec in records:
                fh.write(json.dumps(rec, ensure_ascii=False, default=str) + "\n")
        write_json(tmp / METRICS, metrics)
        write_json(tmp / SUMMARY, headline(metrics))
        table.write_csv(tmp / PER_GROUP)
        write_json(tmp / CONFIG, provenance, default=str)
    return metrics
