"""Random and mutated source files into every importer: a dataset or a vlmscope error, nothing else.

Each importer reads annotation files vlmscope did not write. Starting from a
small valid source per format, hypothesis mutates the JSON (drops keys,
changes types, inserts unicode with lone surrogates, huge and non-finite
numbers, nested junk), truncates or garbles the file's text, or (CountBench)
builds parquet columns of random types. The only allowed outcomes: the
import raises a :class:`~vlmscope.errors.VlmscopeError` (one line, naming
the source file), or it succeeds and what it wrote reads back as a valid
dataset. Any other exception, or a dataset the reader refuses, is a bug.
"""

from __future__ import annotations

import copy
import io
import json
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from vlmscope.data.importers import IMPORTERS, ImportReport
from vlmscope.data.reader import read_rows
from vlmscope.errors import VlmscopeError

FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
TEXT = st.text(st.characters(codec=None, categories=None), max_size=12)
EDGE = st.sampled_from(
    [2**63, 2**63 - 1, -1, 0, 10**400, float("nan"), float("inf"), "", " ", "../../etc/passwd", "/etc/passwd",
     "C:\\x.png", "a.png\x00", "x" * 300, "\ud800", "a\udfffb", "<script>alert(1)</script>", "{label}", "9" * 5000]
)  # fmt: skip
"""Values that broke importers or readers somewhere: int64 and float edges, escapes, surrogates, long names."""
JUNK_LEAF = st.one_of(
    EDGE,
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    TEXT,
)
JUNK = st.one_of(
    EDGE,  # again on its own: a random leaf should often be an edge value
    st.recursive(
        JUNK_LEAF, lambda kids: st.lists(kids, max_size=3) | st.dictionaries(TEXT, kids, max_size=3), max_leaves=8
    ),
)


def _png(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (4, 3), (200, 30, 30)).save(path, format="PNG")


def _vrd(root: Path) -> dict[str, Any]:
    _png(root / "images" / "a.png")
    _png(root / "images" / "b.png")
    objs = [{"names": ["cat"]}, {"names": ["dog 2"]}, {"names": ["lamp"]}]
    data = [
        {"filename": f, "objects": objs, "relationships": [
            {"objects": [0, 1], "relationship": "left of"}, {"objects": [2, 1], "relationship": "above"},
            {"objects": [1, 2], "relationship": "right of"}, {"objects": [1, 0], "relationship": "below"}]}
        for f in ("a.png", "b.png")
    ]  # fmt: skip
    return {"sg_train_annotations.json": data}


def _llava(root: Path) -> dict[str, Any]:
    _png(root / "images" / "a.png")
    _png(root / "images" / "sub" / "b.png")
    data = [
        {"id": k, "image": img, "conversations": [
            {"from": "human", "value": "<image>\nWhat is in the box?"}, {"from": "gpt", "value": f"[0.1, 0.2] {c}"}]}
        for k, (img, c) in enumerate([("a.png", "zebra"), ("sub/b.png", "cat"), ("a.png", "dog"), ("a.png", "cow")])
    ]  # fmt: skip
    return {"train.json": data}


def _pixmo(root: Path) -> dict[str, Any]:
    _png(root / "images" / "a.png")
    data = [
        {"image_url": "http://x/a", "image_sha256": "0" * 64, "count": n, "points": [[1, 2], {"x": 3, "y": 4}],
         "label": "apples", "image_path": "a.png"}
        for n in (0, 3)
    ]  # fmt: skip
    return {"train/samples.json": data}


def _counting_qa(root: Path) -> dict[str, Any]:
    _png(root / "images" / "img1.png")
    _png(root / "images" / "img2")
    questions = {i: {"red_circles": {"count_closed": "How many red circles? Choose from [1, 2]."},
                     "small_blue_stars": {"count_open": "How many?"}} for i in ("img1", "img2")}  # fmt: skip
    answers = {i: {"red_circles": 2, "small_blue_stars": {"count_open": 1}} for i in ("img1", "img2")}
    files = {"set/questions.json": questions, "set/answers.json": answers, "set/train_ids.json": ["img1"]}
    return files


