"""``build_report`` over a fake artifacts tree in the real formats: what the page holds, and how it fails."""

from __future__ import annotations

import base64
import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import polars as pl
import pytest

from vlmscope.errors import ConfigError, NotFound
from vlmscope.report import INDEX, SUMMARY, ReportConfig, build_report


class _Page(HTMLParser):
    """Sections (by id), headings per section, table captions and rows, images, scripts, links."""

    def __init__(self) -> None:
        super().__init__()
        self.sections: dict[str, list[str]] = {}
        self.not_run: dict[str, list[str]] = {}
        self.captions: list[str] = []
        self.tables: list[tuple[str, list[list[str]]]] = []
        self.images: list[dict[str, str]] = []
        self.scripts = 0
        self.external: list[str] = []
        self._section: str | None = None
        self._text: list[str] | None = None
        self._tag: str | None = None
        self._row: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "section":
            self._section = a.get("id", "")
            self.sections[self._section] = []
            self.not_run[self._section] = []
        elif tag in ("h3", "caption", "td", "th") or (tag == "p" and "not-run" in a.get("class", "")):
            self._tag, self._text = tag, []
        elif tag == "table":
            self.tables.append(("", []))
        elif tag == "tr":
            self._row = []
        elif tag == "img":
            self.images.append(a)
        elif tag == "script":
            self.scripts += 1
        for key in ("src", "href"):
            v = a.get(key, "")
            if v and not v.startswith(("data:", "#")):
                self.external.append(v)

    def handle_data(self, data: str) -> None:
        if self._text is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "section":
            self._section = None
        if self._text is None or tag != self._tag:
            if tag == "tr" and self._row is not None and self.tables:
                self.tables[-1][1].append(self._row)
                self._row = None
            return
        text = "".join(self._text).strip()
        self._text = None
        if tag == "h3" and self._section:
            self.sections[self._section].append(text)
        elif tag == "p" and self._section:
            self.not_run[self._section].append(text)
        elif tag == "caption":
            self.captions.append(text)
            self.tables[-1] = (text, self.tables[-1][1])
        elif tag in ("td", "th") and self._row is not None:
            self._row.append(text)


def _parse(index: Path) -> _Page:
    p = _Page()
    p.feed(index.read_text(encoding="utf-8"))
    return p


def _rows(page: _Page, caption: str) -> list[dict[str, str]]:
    """The body rows, as {header: text}, of every table with this caption (in page order)."""
    found = [rows for cap, rows in page.tables if cap == caption]
    assert found, f"no table captioned {caption!r}; captions: {page.captions}"
    return [dict(zip(rows[0], r, strict=True)) for rows in found for r in rows[1:]]


@pytest.fixture(scope="module")
def full(full_report: tuple[Path, Path]) -> tuple[Path, Path, _Page]:
    root, out = full_report
    return root, out, _parse(out / INDEX)


def test_every_study_has_its_section_and_parts(full) -> None:
    _, out, page = full
    assert list(page.sections) == [f"study-{k}" for k in ("spatial", "relational", "counting", "unseen", "medical")]
    assert page.sections["study-spatial"] == [
        "Evaluation",
        "Per-layer probes",
        "Logit lens",
        "Attention over the image",
        "Published vs this run",
    ]
    assert page.sections["study-relational"] == [
        "Evaluation",
        "Original vs masked",
        "Per-layer probes",
        "Attention over the image",
        "Published vs this run",
    ]
    assert page.sections["study-counting"] == [
        "Evaluation",
        "Per-layer probes",
        "Logit lens",
        "Output-layer fine-tuning",
        "Published vs this run",
    ]
    assert page.sections["study-unseen"] == ["Evaluation", "FFN neurons vs random neurons", "Published vs this run"]
    assert page.sections["study-medical"] == ["Training", "Published vs this run"]
    # what the fake tree lacks says so, in place
    assert any("logit-lens" in t for t in page.not_run["study-spatial"])
    assert any("attention" in t for t in page.not_run["study-spatial"])
    assert any("probe" in t for t in page.not_run["study-relational"])
    assert any("evaluation" in t for t in page.not_run["study-unseen"])
    assert page.not_run["study-counting"] == []
    summary = json.loads((out / SUMMARY).read_text())
    assert summary["n_studies_run"] == 5 and summary["n_problems"] == 0
    assert summary["n_evals"] == 3 and summary["n_probes"] == 3 and summary["n_stores"] == 1
    assert summary["relational/n_figures"] == 3  # masked bars, overlays, entropy
    assert summary["counting/n_figures"] == 3  # probes, logit lens, output-layer curve
    assert summary["trained_models/n_figures"] == 1  # the default model's loss curve
    assert all(isinstance(v, int) for v in summary.values())


