"""tools/pip_install.py hands uv the sources pip is configured with."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parents[2] / "tools" / "pip_install.py"


@pytest.fixture(scope="module")
def pip_install():
    spec = importlib.util.spec_from_file_location("pip_install", _PATH)
    module = importlib.util.module_from_spec(spec)
    sys.modules["pip_install"] = module
    spec.loader.exec_module(module)
    return module


def test_pip_config_becomes_uv_options(pip_install) -> None:
    listing = "\n".join(
        [
            ":env:.default-timeout='180'",
            ":env:.find-links='/opt/wheels'",
            "global.cert='/etc/ssl/certs/ca-certificates.crt'",
            "global.constraint='/etc/xdg/pip/constraints.txt'",
            "global.extra-index-url='file:///opt/pypi/simple file:///opt/pypi-more/simple'",
            "global.find-links='/opt/wheels'",
            "global.index-url='https://mirror.example/simple'",
            "user.index-url='https://other.example/simple'",
        ]
    )
    assert pip_install.pip_config_args(listing) == [
        "--find-links", "/opt/wheels",
        "--constraint", "/etc/xdg/pip/constraints.txt",
        "--extra-index-url", "file:///opt/pypi/simple",
        "--extra-index-url", "file:///opt/pypi-more/simple",
        "--index-url", "https://mirror.example/simple",
    ]  # fmt: skip


def test_no_pip_config_no_options(pip_install) -> None:
    assert pip_install.pip_config_args("") == []
    assert pip_install.pip_config_args("global.timeout='60'\nnot a config line") == []


def test_a_failed_uv_install_falls_back_to_pip(pip_install, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[list[str]] = []

    def run(cmd: list[str]) -> int:
        calls.append(cmd)
        return 1 if cmd[0] == "/venv/bin/uv" else 0

    monkeypatch.setattr(pip_install, "_uv", lambda: "/venv/bin/uv")
    monkeypatch.setattr(pip_install, "_run", run)
    monkeypatch.delenv("VLMSCOPE_NO_UV", raising=False)
    assert pip_install.main(["-q", "-e", "."]) == 0
    assert calls[0][:3] == ["/venv/bin/uv", "pip", "install"] and calls[0][-3:] == ["-q", "-e", "."]
    assert calls[1] == [sys.executable, "-m", "pip", "install", "-q", "-e", "."]
    calls.clear()
    monkeypatch.setenv("VLMSCOPE_NO_UV", "1")
    assert pip_install.main(["x"]) == 0 and calls == [[sys.executable, "-m", "pip", "install", "x"]]
