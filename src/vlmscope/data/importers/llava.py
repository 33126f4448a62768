"""LLaVA conversation JSON -> multiple-choice (or open) rows with seen/unseen classes.

Reads a JSON list of ``{"id"?, "image": path, "conversations": [{"from":
"human", "value": "<image>..."}, {"from": "gpt", "value": "..."}, ...]}``
(Visual Genome ``train_seen.json`` of the unseen-class study, LLaVA-Med
files). Every human -> gpt turn pair becomes one row.

- The answer's class: a leading bracketed box is split off
  (``"[0.1, 0.2, 0.5, 0.9] zebra"`` -> class ``zebra``, box
  ``[0.1, 0.2, 0.5, 0.9]``); without a box the whole (stripped) answer is
  the class (LLaVA-Med free text).
- The prompt is the human text without the ``<image>`` placeholder, with
  the box appended on a new line (``box_in_prompt``). The study trains and
  scores "<image> [box] classname" with the loss on the class name only, so
  moving the box to the end of the prompt keeps the answer = the class name
  alone, which is what training labels and the MCQA option loss cover.
- ``num_options`` K >= 2 builds MCQA rows: K-1 distractor classes drawn
  (seeded per row) from the other classes of the *same split and seen
  status*, so seen and unseen questions are equally hard by construction;
  options are shuffled, ``choices`` holds the option texts and
  ``answer_index`` the correct one. K = 0 writes open rows.
- Seen classes: from ``seen_classes`` (a ``.txt`` file with one class per
  line, a JSON list of names, or a LLaVA conversation JSON whose classes
  are the seen ones, e.g. ``train_seen.json``); otherwise derived as the
  classes of the imported ``train`` rows. With neither, ``seen`` is null
  and the report says so.

Records without an image (text-only LLaVA turns) are dropped and counted,
as are records whose image file does not exist. A file may also hold the
list under a top-level ``"data"`` key (the unseen-class study's released
prompt files; its own reader accepts both). A record's ``synset`` (Visual
Genome's WordNet id of the class, e.g. ``zebra.n.01``) becomes the
``synset`` column when any record has one.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import polars as pl
from pydantic import Field, field_validator

from vlmscope.data.importers.common import (
    ImageSink,
    ImportConfigBase,
    ImportReport,
    field,
    find_image,
    infer_split,
    load_json,
    safe_relative,
    usable_image,
    write_import,
)
from vlmscope.errors import ImporterError, NotFound

__all__ = ["LlavaImportConfig", "import_llava", "split_box", "read_class_list"]

_BOX = re.compile(r"^\s*(\[[^\]]*\])\s*(.*)$", re.S)
_IMAGE_TOKEN = re.compile(r"\s*<image>\s*")


class LlavaImportConfig(ImportConfigBase):
    """How conversation turns become rows."""

    num_options: int = Field(default=4, ge=0, le=26)
    """Options per MCQA row (correct + distractors); 0 writes open-answer rows."""
    seed: int = 0
    """Seeds the distractor draw and option order (per row, so rows are independent)."""
    split: Literal["train", "valid", "test"] | None = None
    """Split for all rows; ``None`` reads it from the file name (``train_seen.json`` -> train)."""
    box_in_prompt: bool = True
    """Append the answer's leading ``[box]`` to the prompt (see module docstring)."""

    @field_validator("num_options")
    @classmethod
    def _not_one(cls, v: int) -> int:
        if v == 1:
            raise ValueError("num_options must be 0 (open answers) or at least 2, got 1")
        return v


def split_box(answer: str) -> tuple[str | None, str]:
    """``'[0.1, 0.2] zebra' -> ('[0.1, 0.2]', 'zebra')``; no box -> ``(None, answer.strip())``."""
    m = _BOX.match(answer)
    if m and m.group(2).strip():
        return m.group(1), m.group(2).strip()
    return None, answer.strip()