def test_page_is_self_contained_and_images_match_the_files_beside_it(full) -> None:
    _, out, page = full
    assert page.scripts == 0 and page.external == []
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert len(page.images) == len(pngs) == json.loads((out / SUMMARY).read_text())["n_figures"] == 9
    embedded = set()
    for img in page.images:
        assert img["src"].startswith("data:image/png;base64,")
        data = base64.b64decode(img["src"].split(",", 1)[1])
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        assert img["alt"]
        embedded.add(data)
    assert embedded == {(out / n).read_bytes() for n in pngs}
    assert "attention-tiny-relations.png" in pngs and "probe-tiny-spatial.png" in pngs
    # no matplotlib version (or any other text chunk) in the PNGs
    assert all(b"tEXt" not in (out / n).read_bytes() for n in pngs)


def test_evaluation_tables_show_the_written_numbers(full) -> None:
    root, _, page = full
    overall = {(r["model"], r["dataset"]): r for r in _rows(page, "Overall accuracy per model x dataset")}
    metrics = json.loads((root / "evals/tiny/relations/metrics.json").read_text())
    rel = overall[("tiny", "relations")]
    assert rel["accuracy"] == f"{metrics['accuracy']:.3f}" and rel["n"] == "24"
    assert overall[("tiny", "spatial")]["chance"] == "0.250"  # four lettered options
    assert overall[("tiny", "relations")]["chance"] == "0.333"  # three options per query
    assert overall[("tiny", "counting")]["chance"] == "0.167"  # open counts 1..6: six distinct answers
    by_qt = {r["value"]: r for r in _rows(page, "relations: accuracy by query_type")}
    assert set(by_qt) == {"count", "recognition_color", "explicit_arrow_direction"}
    per_group = pl.read_csv(root / "evals/tiny/relations/per_group.csv")
    want = per_group.filter((pl.col("group") == "query_type") & (pl.col("value") == "count")).row(0, named=True)
    assert by_qt["count"]["tiny: accuracy"] == f"{want['accuracy']:.3f}"
    assert by_qt["count"]["tiny: n"] == str(want["n"])
    assert [r["value"] for r in _rows(page, "counting: accuracy by count")] == ["1", "2", "3", "4", "5", "6"]


def test_masked_comparison_lists_paired_stats_per_query_type(full) -> None:
    root, _, page = full
    metrics = json.loads((root / "evals/tiny/relations/metrics.json").read_text())
    rows = {(r["group"], r["value"]): r for r in _rows(page, "tiny on relations: original vs masked (paired)")}
    assert ("all", "overall") in rows and ("query_type", "count") in rows
    assert rows[("all", "overall")]["retain_rate"] == f"{metrics['paired/retain_rate']:.3f}"
    assert rows[("query_type", "count")]["accuracy_drop"] == f"{metrics['paired/query_type/count/accuracy_drop']:.3f}"


def test_probe_summary_marks_the_best_layer(full) -> None:
    root, _, page = full
    rows = {(r["dataset"], r["label"]): r for r in _rows(page, "Probes at their best layer")}
    per_layer = pl.read_csv(root / "probes/tiny/spatial/relation/per_layer.csv")
    best = per_layer.sort("accuracy", descending=True).row(0, named=True)
    assert rows[("spatial", "relation")]["best layer"] == str(best["layer"])
    assert rows[("spatial", "relation")]["accuracy"] == f"{best['accuracy']:.3f}"
    assert rows[("spatial", "relation")]["control"] == f"{best['control_accuracy']:.3f}"
    assert set(rows) == {("spatial", "relation"), ("spatial", "color"), ("counting", "count")}


def test_output_layer_and_trained_models(full) -> None:
    root, _, page = full
    rows = {r["split"]: r for r in _rows(page, "Output-layer fine-tuning: head accuracy before vs after")}
    assert list(rows) == ["train", "valid", "test"]
    assert (rows["test"]["accuracy before"], rows["test"]["accuracy after"], rows["test"]["change"]) == (
        "0.250",
        "0.500",
        "0.250",
    )
    text = (full[1] / INDEX).read_text()
    assert '<h2 id="trained-models">Trained models</h2>' in text and "<h4>default (llava)</h4>" in text
    assert "<h4>clip-grades (clip)</h4>" in text.split('id="study-medical"')[1]


