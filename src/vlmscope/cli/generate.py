"""`vlmscope generate KIND`: render a synthetic dataset directory.

One command per registered kind (spatial, color, relations, counting). The
common knobs are options (``--out``, ``--n``, ``--seed``, ``--variant``);
every other config field is ``--set key=value`` (YAML value, lists as
``a,b,c``) or comes from ``--params FILE`` (the generator section of
``params.yaml``), so the CLI never lags behind the configs. Bad values exit 1 with
one line naming the option.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Union, get_args, get_origin

import typer
from pydantic import ValidationError

from vlmscope.cli.options import ParamsFile, parse_set_value, read_params_file
from vlmscope.cli.outdir import refuse_cwd_out
from vlmscope.data.generators import GENERATORS, GeneratorConfig, generate, make_config
from vlmscope.data.generators.base import GeneratorSpec
from vlmscope.errors import ConfigError
from vlmscope.io.progress import progress_bar

__all__ = ["app", "parse_sets"]

app = typer.Typer(
    help=(
        "Render a synthetic dataset (manifest.parquet, images/, dataset.json). "
        "Deterministic: the same --seed and parameters give byte-identical files."
    ),
    no_args_is_help=True,
)

_OPTION_FIELDS = ("n", "seed", "variant")


def _is_tuple_field(spec: GeneratorSpec, key: str) -> bool:
    ann = spec.config.model_fields[key].annotation
    if get_origin(ann) is Union:
        return any(get_origin(a) is tuple for a in get_args(ann))
    return get_origin(ann) is tuple


def parse_sets(items: list[str], spec: GeneratorSpec) -> dict[str, Any]:
    """``["colors=red,blue", "size_max=30"]`` -> ``{"colors": ["red", "blue"], "size_max": 30}``.

    Values are YAML (numbers, booleans, ``[a, b]``); a comma list given for a
    list-valued field is split. Keys may use dashes. Unknown keys are left for
    ``make_config`` to reject with the list of valid ones.
    """
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise ConfigError(f"--set expects key=value, got {item!r}")
        if key in out:
            raise ConfigError(f"--set {key} given twice")
        value: Any = parse_set_value(key, raw)
        if isinstance(value, str) and key in spec.config.model_fields and _is_tuple_field(spec, key):
            value = [v.strip() for v in value.split(",") if v.strip()]
            if key in ("sizes", "counts"):
                value = [parse_set_value(key, v) for v in value]
        out[key] = value
    return out


def _option_name(loc: tuple[Any, ...]) -> str:
    if not loc:
        return "parameters"
    head = str(loc[0])
    name = f"--{head}" if head in _OPTION_FIELDS else f"--set {head}"
    return name + "".join(f"[{x}]" for x in loc[1:])


def _config(kind: str, params: dict[str, Any]) -> GeneratorConfig:
    """Validate, turning pydantic's report into one line that names our options."""
    try:
        return make_config(kind, **params)
    except ValidationError as e:
        parts = []
        for err in e.errors():
            msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
            got = err.get("input")
            got_txt = "" if isinstance(got, dict) else f" (got {got!r})"
            parts.append(f"{_option_name(tuple(err.get('loc', ())))}: {msg}{got_txt}")
        raise ConfigError(f"invalid parameter for {kind}: " + "; ".join(parts)) from None


@contextlib.contextmanager
def _progress(kind: str) -> Iterator[Callable[[int, int], None]]:
    """A bar over rendered images (total known only once rendering starts); on a terminal only."""
    with progress_bar(transient=False, elapsed=True) as bar:
        task = bar.add_task(f"rendering {kind}", total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update


def _epilog(spec: GeneratorSpec) -> str:
    lines = ["Parameters for --set key=value (default):"]
    for name, f in spec.config.model_fields.items():
        if name in _OPTION_FIELDS:
            continue
        default = f.default
        if isinstance(default, tuple):
            default = ",".join(map(str, default))
        lines.append(f"  {name} ({default}): {f.description or ''}")
    return "\n\n".join(lines[:1]) + "\n\n" + "\n\n".join(lines[1:])


def _option_help(spec: GeneratorSpec, name: str, text: str) -> str:
    """``text`` plus the field's default, read from the generator's config (never restated here)."""
    return f"{text} (default {spec.config.model_fields[name].default})"


def _from_file(path: Path | None, spec: GeneratorSpec) -> dict[str, Any]:
    """A ``--params`` file: the generator section as in params.yaml (``kind``, if there, must match)."""
    if path is None:
        return {}
    data = read_params_file(path)
    kind = data.pop("kind", spec.name)
    if kind != spec.name:
        raise ConfigError(f"--params {path}: kind {kind!r} is not {spec.name!r}")
    return data


def _make_command(spec: GeneratorSpec) -> Callable[..., None]:
    variants = ", ".join(spec.variants)

    def command(
        out: Path = typer.Option(..., "--out", "-o", callback=refuse_cwd_out, help="Dataset directory to write (written atomically; an existing one is replaced only if it is an earlier output of this kind)."),
        n: int | None = typer.Option(None, "--n", help=_option_help(spec, "n", "Number of samples.")),
        seed: int | None = typer.Option(None, "--seed", help=_option_help(spec, "seed", "Random seed.")),
        variant: str | None = typer.Option(
            None,
            "--variant",
            help=_option_help(spec, "variant", f"One of: {variants}.") if spec.variants else "This kind has no variants.",
            hidden=not spec.variants,
        ),
        set_: list[str] = typer.Option(
            [], "--set", "-s", help="Any other parameter as key=value (repeatable); see the list below."
        ),
        params_file: ParamsFile = None,
    ) -> None:
        sets = parse_sets(set_, spec)
        params = {**_from_file(params_file, spec), **sets}  # options > --set > --params
        for name, value in (("n", n), ("seed", seed), ("variant", variant)):
            if value is None:
                continue
            if name in sets:
                raise ConfigError(f"--{name} given twice (also as --set {name}=...)")
            if name == "variant" and not spec.variants:
                raise ConfigError(f"generator {spec.name!r} has no variants; got --variant {value!r}")
            params[name] = value
        config = _config(spec.name, params)
        with _progress(spec.name) as update:
            info = generate(config, out, progress=update)
        typer.echo(
            f"wrote {info.n_samples} samples ({info.extra.get('n_images', '?')} images) to {out} "
            f"[fingerprint {info.fingerprint[:16]}]"
        )

    command.__name__ = spec.name
    command.__doc__ = f"{spec.summary}\n\nDefaults reproduce the study; see the parameter list below."
    return command


for _name in GENERATORS:
    _spec = GENERATORS.get(_name)
    app.command(_name, help=None, epilog=_epilog(_spec))(_make_command(_spec))
del _name, _spec
