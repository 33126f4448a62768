"""Malformed JSON, CSV and parquet into every reader of user files: one vlmscope error naming the file.

One table of cases: each writes a broken input (truncated, zero-length, not
UTF-8, wrong types, missing columns or fields, nulls, duplicates) and calls
the library function that reads it. The contract checked is the CLI's: a
:class:`~vlmscope.errors.VlmscopeError` (which the CLI prints as one line),
whose message names the file and, where the input has them, the row or
field. The importers' record-level cases live in ``test_fuzz_importers.py``;
these are the whole-file and reader cases.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from vlmscope.data.importers import IMPORTERS
from vlmscope.data.importers.llava import read_class_list
from vlmscope.data.manifest import load_dataset_info, read_manifest
from vlmscope.errors import VlmscopeError
from vlmscope.models import read_config
from vlmscope.models.sidecar import read_sidecar
from vlmscope.probing.splits import read_split_file
from vlmscope.report.readers import read_csv, read_jsonl_head, read_metrics

NOT_UTF8 = b"\xff\xfe\x00garbage\x80"


def _png(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (4, 3)).save(path, format="PNG")
    return path


def _manifest(root: Path, **over: Any) -> Path:
    rows: dict[str, Any] = {
        "sample_id": ["s0", "s1"],
        "image": ["images/a.png", "images/a.png"],
        "prompt": ["q", "q"],
        "answer": ["a", "b"],
        "split": ["train", "test"],
    }
    rows.update(over)
    rows = {k: v for k, v in rows.items() if v is not None}
    pl.DataFrame(rows, strict=False).write_parquet(root / "manifest.parquet")
    return root / "manifest.parquet"


def _write(path: Path, data: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data if isinstance(data, bytes) else data.encode())
    return path


def _importer_json(name: str, rel: str, content: bytes | str) -> Callable[[Path], Any]:
    def run(tmp: Path) -> Any:
        _png(tmp / "images" / "a.png")
        src = _write(tmp / rel, content)
        if name == "counting-qa":
            other = "answers.json" if src.name == "questions.json" else "questions.json"
            if not (src.parent / other).exists():
                _write(src.parent / other, "{}")
            src = src.parent
        return IMPORTERS.get(name).run([src], tmp / "out", images=tmp / "images")

    return run


def _countbench(table: pa.Table | bytes) -> Callable[[Path], Any]:
    def run(tmp: Path) -> Any:
        src = tmp / "cb.parquet"
        if isinstance(table, bytes):
            src.write_bytes(table)
        else:
            pq.write_table(table, src)
        return IMPORTERS.get("countbench").run([src], tmp / "out")

    return run


def _split_file(name: str, content: bytes | str) -> Callable[[Path], Any]:
    return lambda tmp: read_split_file(_write(tmp / name, content), ["s0", "s1"])


def _model_dir(files: dict[str, bytes | str]) -> Callable[[Path], Any]:
    def run(tmp: Path) -> Any:
        for rel, data in files.items():
            _write(tmp / "ckpt" / rel, data)
        return read_config(tmp / "ckpt")

    return run


def _manifest_case(**over: Any) -> Callable[[Path], Any]:
    def run(tmp: Path) -> Any:
        _png(tmp / "images" / "a.png")
        _manifest(tmp, **over)
        return read_manifest(tmp)

    return run


def _raw_manifest(data: bytes) -> Callable[[Path], Any]:
    return lambda tmp: read_manifest(tmp) if _write(tmp / "manifest.parquet", data) else None


TRUNCATED = '[{"filename": "a.png", "objects": [{"names": ["cat"]}'

# (case id, category, function of tmp_path, regex the message must match: file, and row/field where there is one)
CASES: list[tuple[str, str, Callable[[Path], Any], str]] = [
    # importers, whole file
    ("vrd-truncated-json", "malformed JSON", _importer_json("vrd", "sg_train_annotations.json", TRUNCATED),
     r"sg_train_annotations\.json:1:\d+: malformed JSON"),
    ("vrd-zero-length", "malformed JSON", _importer_json("vrd", "sg_train_annotations.json", ""),
     r"sg_train_annotations\.json:1:1: malformed JSON"),
    ("vrd-not-utf8", "malformed JSON", _importer_json("vrd", "sg_train_annotations.json", NOT_UTF8),
     r"sg_train_annotations\.json: not UTF-8"),
    ("vrd-object-not-list", "wrong type", _importer_json("vrd", "sg_train_annotations.json", '{"a": 1}'),
     r"sg_train_annotations\.json: expected a JSON list of images, got dict"),
    ("vrd-record-missing-field", "missing field",
     _importer_json("vrd", "sg_train_annotations.json", '[{"filename": "a.png", "objects": []}]'),
     r"sg_train_annotations\.json: record 0: missing field 'relationships'"),
    ("vrd-index-wrong-type", "wrong type",
     _importer_json("vrd", "sg_train_annotations.json", json.dumps([{"filename": "a.png", "objects": [{"names": ["a"]}],
                    "relationships": [{"objects": ["0", 0], "relationship": "above"}]}])),
     r"record 0 relationships\[0\]: object index '0' is out of range"),
    ("llava-truncated-json", "malformed JSON", _importer_json("llava", "train.json", '[{"image": "a.png"'),
     r"train\.json:1:\d+: malformed JSON"),
    ("llava-turn-wrong-type", "wrong type",
     _importer_json("llava", "train.json", json.dumps([{"image": "a.png", "conversations": [{"from": "human",
                    "value": 3}]}])),
     r"train\.json: record 0 conversations\[0\]: field 'value' must be a string, got 3"),
    ("llava-id-wrong-type", "wrong type",
     _importer_json("llava", "train.json", json.dumps([{"id": [1], "image": "a.png", "conversations": []}])),
     r"train\.json: record 0: field 'id' must be a string or integer"),
    ("llava-seen-classes-not-utf8", "malformed text", lambda tmp: read_class_list(_write(tmp / "seen.txt", NOT_UTF8)),
     r"seen\.txt: not UTF-8"),
    ("pixmo-count-bool", "wrong type",
     _importer_json("pixmo-count", "train/samples.json", json.dumps([{"count": True, "label": "x",
                    "image_path": "a.png"}])),
     r"samples\.json: record 0: field 'count' must be an integer, got True"),
    ("pixmo-negative-count", "wrong value",
     _importer_json("pixmo-count", "train/samples.json", json.dumps([{"count": -2, "label": "x",
                    "image_path": "a.png"}])),
     r"samples\.json: record 0: field 'count' must be a count"),
    ("pixmo-bad-points", "wrong type",
     _importer_json("pixmo-count", "train/samples.json", json.dumps([{"count": 1, "label": "x", "image_path": "a.png",
                    "points": [[1, "2"]]}])),
     r"samples\.json: record 0: points\[0\] coordinates must be numbers"),
    ("counting-qa-truncated", "malformed JSON", _importer_json("counting-qa", "set/questions.json", '{"img": {'),
     r"questions\.json:1:\d+: malformed JSON"),
    ("counting-qa-answers-list", "wrong type",
     _importer_json("counting-qa", "set/answers.json", "[1, 2]"),
     r"answers\.json: expected a JSON object keyed by image id, got list"),
    ("counting-qa-split-ids-wrong", "wrong type",
     lambda tmp: (_write(tmp / "set" / "train_ids.json", '[{"id": 1}]'),
                  _importer_json("counting-qa", "set/questions.json", json.dumps({"a.png": {"red_circles": {
                      "count_open": "How many?"}}}))(tmp)),
     r"train_ids\.json: entry 0 must be an image id"),
    ("counting-qa-answer-string", "wrong type",
     lambda tmp: (_write(tmp / "set" / "answers.json", json.dumps({"a.png": {"red_circles": "3"}})),
                  _importer_json("counting-qa", "set/questions.json", json.dumps({"a.png": {"red_circles": {
                      "count_open": "How many?"}}}))(tmp)),
     r"answers\.json: \['a\.png'\]\['red_circles'\]: answer must be a non-negative integer count, got '3'"),
    ("countbench-truncated-parquet", "malformed parquet", _countbench(b"PAR1\x00\x01"),
     r"cb\.parquet: unreadable parquet"),
    ("countbench-zero-length", "malformed parquet", _countbench(b""), r"cb\.parquet: unreadable parquet"),
    ("countbench-missing-column", "missing column", _countbench(pa.table({"image": [b"x"], "question": ["q"]})),
     r"cb\.parquet: missing column\(s\) \['number'\]"),
    ("countbench-question-wrong-type", "wrong type",
     _countbench(pa.table({"image": [b"x"], "question": [7], "number": [1]})),
     r"cb\.parquet: row 0: column 'question' must be a non-empty string"),
    ("countbench-number-negative", "wrong value",
     _countbench(pa.table({"image": [b"x"], "question": ["q"], "number": [-3]})),
     r"cb\.parquet: row 0: column 'number' must be a non-negative integer"),
    ("countbench-image-wrong-type", "wrong type",
     _countbench(pa.table({"image": [1.5], "question": ["q"], "number": [1]})),
     r"cb\.parquet: row 0: column 'image' must hold image bytes"),
    # the dataset directory every stage reads
    ("manifest-truncated", "malformed parquet", _raw_manifest(b"PAR1\x15\x04"), r"manifest\.parquet: unreadable parquet"),
    ("manifest-zero-length", "malformed parquet", _raw_manifest(b""), r"manifest\.parquet: unreadable parquet"),
    ("manifest-missing-column", "missing column", _manifest_case(prompt=None),
     r"manifest\.parquet: missing required column 'prompt'"),
    ("manifest-sample-id-int", "wrong type", _manifest_case(sample_id=[0, 1]),
     r"manifest\.parquet: column 'sample_id' must be"),
    ("manifest-null-answer", "null", _manifest_case(answer=["a", None]),
     r"manifest\.parquet: column 'answer' is null in 1 row"),
    ("manifest-duplicate-id", "duplicate", _manifest_case(sample_id=["s0", "s0"]),
     r"manifest\.parquet: sample_id must be unique; duplicated: \['s0'\]"),
    ("dataset-json-truncated", "malformed JSON", lambda tmp: load_dataset_info(_write(tmp / "dataset.json", '{"gen').parent),
     r"dataset\.json: not valid JSON"),
    ("dataset-json-not-utf8", "malformed JSON", lambda tmp: load_dataset_info(_write(tmp / "dataset.json", NOT_UTF8).parent),
     r"dataset\.json: not valid JSON"),
    # user-given probe split files
    ("split-json-truncated", "malformed JSON", _split_file("splits.json", '{"train": ["s0"'), r"splits\.json: not valid JSON"),
    ("split-json-wrong-shape", "wrong type", _split_file("splits.json", '{"train": "s0"}'), r"splits\.json: expected"),
    ("split-csv-missing-column", "missing column", _split_file("splits.csv", "sample_id,fold\ns0,train\n"),
     r"splits\.csv: missing column 'split'"),
    ("split-txt-three-fields", "malformed text", _split_file("splits.txt", "s0 train extra\n"),
     r"splits\.txt:1: expected 'sample_id split'"),
    ("split-file-not-utf8", "malformed text", _split_file("splits.txt", NOT_UTF8), r"splits\.txt: not UTF-8"),
    # a local model directory's JSON
    ("model-config-truncated", "malformed JSON", _model_dir({"config.json": '{"model_type": '}),
     r"config\.json: not valid JSON"),
    ("model-config-not-utf8", "malformed JSON", _model_dir({"config.json": NOT_UTF8}), r"config\.json: not"),
    ("model-config-list", "wrong type", _model_dir({"config.json": "[1]"}),
     r"config\.json: expected a JSON object, got list"),
    ("model-sidecar-truncated", "malformed JSON", lambda tmp: read_sidecar(_write(tmp / "vlmscope.json", "{").parent),
     r"vlmscope\.json: not valid JSON"),
    ("model-sidecar-not-utf8", "malformed JSON",
     lambda tmp: read_sidecar(_write(tmp / "vlmscope.json", NOT_UTF8).parent), r"vlmscope\.json: not"),
    # the report's inputs (artifacts a user may have edited or a killed run truncated)
    ("report-metrics-truncated", "malformed JSON", lambda tmp: read_metrics(_write(tmp / "metrics.json", '{"acc": ')),
     r"metrics\.json: not readable JSON"),
    ("report-csv-missing-column", "missing column",
     lambda tmp: read_csv(_write(tmp / "per_layer.csv", "x,y\n1,2\n"), required=("layer",)),
     r"per_layer\.csv: missing column\(s\) layer"),
    ("report-jsonl-truncated-line", "malformed JSON",
     lambda tmp: read_jsonl_head(_write(tmp / "rows.jsonl", '{"a": 1}\n{"b": '), -1), r"rows\.jsonl:2: not a JSON line"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "category", "run", "message"), CASES, ids=[c[0] for c in CASES])
def test_malformed_input_is_one_vlmscope_error_naming_the_file(
    case: str, category: str, run: Callable[[Path], Any], message: str, tmp_path: Path
) -> None:
    with pytest.raises(VlmscopeError) as info:
        run(tmp_path)
    text = str(info.value)
    assert "\n" not in text, f"{case}: the CLI line must be one line: {text!r}"
    assert str(tmp_path) in text, f"{case}: the message must name the file: {text!r}"
    assert __import__("re").search(message, text), f"{case} ({category}): {text!r} does not match {message!r}"
