"""An original LLaVA-codebase ``mm_projector.bin`` merged into a transformers LLaVA checkpoint, tensor by tensor."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from vlmscope.errors import ModelError
from vlmscope.models.merge import MERGE_INFO
from vlmscope.models.projector_bin import merge_projector_bin, read_projector_bin
from vlmscope.models.weights import read_tensors, tensor_names, tensor_shapes

P = "multi_modal_projector."


@pytest.fixture(scope="module")
def linear_composite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from vlmscope.models.families.composite import build_tiny_composite

    return build_tiny_composite(tmp_path_factory.mktemp("linear") / "composite", projector="linear")


def _random(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def _mlp_state(base: Path, prefix: str = "model.") -> dict[str, torch.Tensor]:
    shapes = tensor_shapes(base)
    return {
        f"{prefix}mm_projector.{i}.{p}": _random(shapes[f"{P}{layer}.{p}"], seed=10 * i + len(p)).to(torch.bfloat16)
        for i, layer in ((0, "linear_1"), (2, "linear_2")) for p in ("weight", "bias")
    }  # fmt: skip


def _check_rest_unchanged(out: Path, base: Path, replaced: set[str]) -> None:
    names = tensor_names(base)
    assert tensor_names(out) == names
    got, want = read_tensors(out, names), read_tensors(base, names)
    for n in names:
        if n not in replaced:
            assert torch.equal(got[n], want[n]), n


@pytest.mark.parametrize("prefix", ["model.", ""])
def test_mlp2x_gelu_bin_lands_tensor_by_tensor(tiny_checkpoint: Callable[[str], Path], tmp_path: Path,
                                               prefix: str) -> None:  # fmt: skip
    base = tiny_checkpoint("composite")  # mlp2x_gelu, projector_hidden_act gelu
    state = _mlp_state(base, prefix)
    torch.save(state, tmp_path / "mm_projector.bin")
    info = merge_projector_bin(base, tmp_path / "mm_projector.bin", tmp_path / "out")
    assert info["projector_kind"] == "mlp2x_gelu"
    pairs = {f"{P}linear_1.{p}": f"{prefix}mm_projector.0.{p}" for p in ("weight", "bias")}
    pairs |= {f"{P}linear_2.{p}": f"{prefix}mm_projector.2.{p}" for p in ("weight", "bias")}
    assert set(info["replaced"]) == set(pairs)
    got = read_tensors(tmp_path / "out", list(pairs))
    for target, key in pairs.items():
        assert got[target].dtype == torch.float32  # cast to the base's dtype
        assert torch.equal(got[target], state[key].float()), target
    _check_rest_unchanged(tmp_path / "out", base, set(pairs))
    assert json.loads((tmp_path / "out" / MERGE_INFO).read_text())["projector"] == str(tmp_path / "mm_projector.bin")


def test_linear_bin_is_linear_1_with_identity_linear_2(linear_composite: Path, tmp_path: Path) -> None:
    from vlmscope.models import load_model

    shapes = tensor_shapes(linear_composite)
    w, b = _random(shapes[f"{P}linear_1.weight"], 1), _random(shapes[f"{P}linear_1.bias"], 2)
    torch.save({"model.mm_projector.weight": w, "model.mm_projector.bias": b}, tmp_path / "p.bin")
    info = merge_projector_bin(linear_composite, tmp_path / "p.bin", tmp_path / "out")
    assert info["projector_kind"] == "linear"
    got = read_tensors(tmp_path / "out", [f"{P}linear_1.weight", f"{P}linear_1.bias", f"{P}linear_2.weight", f"{P}linear_2.bias"])
    assert torch.equal(got[f"{P}linear_1.weight"], w) and torch.equal(got[f"{P}linear_1.bias"], b)
    d = shapes[f"{P}linear_2.weight"][0]
    assert torch.equal(got[f"{P}linear_2.weight"], torch.eye(d))
    assert torch.equal(got[f"{P}linear_2.bias"], torch.zeros(d))
    _check_rest_unchanged(tmp_path / "out", linear_composite, set(info["replaced"]))
    projector = load_model(tmp_path / "out").model.model.multi_modal_projector
    x = _random((3, w.shape[1]), 3)
    with torch.no_grad():
        torch.testing.assert_close(projector(x), torch.nn.functional.linear(x, w, b))  # the linear map itself


def test_linear_bin_into_a_gelu_mlp_is_refused(tiny_checkpoint: Callable[[str], Path], tmp_path: Path) -> None:
    base = tiny_checkpoint("composite")
    shapes = tensor_shapes(base)
    torch.save({"model.mm_projector.weight": torch.zeros(shapes[f"{P}linear_1.weight"])}, tmp_path / "p.bin")
    with pytest.raises(ModelError, match=r"p\.bin: a linear projector cannot merge .*projector_hidden_act 'gelu'"):
        merge_projector_bin(base, tmp_path / "p.bin", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_mlp_bin_into_a_linear_projector_is_refused(linear_composite: Path, tmp_path: Path) -> None:
    torch.save(_mlp_state(linear_composite), tmp_path / "p.bin")
    with pytest.raises(ModelError, match="mlp2x_gelu projector cannot merge .* 'linear'"):
        merge_projector_bin(linear_composite, tmp_path / "p.bin", tmp_path / "out")


def test_shape_mismatch_names_the_tensor_and_both_shapes(tiny_checkpoint: Callable[[str], Path], tmp_path: Path) -> None:
    base = tiny_checkpoint("composite")
    state = _mlp_state(base)
    want = tuple(state["model.mm_projector.2.weight"].shape)
    state["model.mm_projector.2.weight"] = torch.zeros(want[0] + 1, want[1])
    torch.save(state, tmp_path / "p.bin")
    with pytest.raises(ModelError, match=rf"tensor {P}linear_2\.weight: shape \({want[0] + 1}, {want[1]}\) vs \({want[0]}, {want[1]}\)"):
        merge_projector_bin(base, tmp_path / "p.bin", tmp_path / "out")


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        (["model.mm_projector.0.weight", "model.vision_tower.x"], r"\['model.vision_tower.x'\] are not an original LLaVA"),
        (["model.mm_projector.0.weight", "model.mm_projector.4.weight"], r"layers \['0', '4'\] are not a linear or mlp2x_gelu"),
        (["model.mm_projector.0.weight", "model.mm_projector.0.bias", "model.mm_projector.2.weight"],
         r"does not cover the checkpoint's projector tensor\(s\) \['multi_modal_projector.linear_2.bias'\]"),
    ],
)  # fmt: skip
def test_keys_that_are_not_a_llava_projector_are_refused(tiny_checkpoint: Callable[[str], Path], tmp_path: Path,
                                                         keys: list[str], message: str) -> None:  # fmt: skip
    base = tiny_checkpoint("composite")
    full = _mlp_state(base)
    torch.save({k: full.get(k, torch.zeros(1)) for k in keys}, tmp_path / "p.bin")
    with pytest.raises(ModelError, match=message):
        merge_projector_bin(base, tmp_path / "p.bin", tmp_path / "out")


class _Payload:
    """Unpickling this would create ``marker``: proof that an arbitrary pickle is never run."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (Path.touch, (self.marker,))


def test_a_bin_that_is_not_a_plain_state_dict_is_refused_unread(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    torch.save({"model.mm_projector.weight": _Payload(marker)}, tmp_path / "evil.bin")
    with pytest.raises(ModelError, match=r"evil\.bin: not a plain state dict of tensors \(torch.load weights_only=True"):
        read_projector_bin(tmp_path / "evil.bin")
    assert not marker.exists()
    torch.save([torch.zeros(2)], tmp_path / "list.bin")
    with pytest.raises(ModelError, match=r"list\.bin: holds a list, expected"):
        read_projector_bin(tmp_path / "list.bin")
    torch.save({"model.mm_projector.weight": 3}, tmp_path / "int.bin")
    with pytest.raises(ModelError, match=r"int\.bin: entries \['model.mm_projector.weight'\] are not named tensors"):
        read_projector_bin(tmp_path / "int.bin")
