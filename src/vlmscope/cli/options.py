"""Typed configs at the CLI edge, so every default lives in its config class only.

A verb's config-backed options all default to ``None`` ("not given"); the
verb hands what was given to :func:`build_config`, and the config class
supplies everything else. Nothing in ``cli/`` restates a default: the help
text and shown default of a bound option are read from the config field
(its attribute docstring and default) when ``--help`` is rendered. That read
imports the config module then, not at start-up, so ``vlmscope --help`` stays
torch-free even for trainers whose config lives beside torch code.

Every config verb also takes the same two generic options, which reach every
field, nested ones included:

* ``--params FILE``: a YAML mapping, that config's section as written in
  ``params.yaml`` (so a DVC stage's section can be replayed by hand);
* ``--set key=value`` (repeatable): a dotted key (``loop.lr=3e-4``) and a YAML
  value (``[a, b]``, ``null``, ``true``, ``1e-3``).

Precedence: config defaults < ``--params`` < ``--set`` < explicit options.

A verb passes its arguments to :func:`bound_config`, which picks out the
bound ones, so no verb lists its options a second time; option blocks that
several verbs take are declared once in :mod:`vlmscope.cli.signature`.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
import yaml
from typer.core import TyperCommand, TyperOption

from vlmscope.errors import ConfigError
from vlmscope.params import merge

__all__ = [
    "ConfigBinding",
    "ConfigCommand",
    "ParamsFile",
    "Sets",
    "bind",
    "bound_config",
    "build_config",
    "field_default",
    "field_help",
    "parse_set_value",
    "parse_sets",
    "read_params_file",
]

F = TypeVar("F", bound=Callable[..., Any])

ParamsFile = Annotated[
    Path | None,
    typer.Option(
        "--params",
        help="YAML file holding this command's config section (as in params.yaml); options override it.",
        show_default=False,
    ),
]
"""The ``--params FILE`` option every config verb takes."""

Sets = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        help="Any config field as key=value (repeatable; dotted keys for nested fields, YAML values).",
        show_default=False,
    ),
]
"""The ``--set key=value`` option every config verb takes."""


@dataclass(frozen=True)
class ConfigBinding:
    """Which config class backs a command, and which option feeds which field(s)."""

    config: str
    """``module:Class`` of the config, imported only when needed."""
    fields: Mapping[str, tuple[str, ...]]
    """Option parameter name -> dotted field paths it sets (the first one documents it)."""

    def config_class(self) -> Any:
        module, _, name = self.config.partition(":")
        return getattr(importlib.import_module(module), name)


def bind(config: str, *names: str, **renamed: str | tuple[str, ...]) -> Callable[[F], F]:
    """Back a command function by ``config`` (``"module:Class"``).

    ``names`` are options whose parameter name equals the field name;
    ``renamed`` maps a parameter to a dotted field path (``lr="loop.lr"``) or
    to several (``seed=("loop.seed", "subsample.seed")``).
    """
    fields: dict[str, tuple[str, ...]] = {n: (n,) for n in names}
    for param, path in renamed.items():
        fields[param] = (path,) if isinstance(path, str) else tuple(path)

    def deco(fn: F) -> F:
        fn.__vlmscope_config__ = ConfigBinding(config, fields)  # type: ignore[attr-defined]
        return fn

    return deco


def binding_of(command: Any) -> ConfigBinding | None:
    """The binding of a click command built from a :func:`bind` function (typer copies ``__dict__``)."""
    return getattr(command.callback, "__vlmscope_config__", None)


def _field(config: Any, dotted: str) -> tuple[Any, Any]:
    """(FieldInfo, default value) of a dotted field path; nested defaults come from the parent's default."""
    from pydantic import BaseModel
    from pydantic_core import PydanticUndefined

    cls: Any = config
    info: Any = None
    value: Any = None
    for i, part in enumerate(dotted.split(".")):
        if cls is None or part not in cls.model_fields:
            raise KeyError(f"{config.__name__} has no field {dotted!r}")
        info = cls.model_fields[part]
        if i and isinstance(value, BaseModel):
            value = getattr(value, part)
        else:
            value = info.get_default(call_default_factory=True)
        if value is PydanticUndefined:
            value = None
        ann = info.annotation
        if isinstance(value, BaseModel):
            cls = type(value)
        elif isinstance(ann, type) and issubclass(ann, BaseModel):
            cls = ann
        else:
            cls = None
    return info, value


def field_default(config: Any, dotted: str) -> Any:
    """The default of a (dotted) field of ``config``, nested trainer defaults included."""
    return _field(config, dotted)[1]


def field_help(config: Any, dotted: str) -> str:
    """First sentence of the field's attribute docstring, on one line ('' when it has none)."""
    info, _ = _field(config, dotted)
    text = " ".join((info.description or "").replace("``", "").split())
    return re.split(r"(?<=[.;])\s+(?=[A-Z])", text, maxsplit=1)[0]


def show_value(value: Any) -> str:
    """A default as a user would type it: lists comma-joined, ``None`` as ``none``."""
    if isinstance(value, (tuple, list)):
        return ",".join(show_value(v) for v in value)
    if value is None:
        return "none"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


class ConfigCommand(TyperCommand):
    """A typer command whose bound options take help and shown default from the config at help time."""

    _annotated = False

    def _annotate(self) -> None:
        binding = binding_of(self)
        if binding is None or self._annotated:
            return
        config = binding.config_class()
        for param in self.params:
            paths = binding.fields.get(param.name or "")
            if not paths or not isinstance(param, TyperOption):
                continue
            own = (param.help or "").strip()
            text = own or field_help(config, paths[0])
            default = field_default(config, paths[0])
            if default is not None:
                text = f"{text} [default: {show_value(default)}]".strip()
            if self.rich_markup_mode == "rich":  # brackets would be read as markup
                from rich.markup import escape

                text = escape(text)
            param.help = text
            param.show_default = False
        self._annotated = True

    def format_help(self, ctx: Any, formatter: Any) -> None:
        self._annotate()
        return super().format_help(ctx, formatter)


