"""Random folder trees into the class-folders importer: a valid dataset or a vlmscope error, nothing else.

The importer lists folders vlmscope did not make: any names (unicode, spaces,
leading dots, names that look like grades or not), files that are images or
junk, folders where files belong. The only allowed outcomes: a
:class:`~vlmscope.errors.VlmscopeError` of one line, or a dataset that reads
back with every kept row accounted for in the report.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from vlmscope.data.importers import import_class_folders
from vlmscope.data.reader import read_rows
from vlmscope.errors import VlmscopeError

FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
NAME = st.one_of(
    st.sampled_from(["train", "val", "valid", "test", "auto_test", "0", "1", "grade_2", "KL 3", "Grade 10", "Normal",
                     ".hidden", "2_mild", "007", "9" * 25, "a b", "ünï", "-1"]),
    st.text(st.characters(blacklist_characters="/\x00", blacklist_categories=["Cs"]), min_size=1, max_size=8),
).filter(lambda n: n not in (".", "..") and len(n.encode()) < 200)  # fmt: skip
KIND = st.sampled_from(["png", "junk", "empty", "dir"])
SPLIT = st.one_of(st.sampled_from(["train", "val", "valid", "test"]), NAME)  # a split folder half the time
TREE = st.dictionaries(SPLIT, st.dictionaries(NAME, st.lists(st.tuples(NAME, KIND), max_size=3), max_size=3), min_size=1, max_size=3)


def _write(root: Path, tree: dict[str, dict[str, list[tuple[str, str]]]]) -> None:
    for split, classes in tree.items():
        for cls, files in classes.items():
            folder = root / split / cls
            folder.mkdir(parents=True, exist_ok=True)
            for name, kind in files:
                path = folder / name
                if path.exists():
                    continue
                if kind == "dir":
                    path.mkdir()
                elif kind == "png":
                    Image.new("RGB", (3, 2), (len(name), 9, 9)).save(path, format="PNG")
                else:
                    path.write_bytes(b"" if kind == "empty" else b"\x89PNG not really")


@FUZZ
@given(tree=TREE)
def test_any_tree_gives_a_dataset_or_one_line_error(tree: dict[str, dict[str, list[tuple[str, str]]]]) -> None:
    tmp = Path(tempfile.mkdtemp())
    try:
        _write(tmp / "src", tree)
        (tmp / "src").mkdir(exist_ok=True)
        try:
            report = import_class_folders([tmp / "src"], tmp / "out")
        except VlmscopeError as e:
            assert "\n" not in str(e)
            assert not (tmp / "out").exists()
            return
        df = read_rows(tmp / "out", None)
        assert df.height == report.n_rows == report.n_records - sum(
            n for why, n in report.dropped.items() if why in ("unreadable_image", "missing_image")
        )
        assert set(df["answer_type"]) <= {"grade", "class"}
        if "grade" in set(df["answer_type"]):
            assert df["grade"].null_count() == 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