def _relations_queries(root: Path) -> dict[str, Any]:
    for folder in ("images", "masked"):
        _png(root / folder / "0.png")
    _png(root / "images" / "1.png")  # no masked copy
    query = "How many shapes are in the image? Here are your options: a) 0 b) 3 c) 1 d) 2 Please only reply with the correct option."  # noqa: E501
    questions = [{"query_type": "count", "query": query, "ground_truth": "d)", "ground_truth_masked": "None"},
                 {"query_type": "count", "query": query, "ground_truth": "b", "ground_truth_masked": "A)"}]  # fmt: skip
    records = [{"image_id": i, "image_filename": f"{i}.png", "questions": questions} for i in (0, 1)]
    return {"queries.json": records}


SOURCES: dict[str, Callable[[Path], dict[str, Any]]] = {
    "vrd": _vrd,
    "llava": _llava,
    "pixmo-count": _pixmo,
    "counting-qa": _counting_qa,
    "relations-queries": _relations_queries,
}


def _paths(node: Any, at: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [at]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*at, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*at, i))
    return out


def _at(data: Any, path: tuple[Any, ...]) -> Any:
    for p in path:
        data = data[p]
    return data


def _mutate(data: Any, draw: Any) -> Any:
    """``data`` with one to four random edits: delete, replace by junk, wrap, or stuff unicode into a key."""
    data = copy.deepcopy(data)
    for _ in range(draw(st.integers(1, 4))):
        paths = _paths(data)
        leaves = [p for p in paths if p and not isinstance(_at(data, p), (dict, list))]
        # mostly a leaf (a field's value: where type and range checks live), sometimes any node
        path = draw(st.sampled_from(leaves if leaves and draw(st.integers(0, 3)) else paths))
        op = draw(st.sampled_from(["delete", "replace", "replace", "replace", "wrap", "rekey", "duplicate"]))
        if not path:  # the whole document: rarely, or every example fails at the top
            continue
        parent = data
        for p in path[:-1]:
            parent = parent[p]
        key = path[-1]
        if op == "delete":
            del parent[key]
        elif op == "replace":
            parent[key] = draw(JUNK)
        elif op == "wrap":
            parent[key] = draw(st.sampled_from([[parent[key]], {"x": parent[key]}]))
        elif op == "rekey" and isinstance(parent, dict):
            parent[draw(TEXT)] = parent.pop(key)
        elif op == "duplicate" and isinstance(parent, list):
            parent.append(copy.deepcopy(parent[key]))
    return data


def _garble(text: str, draw: Any) -> str:
    """Truncate the JSON text, or overwrite a random slice of it."""
    cut = draw(st.integers(0, len(text)))
    if draw(st.booleans()):
        return text[:cut]
    return text[:cut] + draw(TEXT) + text[cut + draw(st.integers(0, 8)) :]


SOURCE_ARGS = {
    "vrd": "sg_train_annotations.json",
    "llava": "train.json",
    "pixmo-count": "train",  # the split folder holding samples.json
    "counting-qa": "set",  # the folder holding questions.json, answers.json, *_ids.json
    "relations-queries": "queries.json",
}
EXTRA_ARGS = {"relations-queries": {"masked_images": "masked"}}
"""Further folder arguments of an importer, relative to the source root."""


def _import(name: str, root: Path) -> ImportReport:
    extra = {k: root / v for k, v in EXTRA_ARGS.get(name, {}).items()}
    return IMPORTERS.get(name).run([root / SOURCE_ARGS[name]], root / "out", images=root / "images", **extra)


def _check(name: str, root: Path) -> None:
    try:
        report = _import(name, root)
    except VlmscopeError as e:
        msg = str(e)
        assert "\n" not in msg.split("; ", 1)[0], msg  # the first clause is one line
        assert str(root) in msg or name in msg, msg  # it names the source file or the importer
        return
    # success: what was written is a valid dataset of the reported size
    rows = read_rows(root / "out")
    assert len(rows) == report.n_rows > 0


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_valid_fixture_imports(name: str, tmp_path: Path) -> None:
    files = SOURCES[name](tmp_path)
    for rel, data in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(json.dumps(data))
    report = _import(name, tmp_path)
    assert report.n_rows > 0 and len(read_rows(tmp_path / "out")) == report.n_rows


