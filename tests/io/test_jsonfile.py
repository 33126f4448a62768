"""io/jsonfile.py: write_json's exact bytes (the formats it replaced), atomicity, NaN policy."""

from __future__ import annotations

import json
import math
import stat
from pathlib import Path

import pytest

from vlmscope.io.jsonfile import dump_json, write_json


def test_write_json_bytes_match_the_formats_it_replaced(tmp_path: Path) -> None:
    data = {"b": 1, "a": {"d": [1, 2.5], "c": "é"}, "p": Path("x")}
    path = write_json(tmp_path / "sub" / "m.json", data, default=str)
    assert path.read_bytes() == (json.dumps(data, indent=2, sort_keys=True, default=str) + "\n").encode()
    write_json(path, {"z": 1, "a": 2}, sort_keys=False)
    assert path.read_text() == '{\n  "z": 1,\n  "a": 2\n}\n'
    assert dump_json({"b": 1, "a": 2}, indent=1) == '{\n "a": 2,\n "b": 1\n}\n'
    assert stat.S_IMODE(path.stat().st_mode) & 0o644 == 0o644  # not mkstemp's private 0o600
    assert [p.name for p in path.parent.iterdir()] == ["m.json"]  # no temporary left behind


def test_write_json_refuses_nan_when_asked_and_keeps_the_old_file(tmp_path: Path) -> None:
    path = write_json(tmp_path / "m.json", {"a": 1})
    with pytest.raises(ValueError, match="not JSON compliant"):
        write_json(path, {"a": math.nan}, allow_nan=False)
    assert json.loads(path.read_text()) == {"a": 1}
    assert write_json(path, {"a": math.nan}).read_text() == '{\n  "a": NaN\n}\n'