def _turns(rec: Any, where: str) -> list[tuple[str, str]]:
    conv = field(rec, "conversations", list, where)
    pairs: list[tuple[str, str]] = []
    pending: str | None = None
    for k, turn in enumerate(conv):
        twhere = f"{where} conversations[{k}]"
        who = field(turn, "from", str, twhere)
        value = field(turn, "value", str, twhere)
        if who == "human":
            pending = value
        elif who == "gpt":
            if pending is None:
                raise ImporterError(f"{twhere}: a 'gpt' turn without a preceding 'human' turn")
            pairs.append((pending, value))
            pending = None
        else:
            raise ImporterError(f"{twhere}: field 'from' must be 'human' or 'gpt', got {who!r}")
    return pairs


def read_class_list(path: Path) -> set[str]:
    """Class names from a ``.txt`` (one per line, ``#`` comments), a JSON list, or a LLaVA JSON."""
    path = Path(path)
    if not path.is_file():
        raise NotFound(f"{path}: no such seen-classes file")
    if path.suffix.lower() != ".json":
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as e:
            raise ImporterError(f"{path}: not UTF-8 text (byte {e.start}): is this the right file?") from None
        lines = (ln.split("#", 1)[0].strip() for ln in text.splitlines())
        return {ln for ln in lines if ln}
    data = load_json(path)
    if not isinstance(data, list):
        raise ImporterError(f"{path}: expected a JSON list of class names or LLaVA records")
    names: set[str] = set()
    for i, item in enumerate(data):
        if isinstance(item, str):
            names.add(item.strip())
        else:
            for _h, answer in _turns(item, f"{path}: record {i}"):
                names.add(split_box(answer)[1])
    return names


def _read(path: Path, images: Path, split: str, cfg: LlavaImportConfig, report: ImportReport) -> list[dict[str, Any]]:
    data = load_json(path)
    if isinstance(data, dict) and "data" in data:
        data = data["data"]  # the unseen-class study's prompt files wrap the list: {"data": [...]}
    if not isinstance(data, list):
        raise ImporterError(
            f"{path}: expected a JSON list of conversation records (or {{\"data\": [...]}}), got {type(data).__name__}"
        )
    rows = []
    for i, rec in enumerate(data):
        where = f"{path}: record {i}"
        report.n_records += 1
        pairs = _turns(rec, where)
        rid = rec.get("id", f"{path.stem}-{i:06d}")
        if not isinstance(rid, (str, int)) or isinstance(rid, bool):
            raise ImporterError(f"{where}: field 'id' must be a string or integer, got {rid!r:.80}")
        if "image" not in rec or rec["image"] is None:
            report.drop("no_image", str(rid), len(pairs))
            continue
        synset = rec.get("synset")
        if synset is not None and not isinstance(synset, str):
            raise ImporterError(f"{where}: field 'synset' must be a string, got {synset!r:.80}")
        rel = safe_relative(field(rec, "image", str, where), where)
        src = find_image(images, rel)
        if not usable_image(src, str(rel), report, len(pairs)):
            continue
        for t, (human, gpt) in enumerate(pairs):
            box, cls = split_box(gpt)
            if not cls:
                report.drop("empty_answer", f"{rid} turn {t}")
                continue
            prompt = _IMAGE_TOKEN.sub(" ", human).strip()
            if cfg.box_in_prompt and box is not None:
                prompt = f"{prompt}\n{box}" if prompt else box
            rows.append(
                {
                    "sample_id": str(rid) if len(pairs) == 1 else f"{rid}-{t}",
                    "conversation_id": str(rid),
                    "src": src,
                    "rel": rel,
                    "prompt": prompt,
                    "class_name": cls,
                    "box": box,
                    "split": split,
                    "synset": synset,
                    "where": where,
                }
            )
    return rows


