"""Option blocks spliced into verbs (vlmscope.cli.signature) and bound_config reading a verb's arguments."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import pytest
import typer
import typer.main
from typer.testing import CliRunner

from vlmscope.cli.options import ConfigCommand, bind, bound_config
from vlmscope.cli.signature import config_options, field_options, option_names, with_options

runner = CliRunner(env={"COLUMNS": "1000"})
REPORT = "vlmscope.report.config:ReportConfig"


def _head(out: Path = typer.Option(..., "--out", help="Where.")) -> None:
    """A template ahead of the verb's own options."""


_FIELDS = field_options(title=str, dpi=(int, "Dots per inch."), attention_examples=int)


def _app(seen: dict[str, Any]) -> typer.Typer:
    app = typer.Typer()

    @app.command("make", cls=ConfigCommand)
    @bind(REPORT, *option_names(_FIELDS))
    @with_options(_head, None, _FIELDS, config_options)
    def make(artifacts: Path = typer.Option(..., "--artifacts", help="Root."), **options: Any) -> None:
        seen["cfg"] = bound_config(make, locals() | options)
        seen["args"] = locals() | options

    @app.command("other")
    def other() -> None:  # a second command keeps `make` a named sub-command
        """Nothing."""

    return app


def test_with_options_splices_templates_and_own_parameters_in_order() -> None:
    cmd = typer.main.get_command(_app({})).commands["make"]
    names = [p.name for p in cmd.params]
    assert names == ["out", "artifacts", "title", "dpi", "attention_examples", "params", "set_"]


def test_spliced_parameters_are_keyword_only_and_the_verb_gets_them() -> None:
    seen: dict[str, Any] = {}
    app = _app(seen)
    make_fn = app.registered_commands[0].callback
    assert all(p.kind is p.KEYWORD_ONLY for p in inspect.signature(make_fn).parameters.values())
    res = runner.invoke(app, ["make", "--out", "o", "--artifacts", "a", "--dpi", "60", "--set", "title=x"])
    assert res.exit_code == 0, res.output
    assert seen["args"]["out"] == Path("o") and seen["args"]["artifacts"] == Path("a")
    assert seen["cfg"].dpi == 60 and seen["cfg"].title == "x"


def test_field_options_default_unset_flags_from_names_and_own_help() -> None:
    params = inspect.signature(field_options(final_norm=bool, top_k=(int, "Kept tokens."))).parameters
    assert list(params) == ["final_norm", "top_k"]
    norm, top = params["final_norm"].default, params["top_k"].default
    assert norm.default is None and top.default is None
    assert norm.param_decls == ("--final-norm/--no-final-norm",) and top.param_decls == ("--top-k",)
    assert norm.help is None and top.help == "Kept tokens."
    assert params["top_k"].annotation == int | None


def test_field_options_take_help_and_default_from_the_config() -> None:
    res = runner.invoke(_app({}), ["make", "--help"])
    flat = " ".join(res.output.replace("│", " ").split())
    assert "Page title and top heading. [default: vlmscope report]" in flat
    assert "Dots per inch. [default: 80]" in flat


def test_bound_config_reads_only_bound_options_and_applies_conversions() -> None:
    @bind(REPORT, "title", "dpi")
    def verb() -> None: ...

    values = {"title": "t", "dpi": None, "artifacts": Path("x"), "params": None, "set_": ["dpi=50"]}
    cfg = bound_config(verb, values)
    assert cfg.title == "t" and cfg.dpi == 50  # None is "not given": --set wins
    assert bound_config(verb, values, dpi=70).dpi == 70
    with pytest.raises(TypeError, match="not bound"):
        bound_config(verb, values, max_table_rows=3)