def test_lens_and_ffn_parts_show_their_tables_and_examples(full) -> None:
    _, _, page = full
    lens = _rows(page, "logit lens per layer: tiny on counting")
    assert [r["layer"] for r in lens] == ["1", "2", "3", "4"] and lens[-1]["mean_target_rank"] == "2.000"
    ffn = _rows(page, "FFN top-neuron tokens vs random neurons per layer: tiny on vg-unseen")
    assert [r["top_match_rate"] for r in ffn] == ["0.100", "0.200", "0.500", "0.700"]


def test_ffn_examples_are_escaped(full) -> None:
    _, out, _ = full
    text = (out / INDEX).read_text()
    assert "&lt;b&gt;kitten&lt;/b&gt;" in text and "<b>kitten</b>" not in text
    assert text.count("sample_id: vg-") == 3  # ffn_examples=3 of the 5 records


def test_same_inputs_give_identical_bytes(full, tmp_path: Path) -> None:
    root, out, _ = full
    again = build_report(root, tmp_path / "again", ReportConfig())
    first = {p.name: p.read_bytes() for p in out.iterdir()}
    second = {p.name: p.read_bytes() for p in again.parent.iterdir()}
    assert first == second
    assert not re.search(rb"20\d\d-\d\d-\d\d", first[INDEX])  # no date or timestamp in the page


def test_nothing_run_yet_still_gives_a_page_that_says_so(fake_artifacts, tmp_path: Path) -> None:
    root = fake_artifacts("datasets-only")
    index = build_report(root, tmp_path / "r", ReportConfig())
    page = _parse(index)
    assert len(page.sections) == 5 and page.images == []
    for sid, notes in page.not_run.items():
        assert notes and all(n.startswith("Not run") for n in notes), sid
    summary = json.loads((tmp_path / "r" / SUMMARY).read_text())
    assert summary["n_studies_run"] == 0 and summary["n_figures"] == 0 and summary["n_datasets"] == 4


def test_empty_root_gives_a_page_too(tmp_path: Path) -> None:
    (tmp_path / "artifacts").mkdir()
    index = build_report(tmp_path / "artifacts", tmp_path / "artifacts" / "reports", ReportConfig())
    assert "Not run" in index.read_text()


def test_a_broken_input_is_listed_not_fatal(fake_artifacts, tmp_path: Path) -> None:
    root = tmp_path / "artifacts"
    shutil.copytree(fake_artifacts("evals", "probes"), root)
    (root / "evals/tiny/counting/metrics.json").write_text("{not json")
    (root / "probes/tiny/spatial/color/per_layer.csv").write_text("layer,nothing\n0,1\n")
    index = build_report(root, tmp_path / "r", ReportConfig())
    text = index.read_text()
    assert "Problems" in text and "metrics.json: not readable JSON" in text
    assert "missing column(s) accuracy" in text
    summary = json.loads((tmp_path / "r" / SUMMARY).read_text())
    assert summary["n_problems"] == 2
    page = _parse(index)
    datasets = {r["dataset"] for r in _rows(page, "Overall accuracy per model x dataset")}
    assert datasets == {"relations", "spatial"}  # the broken counting eval is left out, the rest shown
    assert "Original vs masked" not in page.sections["study-counting"]  # reported once, by its own part


def test_refuses_to_replace_a_directory_that_is_not_a_report(fake_artifacts, tmp_path: Path) -> None:
    precious = tmp_path / "notes"
    precious.mkdir()
    (precious / "keep.txt").write_text("x")
    with pytest.raises(ConfigError, match="is not a vlmscope artifact"):
        build_report(fake_artifacts("datasets-only"), precious, ReportConfig())
    assert (precious / "keep.txt").read_text() == "x"
    with pytest.raises(ConfigError, match="would replace the artifacts root"):
        build_report(fake_artifacts("datasets-only"), fake_artifacts("datasets-only"), ReportConfig())
    with pytest.raises(NotFound, match="does not exist"):
        build_report(tmp_path / "missing", tmp_path / "r", ReportConfig())


def test_config_is_validated() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        ReportConfig(dpi=10)
    with pytest.raises(ValidationError):
        ReportConfig(attention_stat="median")  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        ReportConfig(colour="red")  # type: ignore[call-arg]