def _options(rows: list[dict[str, Any]], cfg: LlavaImportConfig) -> None:
    pools: dict[tuple[str, Any], list[str]] = {}
    for r in rows:
        pools.setdefault((r["split"], r["seen"]), []).append(r["class_name"])
    sorted_pools = {k: sorted(set(v)) for k, v in pools.items()}
    k = cfg.num_options
    for n, r in enumerate(rows):
        pool = sorted_pools[(r["split"], r["seen"])]
        if len(pool) < k:
            raise ImporterError(
                f"llava: {cfg.num_options} options need at least {k} classes in split {r['split']!r} "
                f"(seen={r['seen']}), but it has {len(pool)}: {pool[:10]}; lower --num-options"
            )
        rng = np.random.default_rng([cfg.seed, n])
        others = [c for c in pool if c != r["class_name"]]
        picked = [others[j] for j in rng.choice(len(others), size=k - 1, replace=False)]
        options = [r["class_name"], *picked]
        order = rng.permutation(k)
        r["choices"] = [options[j] for j in order]
        r["answer_index"] = int(np.flatnonzero(order == 0)[0])


def import_llava(
    sources: Sequence[Path],
    images: Path,
    out: Path,
    config: LlavaImportConfig = LlavaImportConfig(),
    *,
    seen_classes: Path | None = None,
) -> ImportReport:
    """Import LLaVA conversation files into the dataset directory ``out`` (see module docstring)."""
    if not sources:
        raise ImporterError("llava: give at least one conversation JSON file")
    report = ImportReport("llava")
    rows: list[dict[str, Any]] = []
    for src in sources:
        rows.extend(_read(Path(src), Path(images), infer_split(Path(src), config.split), config, report))
    if not rows:
        raise ImporterError(f"llava: no rows to write; {report.summary()}")
    seen_ids: dict[str, str] = {}
    for r in rows:
        if r["sample_id"] in seen_ids:
            raise ImporterError(
                f"{r['where']}: id {r['conversation_id']!r} repeats {seen_ids[r['sample_id']]}; ids must be unique"
            )
        seen_ids[r["sample_id"]] = r["where"]

    seen: set[str] | None
    if seen_classes is not None:
        seen = read_class_list(seen_classes)
    else:
        train = {r["class_name"] for r in rows if r["split"] == "train"}
        seen = train or None
        if seen is None:
            report.notes.append("no --seen-classes and no train rows: 'seen' is unknown (null)")
    for r in rows:
        r["seen"] = None if seen is None else r["class_name"] in seen
    if config.num_options:
        _options(rows, config)
    report.count_rows(rows)

    def build(tmp: Path) -> pl.DataFrame:
        image_paths = ImageSink(tmp, config.image_mode).place_rows(rows)
        cols: dict[str, Any] = {
            "sample_id": [r["sample_id"] for r in rows],
            "image": image_paths,
            "prompt": [r["prompt"] for r in rows],
            "answer": [r["class_name"] for r in rows],
            "split": [r["split"] for r in rows],
            "answer_type": ["choice" if config.num_options else "open"] * len(rows),
        }
        schema: dict[str, Any] = {"seen": pl.Boolean, "box": pl.String}
        if config.num_options:
            cols["choices"] = [r["choices"] for r in rows]
            cols["answer_index"] = [r["answer_index"] for r in rows]
            schema.update(choices=pl.List(pl.String), answer_index=pl.Int64)
        cols.update(
            class_name=[r["class_name"] for r in rows],
            seen=[r["seen"] for r in rows],
            box=[r["box"] for r in rows],
            conversation_id=[r["conversation_id"] for r in rows],
        )
        if any(r["synset"] is not None for r in rows):  # Visual Genome records name the class's WordNet synset
            cols["synset"] = [r["synset"] for r in rows]
            schema["synset"] = pl.String
        return pl.DataFrame(cols, schema_overrides=schema)

    return write_import(
        out,
        config,
        report,
        build,
        sources=sources,
        seed=config.seed,
        images=str(images),
        seen_classes=None if seen_classes is None else str(seen_classes),
    )