def read_params_file(path: Path) -> dict[str, Any]:
    """A ``--params`` file: a YAML mapping (empty file: no overrides)."""
    if not path.is_file():
        raise ConfigError(f"--params {path}: no such file")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"--params {path}: not YAML ({e})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"--params {path}: must be a mapping of config fields, got {type(data).__name__}")
    return data


def _nest(dotted: str, value: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    node = out
    parts = dotted.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value
    return out


_SCIENTIFIC = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)[eE][+-]?\d+$")


_STRUCTURED = ("[", "{", '"', "'")


def parse_set_value(key: str, raw: str) -> Any:
    """The YAML value of ``--set key=raw``; broken YAML stays text unless it opens a list, mapping or quote.

    Why: ``counts=[1,2`` (a list missing its bracket) kept as the text
    ``"[1,2"`` surfaces later as a confusing type error far from the typo, while
    free text that happens not to be YAML (``prompt=a: b: c``) is what the user meant.
    """
    if not raw.strip():
        return raw
    try:
        return yaml.safe_load(raw)
    except ValueError:  # a date-like value that is no date (2020-13-01): the user meant text
        return raw
    except RecursionError:
        raise ConfigError(f"--set {_shown(key)}: value nested too deeply") from None
    except yaml.YAMLError as e:
        if raw.lstrip().startswith(_STRUCTURED):
            problem = " ".join(str(getattr(e, "problem", None) or "invalid YAML").split())
            raise ConfigError(
                f"--set {_shown(key)}: {raw!r} is not a valid YAML value ({problem}); close its bracket or quote"
            ) from None
        return raw


def _shown(key: str) -> str:
    """``key`` as an error names it: quoted when it holds a line break or another unprintable character."""
    return key if key.isprintable() else repr(key)


def parse_sets(items: list[str] | None) -> dict[str, Any]:
    """``["loop.lr=3e-4", "split=[test, valid]"]`` -> ``{"loop": {"lr": 0.0003}, "split": ["test", "valid"]}``.

    Keys may use dashes for underscores; values are YAML (a string that is not
    valid YAML is kept as text, unless it opens a list, mapping or quote: see
    :func:`parse_set_value`). A key given twice is an error.
    """
    out: dict[str, Any] = {}
    seen: set[str] = set()
    for item in items or []:
        key, sep, raw = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key or any(not p for p in key.split(".")):
            raise ConfigError(f"--set expects key=value, got {item!r}")
        if key in seen:
            raise ConfigError(f"--set {_shown(key)} given twice")
        seen.add(key)
        value: Any = parse_set_value(key, raw)
        if isinstance(value, str) and _SCIENTIFIC.match(value.strip()):
            value = float(value)  # YAML 1.1 reads 3e-4 as text
        out = merge(out, _nest(key, value))
    return out


def build_config(
    config: Any,
    *,
    params: Path | None = None,
    sets: list[str] | None = None,
    given: Mapping[str, Any] | None = None,
    binding: ConfigBinding | None = None,
) -> Any:
    """Validate ``config`` from ``--params``, ``--set`` and the explicit options, in that order.

    ``given`` maps option parameter names (or dotted field paths when no
    ``binding`` is passed) to values; ``None`` means "not given" and is
    skipped. A nested config that is partly overridden keeps the rest of its
    default (``loop.lr`` keeps the trainer's tuned ``loop``), and a field
    given ``None`` explicitly through ``--params``/``--set`` stays ``None``.
    """
    from pydantic import BaseModel

    data: dict[str, Any] = read_params_file(params) if params is not None else {}
    data = merge(data, parse_sets(sets))
    for name, value in (given or {}).items():
        if value is None:
            continue
        paths = binding.fields.get(name, (name,)) if binding is not None else (name,)
        for path in paths:
            data = merge(data, _nest(path, value))
    for key, value in list(data.items()):
        if isinstance(value, dict) and key in config.model_fields:
            default = config.model_fields[key].get_default(call_default_factory=True)
            if isinstance(default, BaseModel):
                data[key] = merge(default.model_dump(), value)
    return config.model_validate(data)


def run_config(fn: Callable[..., Any], params: Path | None, sets: list[str] | None, **given: Any) -> Any:
    """The config of a :func:`bind` command from its ``--params``, ``--set`` and bound options."""
    binding: ConfigBinding = fn.__vlmscope_config__  # type: ignore[attr-defined]
    unknown = set(given) - set(binding.fields)
    if unknown:
        raise TypeError(f"options not bound to {binding.config}: {sorted(unknown)}")
    return build_config(binding.config_class(), params=params, sets=sets, given=given, binding=binding)


def bound_config(fn: Callable[..., Any], values: Mapping[str, Any], **converted: Any) -> Any:
    """:func:`run_config` with every bound option (and ``params``/``set_``) read from ``values``.

    ``values`` is the verb's arguments (its ``locals()``, merged with its
    template ``**kwargs``); ``converted`` replaces the options the verb had to
    convert first (comma lists, flags). Why: otherwise a verb lists each bound
    option twice, in its signature and again in the :func:`run_config` call.
    """
    binding: ConfigBinding = fn.__vlmscope_config__  # type: ignore[attr-defined]
    given = {name: values[name] for name in binding.fields if name in values}
    given.update(converted)
    return run_config(fn, values.get("params"), values.get("set_"), **given)
