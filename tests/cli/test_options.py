"""One place for every default: the config classes; the CLI only reads them (vlmscope.cli.options)."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer.main
from typer.testing import CliRunner

from vlmscope.cli import options
from vlmscope.cli.app import app
from vlmscope.cli.options import ConfigCommand, binding_of, build_config, field_default, parse_sets, show_value
from vlmscope.errors import ConfigError

CLI_DIR = Path(options.__file__).parent
runner = CliRunner(env={"COLUMNS": "1000"})  # help on one line per option: defaults never wrap


def _commands() -> list[tuple[list[str], Any]]:
    out: list[tuple[list[str], Any]] = []

    def walk(cmd: Any, path: list[str]) -> None:
        subs = getattr(cmd, "commands", None)
        if subs is None:
            out.append((path, cmd))
            return
        for name, sub in subs.items():
            walk(sub, [*path, name])

    walk(typer.main.get_command(app), [])
    return out


COMMANDS = _commands()
BOUND = [(path, cmd) for path, cmd in COMMANDS if binding_of(cmd) is not None]
HAND_DEFAULT = re.compile(r"[(\[]default:? *[\w.\-]|default \d|\d+ by default")
"""Help text that states a default by hand: "(default 128)", "[default: 1]", "(default: detected)"."""


def test_every_config_verb_is_bound() -> None:
    names = {" ".join(p) for p, _ in BOUND}
    for verb in ("extract", "evaluate", "probe", "report", "gradcam", "lens logit", "lens ffn", "train projector",
                 "train lora", "train output-layer", "train clip", "train default", "import vrd", "import llava",
                 "import pixmo-count", "import countbench", "import counting-qa", "import class-folders",
                 "models composite"):  # fmt: skip
        assert verb in names


@pytest.mark.parametrize("path", sorted(CLI_DIR.glob("*.py")), ids=lambda p: p.name)
def test_no_default_is_written_by_hand_in_cli(path: Path) -> None:
    strings = [n.value for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.Constant) and isinstance(n.value, str)]
    found = [t for t in strings if HAND_DEFAULT.search(t)]
    assert not found, f"{path.name} states a default by hand: {found}"


def test_the_hand_default_pattern_catches_what_it_should() -> None:
    for bad in ('help="LoRA rank (default 128)."', "help='Seed [default: 0].'", "(default: detected)",
                "Keep the CLS token (dropped by default)"[:0] + "1200 by default"):  # fmt: skip
        assert HAND_DEFAULT.search(bad), bad
    assert not HAND_DEFAULT.search('f"{text} (default {value})"')


@pytest.mark.parametrize(("path", "cmd"), BOUND, ids=[" ".join(p) for p, _ in BOUND])
def test_bound_options_default_to_unset(path: list[str], cmd: Any) -> None:
    """A bound option's own default would shadow the config's: it must be None (not given)."""
    binding = binding_of(cmd)
    config = binding.config_class()
    for param in cmd.params:
        if param.name in binding.fields:
            assert param.default is None, f"{' '.join(path)} --{param.name} defaults to {param.default!r} by hand"
        elif param.name in config.model_fields and param.default not in (None, False, [], ()):
            pytest.fail(f"{' '.join(path)} --{param.name} has default {param.default!r} but is not bound to the config")


@pytest.mark.parametrize(("path", "cmd"), BOUND, ids=[" ".join(p) for p, _ in BOUND])
def test_help_shows_the_config_defaults(path: list[str], cmd: Any) -> None:
    res = runner.invoke(app, [*path, "--help"])
    assert res.exit_code == 0, res.output
    flat = " ".join(res.output.replace("│", " ").split())
    binding = binding_of(cmd)
    config = binding.config_class()
    shown = 0
    for param in cmd.params:
        fields = binding.fields.get(param.name or "")
        if not fields:
            continue
        default = field_default(config, fields[0])
        if default is None:
            continue
        want = " ".join(f"[default: {show_value(default)}]".split())
        assert want in flat, f"{' '.join(path)} --help lacks {want} for --{param.name}"
        shown += 1
    assert shown, f"{' '.join(path)}: no bound option with a default"


def test_train_default_help_shows_the_real_pretrain_steps() -> None:
    """The hand-written text said 1200 while the config said 2000; now it cannot drift."""
    from vlmscope.training.trainers.default_model import DefaultTrainConfig

    steps = DefaultTrainConfig().vision_pretrain.steps
    flat = " ".join(runner.invoke(app, ["train", "default", "--help"]).output.replace("│", " ").split())
    assert f"0 skips it. [default: {steps}]" in flat


def test_parse_sets_nests_dotted_keys_and_reads_yaml() -> None:
    got = parse_sets(["loop.lr=3e-4", "loop.max-steps=5", "split=[test, valid]", "layer=null", "title=a b"])
    assert got == {"loop": {"lr": 3e-4, "max_steps": 5}, "split": ["test", "valid"], "layer": None, "title": "a b"}
    with pytest.raises(ConfigError, match="key=value"):
        parse_sets(["lr"])
    with pytest.raises(ConfigError, match="given twice"):
        parse_sets(["lr=1", "lr=2"])


def test_precedence_params_file_then_set_then_options(tmp_path: Path) -> None:
    from vlmscope.lens.config import LogitLensConfig

    f = tmp_path / "lens.yaml"
    f.write_text("top_k: 3\nbatch_size: 7\ntarget_column: label\n")
    cfg = build_config(LogitLensConfig, params=f, sets=["top_k=4", "batch_size=9"], given={"top_k": 5, "variable": None})
    assert (cfg.top_k, cfg.batch_size, cfg.target_column, cfg.variable) == (5, 9, "label", "hidden")


def test_nested_override_keeps_the_trainers_own_defaults() -> None:
    from vlmscope.training.config import LoopConfig
    from vlmscope.training.trainers.default_model import DefaultTrainConfig

    base = DefaultTrainConfig()
    cfg = build_config(DefaultTrainConfig, sets=["loop.lr=5e-4"], given={"vision_pretrain.steps": 7})
    assert cfg.loop == base.loop.model_copy(update={"lr": 5e-4})
    assert cfg.loop.max_steps != LoopConfig().max_steps  # the trainer's tuned loop, not LoopConfig's
    assert cfg.vision_pretrain == base.vision_pretrain.model_copy(update={"steps": 7})
    assert build_config(DefaultTrainConfig, sets=["vision_pretrain=null"]).vision_pretrain is None


def test_bad_params_file_is_one_line(tmp_path: Path) -> None:
    from vlmscope.lens.config import FfnConfig

    f = tmp_path / "p.yaml"
    f.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="must be a mapping"):
        build_config(FfnConfig, params=f)
    with pytest.raises(ConfigError, match="no such file"):
        build_config(FfnConfig, params=tmp_path / "missing.yaml")


def test_cli_passes_params_and_set_to_the_library(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import vlmscope.lens.logit as logit_mod

    seen: dict[str, Any] = {}

    def fake(store: Any, model: Any, config: Any, out: Any, revision: str | None = None,
             progress: bool = False) -> dict[str, Any]:
        seen["config"] = config
        return {"best_layer": 1, "best_layer_top1_accuracy": 0.5, "final_layer": 2, "final_layer_top1_accuracy": 0.25}

    monkeypatch.setattr(logit_mod, "logit_lens", fake)
    f = tmp_path / "lens.yaml"
    f.write_text("top_k: 3\nfinal_norm: false\n")
    res = runner.invoke(app, ["lens", "logit", str(tmp_path), "--model", "m", "--out", str(tmp_path / "o"),
                              "--params", str(f), "--set", "batch_size=12", "--top-k", "4"])  # fmt: skip
    assert res.exit_code == 0, res.output
    c = seen["config"]
    assert (c.top_k, c.final_norm, c.batch_size) == (4, False, 12)


def test_cli_set_typo_is_one_line_error(tmp_path: Path) -> None:
    res = runner.invoke(app, ["lens", "ffn", str(tmp_path), "--model", "m", "--out", str(tmp_path / "o"),
                              "--set", "nuerons=2"])  # fmt: skip
    assert res.exit_code == 1
    assert "nuerons" in res.output and "Traceback" not in res.output


def test_train_default_pretrain_steps_zero_skips_pretraining(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import vlmscope.training.trainers.default_model as dm

    seen: list[Any] = []
    monkeypatch.setattr(dm, "train_default", lambda model, ds, out, cfg, **kw: seen.append(cfg) or {"accuracy": 1.0})
    args = ["train", "default", "--model", "m", "--dataset", str(tmp_path), "--out", str(tmp_path / "o")]
    for extra, want in ((["--pretrain-steps", "0"], None), (["--pretrain-steps", "3"], 3), ([], dm.DefaultTrainConfig().vision_pretrain.steps)):
        res = runner.invoke(app, [*args, *extra])
        assert res.exit_code == 0, res.output
        vp = seen[-1].vision_pretrain
        assert (None if vp is None else vp.steps) == want


def test_help_does_not_import_torch() -> None:
    """Config classes are read at --help time only; start-up must stay torch-free."""
    code = "import sys; from vlmscope.cli.app import app; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "False"


def test_config_command_is_used_for_bound_commands() -> None:
    for path, cmd in BOUND:
        assert isinstance(cmd, ConfigCommand), " ".join(path)
