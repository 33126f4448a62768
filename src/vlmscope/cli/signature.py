"""Option blocks declared once and spliced into the signature of every verb that takes them.

typer reads a command's options off its function signature, so verbs that
share options (the trainers' loop options, ``--params``/``--set``, options
that are only a config field) would otherwise each restate the same
parameter block. A *template* is a function whose signature is such a block;
:func:`with_options` builds a verb's signature from templates and the verb's
own parameters, and the verb receives the template options as ``**kwargs``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, TypeVar

import typer

from vlmscope.cli.options import ParamsFile, Sets

__all__ = ["config_options", "field_options", "option_names", "with_options"]

F = TypeVar("F", bound=Callable[..., Any])


def config_options(params: ParamsFile = None, set_: Sets = None) -> None:
    """Template of the two generic options every config verb takes (``--params``, ``--set``)."""


def with_options(*parts: Callable[..., Any] | None) -> Callable[[F], F]:
    """Give a command the options of template functions, in order; ``None`` stands for its own parameters.

    typer reads a command's options off its signature, so verbs sharing a
    block of options would each restate it; a template function declares
    the block once and :func:`with_options` splices it into each verb's
    ``__signature__``. The verb receives the template options through its
    ``**kwargs``. All options become keyword-only (typer passes keywords).
    """

    def params_of(fn: Callable[..., Any]) -> list[inspect.Parameter]:
        found = inspect.signature(fn, eval_str=True).parameters.values()
        return [p.replace(kind=p.KEYWORD_ONLY) for p in found if p.kind is not p.VAR_KEYWORD]

    def deco(fn: F) -> F:
        spliced = [p for part in parts for p in params_of(fn if part is None else part)]
        fn.__signature__ = inspect.Signature(spliced)  # type: ignore[attr-defined]
        return fn

    return deco



def field_options(**kinds: type | tuple[type, str]) -> Callable[..., None]:
    """Template of options that are a config field and little more, in the order given.

    ``name=int`` declares ``--name`` (``--name/--no-name`` for ``bool``),
    unset (``None``) by default; help text and shown default come from the
    bound config field when ``--help`` renders (:class:`~vlmscope.cli.options.ConfigCommand`).
    ``name=(str, "help")`` gives the option its own, shorter help instead.
    """
    params = []
    for name, spec in kinds.items():
        kind, help_text = spec if isinstance(spec, tuple) else (spec, None)
        flag = "--" + name.replace("_", "-")
        decl = f"{flag}/--no-{flag[2:]}" if kind is bool else flag
        option = typer.Option(None, decl, help=help_text)
        params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=kind | None))

    def template() -> None:
        """Signature only (set below)."""

    template.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    return template


def option_names(template: Callable[..., Any]) -> tuple[str, ...]:
    """Parameter names of a template, e.g. to :func:`~vlmscope.cli.options.bind` them all."""
    return tuple(inspect.signature(template).parameters)