@pytest.mark.parametrize("name", sorted(SOURCES))
@FUZZ
@given(data=st.data())
def test_mutated_json_gives_a_dataset_or_a_vlmscope_error(name: str, data: st.DataObject) -> None:
    root = Path(tempfile.mkdtemp(prefix="fuzz-"))
    try:
        files = SOURCES[name](root)
        target = data.draw(st.sampled_from(sorted(files)))
        for rel, content in files.items():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            text = json.dumps(_mutate(content, data.draw) if rel == target else content)
            if rel == target and data.draw(st.integers(0, 4)) == 0:
                text = _garble(text, data.draw)
            (root / rel).write_text(text, encoding="utf-8", errors="surrogatepass")
        _check(name, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _png_bytes() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (4, 3), (1, 2, 3)).save(buf, format="PNG")
    return buf.getvalue()


PNG = _png_bytes()
COLUMN_KINDS: dict[str, st.SearchStrategy[Any]] = {
    "string": st.one_of(st.none(), st.text(max_size=10), st.sampled_from(["3", " 7 ", "²", "9" * 30, "-1", ""])),
    "int": st.one_of(st.none(), st.integers(min_value=-(2**63), max_value=2**63 - 1)),
    "float": st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True)),
    "bool": st.one_of(st.none(), st.booleans()),
    "binary": st.one_of(st.none(), st.just(PNG), st.binary(max_size=20), st.just(PNG[:30])),
    "struct": st.one_of(st.none(), st.fixed_dictionaries({"bytes": st.one_of(st.none(), st.just(PNG),
                                                                              st.binary(max_size=8))})),
}  # fmt: skip


@FUZZ
@given(data=st.data())
def test_countbench_random_parquet_gives_a_dataset_or_a_vlmscope_error(data: st.DataObject) -> None:
    root = Path(tempfile.mkdtemp(prefix="fuzz-"))
    try:
        n = data.draw(st.integers(0, 4))
        names = data.draw(st.lists(st.sampled_from(["image", "question", "number", "text", "extra"]), unique=True))
        cols = {}
        for c in names:
            kind = data.draw(st.sampled_from(sorted(COLUMN_KINDS)))
            cols[c] = data.draw(st.lists(COLUMN_KINDS[kind], min_size=n, max_size=n))
        try:
            table = pa.table(cols) if cols else pa.table({"x": pa.array([], pa.int64())})
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
            return  # pyarrow could not build that table: not an input a user can hold
        src = root / "cb.parquet"
        pq.write_table(table, src)
        if data.draw(st.integers(0, 4)) == 0:
            raw = src.read_bytes()
            src.write_bytes(raw[: data.draw(st.integers(0, len(raw)))])
        try:
            report = IMPORTERS.get("countbench").run([src], root / "out")
        except VlmscopeError as e:
            assert str(src) in str(e) or "countbench" in str(e), str(e)
            return
        assert len(read_rows(root / "out")) == report.n_rows > 0
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _set(data: Any, path: tuple[Any, ...], value: Any) -> Any:
    data = copy.deepcopy(data)
    node = data
    for p in path[:-1]:
        node = node[p]
    node[path[-1]] = value
    return data


# (importer, file, path into its JSON, value): each crashed with a non-vlmscope exception before the fix
HOSTILE = [
    ("pixmo-count", "train/samples.json", (0, "count"), 2**63),  # polars Int64 overflow (TypeError)
    ("pixmo-count", "train/samples.json", (0, "label"), "\ud800"),  # lone surrogate: UnicodeEncodeError
    ("pixmo-count", "train/samples.json", (0, "points"), [[10**400, 1]]),  # float(): OverflowError
    ("pixmo-count", "train/samples.json", (0, "image_path"), "x" * 300),  # is_file(): ENAMETOOLONG OSError
    ("vrd", "sg_train_annotations.json", (0, "objects", 0, "names"), ["\udfff"]),
    ("vrd", "sg_train_annotations.json", (1, "filename"), "d/" * 2 + "y" * 400),
    ("llava", "train.json", (0, "conversations", 1, "value"), "[0.1] \ud83d"),
    ("counting-qa", "set/answers.json", ("img1", "red_circles"), 2**63),
    ("counting-qa", "set/questions.json", ("img2", "red_circles", "count_closed"), "How many \udc80?"),
    ("relations-queries", "queries.json", (0, "questions", 0, "query"), "a) \ud800 b) x"),
    ("relations-queries", "queries.json", (1, "image_id"), 10**400),
]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "rel", "path", "value"), HOSTILE, ids=[f"{h[0]}-{'.'.join(map(str, h[2]))}" for h in HOSTILE]
)
def test_hostile_values_give_a_dataset_or_a_vlmscope_error(name, rel, path, value, tmp_path: Path) -> None:
    files = SOURCES[name](tmp_path)
    files[rel] = _set(files[rel], path, value)
    for r, content in files.items():
        (tmp_path / r).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / r).write_text(json.dumps(content))
    _check(name, tmp_path)


