"""Family detection, offline loading through the Auto classes, deterministic tiny builds."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from vlmscope.errors import ConfigError, ModelError, NotFound
from vlmscope.models import detect_family, family_info, list_families, load_model
from vlmscope.models.tiny import build_tiny, tiny_families

PART_A = ["llava", "llava-next", "llava-onevision", "composite", "clip", "siglip"]


def test_part_a_families_are_registered_with_tiny_builds() -> None:
    assert set(PART_A) <= set(list_families())
    assert set(PART_A) | {"llava-mistral", "llava-interleave"} <= set(tiny_families())
    info = {f.name: f for f in family_info()}
    assert info["llava"].tiny_builds == ("llava", "llava-interleave", "llava-mistral")
    assert info["paligemma"].tiny_builds == ("paligemma", "paligemma2")
    assert info["llava-next"].tiny_builds == ("llava-next",)
    assert info["clip"].capabilities.contrastive and not info["clip"].capabilities.generation
    assert info["llava"].capabilities.generation and info["llava"].examples


@pytest.mark.parametrize(
    "tiny,family",
    [("llava", "llava"), ("llava-mistral", "llava"), ("llava-interleave", "llava"), ("llava-next", "llava-next"),
     ("llava-onevision", "llava-onevision"), ("composite", "composite"), ("clip", "clip"), ("siglip", "siglip")],
)  # fmt: skip
def test_detect_family_reads_the_sidecar_then_the_model_type(
    tiny_checkpoint: Callable[[str], Path], tiny: str, family: str
) -> None:
    assert detect_family(tiny_checkpoint(tiny)) == family


def test_a_plain_llava_config_without_sidecar_is_llava_not_composite(
    tiny_checkpoint: Callable[[str], Path], tmp_path: Path
) -> None:
    src = tiny_checkpoint("composite")
    (tmp_path / "config.json").write_text((src / "config.json").read_text())
    assert detect_family(tmp_path) == "llava"


def test_detection_errors_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="no config.json"):
        detect_family(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(ModelError, match="no vlmscope family handles model_type 'bert'"):
        detect_family(tmp_path)
    (tmp_path / "vlmscope.json").write_text(json.dumps({"family": "nonsense"}))
    with pytest.raises(ConfigError, match="unknown model family 'nonsense'; valid: "):
        detect_family(tmp_path)


def test_loading_a_local_directory_uses_the_auto_classes_and_no_network(
    tiny_checkpoint: Callable[[str], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    import transformers

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"network access attempted: {args}")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    calls: list[tuple[str, str]] = []
    for name in ("AutoProcessor", "AutoModelForImageTextToText", "AutoModel"):
        cls = getattr(transformers, name)
        orig = cls.from_pretrained.__func__

        def spy(klass: type, path: str, *a: object, _orig=orig, _name=name, **kw: object) -> object:
            calls.append((_name, str(path)))
            return _orig(klass, path, *a, **kw)

        monkeypatch.setattr(cls, "from_pretrained", classmethod(spy))
    llava = tiny_checkpoint("llava")
    clip = tiny_checkpoint("clip")
    assert load_model(llava).family == "llava"
    assert load_model(clip).family == "clip"
    assert ("AutoProcessor", str(llava)) in calls and ("AutoModelForImageTextToText", str(llava)) in calls
    assert ("AutoProcessor", str(clip)) in calls and ("AutoModel", str(clip)) in calls


def test_same_seed_same_weight_bytes_other_seed_other_bytes(tmp_path: Path) -> None:
    a = build_tiny("llava", tmp_path / "a", seed=3)
    b = build_tiny("llava", tmp_path / "b", seed=3)
    c = build_tiny("llava", tmp_path / "c", seed=4)
    for name in ("model.safetensors", "tokenizer.json", "config.json"):
        assert (a / name).read_bytes() == (b / name).read_bytes()
    assert (a / "model.safetensors").read_bytes() != (c / "model.safetensors").read_bytes()
    side = json.loads((a / "vlmscope.json").read_text())
    assert side["family"] == "llava" and side["seed"] == 3 and side["builder"] == "tiny"


def test_unknown_tiny_family_lists_the_valid_ones(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="valid: .*composite"):
        build_tiny("gpt5", tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_bad_load_options_are_refused(tiny_checkpoint: Callable[[str], Path]) -> None:
    from vlmscope.models import LoadOptions

    with pytest.raises(ModelError, match="dtype must be one of"):
        load_model(tiny_checkpoint("llava"), options=LoadOptions(dtype="float8"))
