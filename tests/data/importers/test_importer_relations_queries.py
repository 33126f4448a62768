"""The relational study's released ``queries.json`` -> original/masked choice rows the evaluation pairs."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from vlmscope.data.importers import IMPORTERS
from vlmscope.data.importers.relations_queries import (
    RelationsQueriesImportConfig,
    import_relations_queries,
    parse_letter,
    parse_options,
)
from vlmscope.data.manifest import read_manifest
from vlmscope.errors import ImporterError
from vlmscope.evaluation.config import EvaluateConfig
from vlmscope.evaluation.scoring import prepare_rows, score_text, summarize

_TAIL = "Please only reply with the correct option."


def _q(query_type: str, question: str, options: list[str], truth: str, masked: str) -> dict[str, str]:
    """A question in the released style: the options inline after the question, then the instruction."""
    inline = " ".join(f"{chr(ord('a') + k)}) {o}" for k, o in enumerate(options))
    return {
        "query_type": query_type,
        "query": f"{question} Here are your options: {inline} {_TAIL}",
        "ground_truth": truth,
        "ground_truth_masked": masked,
    }


def _records() -> list[dict[str, Any]]:
    return [
        {
            "image_id": 0,
            "image_filename": "0.png",
            "questions": [
                _q("count", "How many shapes are in the image?", ["0", "3", "1", "2"], "d)", "c)"),
                _q("recognition_shape", "Is there a circle in the image?", ["yes", "no"], "a)", "B)"),
                _q("explicit_arrow_direction", "Which way does the arrow between the red circle and the blue "
                   "square point?", ["from red circle to blue square", "from blue square to red circle"],
                   "a", "None"),  # fmt: skip
            ],
        },
        {
            "image_id": "1",
            "image_filename": "1.png",
            "questions": [_q("implicit_spatial", "Where is the red circle?", ["left of", "above"], "b)", "b)")],
        },
        {
            "image_id": 2,
            "image_filename": "gone.png",
            "questions": [_q("count", "How many shapes are in the image?", ["1", "2"], "a)", "a)")],
        },
    ]


@pytest.fixture
def released(tmp_path: Path, png: Callable[..., Path], write_json: Callable[[Path, Any], Path]) -> dict[str, Path]:
    """queries.json, images/ and masked/images/; 1.png has no masked copy, gone.png no image at all."""
    root = tmp_path / "release"
    png(root / "output" / "images" / "0.png", (200, 0, 0))
    png(root / "output" / "images" / "1.png", (0, 200, 0))
    png(root / "output" / "masked" / "images" / "0.png", (0, 0, 200))
    return {
        "queries": write_json(root / "prompts" / "queries.json", _records()),
        "images": root / "output" / "images",
        "masked": root / "output" / "masked" / "images",
    }


@pytest.mark.parametrize(
    ("query", "want"),
    [
        (
            "How many shapes are in the image? Here are your options: a) 0 b) 3 c) 1 d) 2 "
            "Please only reply with the correct option.",
            ["0", "3", "1", "2"],
        ),
        ("Is it left? Options: a) left of b) right of. Reply with the letter.", ["left of", "right of"]),
        ("Colour?\nA) red\nB) light blue\nC) 2.5\nAnswer with one letter", ["red", "light blue", "2.5"]),
        ("Which? a) yes, b) no, c) maybe (b) is wrong)", ["yes", "no", "maybe (b) is wrong)"]),
    ],
)
def test_parse_options(query: str, want: list[str]) -> None:
    assert parse_options(query) == want


@pytest.mark.parametrize("query", ["How many? a) 1", "No options here.", "Pick: a) b) 2"])
def test_parse_options_refuses_too_few_or_empty_options(query: str) -> None:
    with pytest.raises(ValueError):
        parse_options(query)


def test_parse_letter() -> None:
    assert [parse_letter(v, 4) for v in ("d)", "d", "D)", "a", " B) ", "None", "none", None)] == [
        3, 3, 3, 0, 1, None, None, None
    ]  # fmt: skip
    for bad in ("e)", "yes", "", 3, "dd"):
        with pytest.raises(ValueError):
            parse_letter(bad, 4)


def test_rows_pair_original_and_masked_and_count_every_drop(released: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "ds"
    report = import_relations_queries([released["queries"]], released["images"], out,
                                      masked_images=released["masked"])  # fmt: skip
    df = read_manifest(out)
    assert (report.n_records, report.n_rows, report.n_images) == (3, 7, 3)
    assert report.dropped == {"missing_image": 2, "missing_masked_image": 1}
    assert json.loads((out / "import_report.json").read_text())["dropped"] == report.dropped
    assert df.columns == [
        "sample_id", "image", "prompt", "answer", "split", "answer_type", "choices", "answer_index",
        "answer_text", "query_type", "variant", "source_id", "image_id",
    ]  # fmt: skip
    assert df.schema["answer_index"] == pl.Int64 and df.schema["choices"] == pl.List(pl.String)
    assert set(df["split"]) == {"test"} and set(df["answer_type"]) == {"choice"}

    count = df.filter(pl.col("source_id") == "0-q000").sort("variant", descending=True)
    assert count["variant"].to_list() == ["original", "masked"]
    assert count["image"].to_list() == ["images/original/0.png", "images/masked/0.png"]
    assert count["image_id"].to_list() == ["0", "0-masked"]
    assert count["answer"].to_list() == ["D", "C"] and count["answer_index"].to_list() == [3, 2]
    assert count["answer_text"].to_list() == ["2", "1"]
    assert count["choices"].to_list() == [["0", "3", "1", "2"]] * 2
    assert count["prompt"][0] == _records()[0]["questions"][0]["query"]
    assert (out / "images/masked/0.png").read_bytes() == (released["masked"] / "0.png").read_bytes()

    arrow = df.filter((pl.col("source_id") == "0-q002") & (pl.col("variant") == "masked")).row(0, named=True)
    assert arrow["answer"] == "None" and arrow["answer_index"] is None and arrow["answer_text"] is None
    assert arrow["query_type"] == "explicit_arrow_direction"
    # 1.png has no masked copy: its original row is kept, unpaired
    assert df.filter(pl.col("image_id").str.starts_with("1"))["variant"].to_list() == ["original"]


def test_imported_rows_score_through_the_evaluation_with_paired_stats(
    released: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "ds"
    IMPORTERS.get("relations-queries").run(
        [released["queries"]], out, images=released["images"], masked_images=released["masked"]
    )
    rows = prepare_rows(read_manifest(out), "test")
    replies = {
        ("0-q000", "original"): "D",  # right
        ("0-q000", "masked"): "b) 3",  # wrong (truth C)
        ("0-q001", "original"): "yes",  # right, by option text
        ("0-q001", "masked"): "B",  # right
        ("0-q002", "original"): "A",  # right
        ("0-q002", "masked"): "None of the options.",  # right: no option is
        ("1-q000", "original"): "above",  # right, unpaired
    }
    verdicts = [score_text(r, replies[r["source_id"], r["variant"]]) for r in rows.iter_rows(named=True)]
    preds = rows.with_columns(
        pl.Series("correct", [s.correct for s in verdicts]),
        pl.Series("parsed_count", [None] * rows.height, dtype=pl.Int64),
        pl.Series("unparsed", [s.prediction is None for s in verdicts]),
    )
    metrics, _ = summarize(preds, ["query_type"], EvaluateConfig())
    assert metrics["accuracy"] == pytest.approx(6 / 7)
    assert metrics["paired/n_pairs"] == 3
    assert metrics["paired/accuracy_original"] == 1.0
    assert metrics["paired/accuracy_masked"] == pytest.approx(2 / 3)
    assert metrics["paired/retain_rate"] == pytest.approx(2 / 3)
    assert metrics["paired/query_type/count/accuracy_drop"] == 1.0
    assert metrics["paired/query_type/explicit_arrow_direction/accuracy_masked"] == 1.0
    none_row = rows.filter((pl.col("source_id") == "0-q002") & (pl.col("variant") == "masked")).row(0, named=True)
    assert none_row["gt_class"] == "none"


def test_missing_masked_folder_argument_gives_original_rows_only(released: dict[str, Path], tmp_path: Path) -> None:
    cfg = RelationsQueriesImportConfig(split="valid", image_mode="copy")
    report = import_relations_queries([released["queries"]], released["images"], tmp_path / "ds", cfg)
    df = read_manifest(tmp_path / "ds")
    assert set(df["variant"]) == {"original"} and df.height == 4 and set(df["split"]) == {"valid"}
    assert report.dropped == {"missing_image": 1} and report.notes


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda r: r[0]["questions"][1].pop("ground_truth"), r"record 0: questions\[1\]: missing field 'ground_truth'"),
        (lambda r: r[0]["questions"][0].update(ground_truth="e)"),
         r"record 0: questions\[0\]: field 'ground_truth' names option 'e\)' but the query has only 4 options"),
        (lambda r: r[1]["questions"][0].update(ground_truth_masked="left of"),
         r"record 1: questions\[0\]: field 'ground_truth_masked' must be an option letter"),
        (lambda r: r[1]["questions"][0].update(query="Where? Say left or right."),
         r"record 1: questions\[0\]: field 'query': found 0 inline option"),
        (lambda r: r[1].update(image_filename="../../secret.png"), r"record 1: image path '../../secret.png' escapes"),
        (lambda r: r[1].update(image_filename="/etc/passwd"), r"record 1: image path '/etc/passwd' must be relative"),
        (lambda r: r[2].update(image_id="0"), r"record 2: image_id '0' already used by .*record 0"),
        (lambda r: r[0].update(questions={"a": 1}), r"record 0: field 'questions' must be a list"),
    ],
)  # fmt: skip
def test_bad_records_name_file_record_and_field(
    change: Callable[[list[dict[str, Any]]], Any],
    match: str,
    released: dict[str, Path],
    tmp_path: Path,
    write_json: Callable[[Path, Any], Path],
) -> None:
    records = _records()
    change(records)
    write_json(released["queries"], records)
    with pytest.raises(ImporterError, match=match) as e:
        import_relations_queries([released["queries"]], released["images"], tmp_path / "ds",
                                 masked_images=released["masked"])  # fmt: skip
    assert str(e.value).startswith(str(released["queries"])) and "\n" not in str(e.value)
    assert not (tmp_path / "ds").exists()