def test_json_nested_past_the_recursion_limit_is_one_importer_error(tmp_path: Path) -> None:
    files = SOURCES["llava"](tmp_path)
    (tmp_path / "train.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(VlmscopeError, match=r"train\.json: JSON nested too deeply"):
        _import("llava", tmp_path)
    assert files  # the images exist; only the annotation file is hostile


@pytest.mark.parametrize("number", ["9" * 30, "²", "1" * 5000, str(2**63)])
def test_countbench_number_strings_past_int64_are_refused(number: str, tmp_path: Path) -> None:
    src = tmp_path / "cb.parquet"
    pq.write_table(pa.table({"image": [PNG], "question": ["How many?"], "number": [number]}), src)
    with pytest.raises(VlmscopeError, match=r"cb\.parquet: row 0: .*'number'"):
        IMPORTERS.get("countbench").run([src], tmp_path / "out")


@FUZZ
@given(data=st.data())
def test_random_manifest_parquet_reads_or_is_a_vlmscope_error(data: st.DataObject) -> None:
    """The dataset reader every stage uses, on random columns of random kinds (and truncated files)."""
    from vlmscope.data.manifest import read_manifest

    root = Path(tempfile.mkdtemp(prefix="fuzz-"))
    try:
        n = data.draw(st.integers(0, 4))
        names = data.draw(
            st.lists(st.sampled_from(["sample_id", "image", "prompt", "answer", "split", "choices", "count"]),
                     unique=True)
        )  # fmt: skip
        cols = {}
        complete = data.draw(st.booleans())  # all required columns as text: the row-level checks run
        if complete:
            names = ["sample_id", "image", "prompt", "answer", "split", *names]
        for c in dict.fromkeys(names):
            kind = "string" if complete and c in ("sample_id", "image", "prompt", "answer", "split") else None
            kind = kind or data.draw(st.sampled_from(sorted(COLUMN_KINDS)))
            cols[c] = data.draw(st.lists(COLUMN_KINDS[kind], min_size=n, max_size=n))
        if "split" in cols and data.draw(st.booleans()):
            cols["split"] = data.draw(st.lists(st.sampled_from(["train", "valid", "test"]), min_size=n, max_size=n))
        try:
            table = pa.table(cols) if cols else pa.table({"x": pa.array([], pa.int64())})
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
            return
        path = root / "manifest.parquet"
        pq.write_table(table, path)
        if data.draw(st.integers(0, 4)) == 0:
            raw = path.read_bytes()
            path.write_bytes(raw[: data.draw(st.integers(0, len(raw)))])
        try:
            df = read_manifest(root)
        except VlmscopeError as e:
            assert "manifest.parquet" in str(e) and "\n" not in str(e), str(e)
            return
        assert df.height == n
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.parametrize(
    ("name", "rel", "path", "value"), HOSTILE, ids=[f"{h[0]}-{'.'.join(map(str, h[2]))}" for h in HOSTILE]
)
def test_hostile_values_through_the_cli_are_one_line(name, rel, path, value, tmp_path: Path) -> None:
    """What the user sees: exit 0 with a summary, or exit 1 with one ``error:`` line and no traceback."""
    from typer.testing import CliRunner

    from vlmscope.cli.app import app

    files = SOURCES[name](tmp_path)
    files[rel] = _set(files[rel], path, value)
    for r, content in files.items():
        (tmp_path / r).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / r).write_text(json.dumps(content))
    args = ["import", name, str(tmp_path / SOURCE_ARGS[name]), "--images", str(tmp_path / "images")]
    for key, folder in EXTRA_ARGS.get(name, {}).items():
        args += [f"--{key.replace('_', '-')}", str(tmp_path / folder)]
    res = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "out")])
    assert res.exit_code in (0, 1) and isinstance(res.exception, (SystemExit, type(None))), res.exception
    if res.exit_code == 1:
        lines = res.stderr.strip().splitlines()
        assert lines[0].startswith("error: ") and str(tmp_path) in lines[0], res.stderr
        assert "Traceback" not in res.output
