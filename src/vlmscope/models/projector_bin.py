"""Merge an original LLaVA-codebase projector (``mm_projector.bin``) into a transformers LLaVA checkpoint.

The LLaVA codebase (haotian-liu/LLaVA) saves only the projector after its
pre-training stage, as a pickled PyTorch state dict named
``mm_projector.bin``. Its keys are

- ``model.mm_projector.0.weight`` / ``.0.bias`` / ``.2.weight`` / ``.2.bias``
  for the two-layer ``mlp2x_gelu`` projector (``nn.Sequential(Linear, GELU,
  Linear)``: indices 0 and 2), or
- ``model.mm_projector.weight`` / ``.bias`` for a ``linear`` one,

sometimes without the ``model.`` prefix. A transformers LLaVA checkpoint
holds the same two linears as ``multi_modal_projector.linear_1`` /
``linear_2`` (``model.multi_modal_projector.*`` in the layout of
transformers >= 4.52). A linear projector has no ``linear_2``: it merges
into a checkpoint whose ``projector_hidden_act`` is ``linear`` (vlmscope's
composite linear projector), with ``linear_2`` set to the identity and a
zero bias, so ``linear_2(linear_1(x))`` is the linear map itself.

Why ``weights_only=True``: a ``.bin`` is a pickle, and unpickling runs
code; only plain tensors in plain containers are read, anything else is
refused with one line naming the file.
"""

from __future__ import annotations

import os
import pickle
import re
from pathlib import Path
from typing import Any

import torch

from vlmscope.errors import ModelError, NotFound
from vlmscope.io.jsonfile import read_json_object
from vlmscope.io.outguard import check_out
from vlmscope.models.merge import merged_revision, write_merged
from vlmscope.models.ref import resolve_model_dir
from vlmscope.models.weights import module_prefix, replace_tensors, tensor_shapes

__all__ = ["map_projector", "merge_projector_bin", "read_projector_bin"]

_KEY = re.compile(r"^(?:model\.)?mm_projector\.(?:(?P<index>\d+)\.)?(?P<param>weight|bias)$")
"""An original LLaVA projector key: optional ``model.``, optional Sequential index, weight or bias."""

_MLP_LAYERS = {"0": "linear_1", "2": "linear_2"}
"""``mlp2x_gelu``'s Sequential indices (0 Linear, 1 GELU, 2 Linear) -> transformers' linear names."""

_TARGET = "multi_modal_projector."


def read_projector_bin(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """The state dict in ``path``, read with ``torch.load(weights_only=True)`` only.

    Raises:
        NotFound: no such file.
        ModelError: not a torch file, not loadable as plain tensors (a
            pickled object is never unpickled), or not a flat ``{name: tensor}`` dict.
    """
    p = Path(path)
    if not p.is_file():
        raise NotFound(f"{p}: no such file (expected the LLaVA codebase's mm_projector.bin)")
    try:
        state = torch.load(str(p), map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, AttributeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelError(
            f"{p}: not a plain state dict of tensors (torch.load weights_only=True refused it: {first}); "
            "only a {name: tensor} .bin is read, never an arbitrary pickle"
        ) from e
    if not isinstance(state, dict) or not state:
        raise ModelError(f"{p}: holds a {type(state).__name__}, expected a non-empty {{name: tensor}} state dict")
    bad = [k for k, v in state.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise ModelError(f"{p}: entries {bad[:3]} are not named tensors; expected a flat {{name: tensor}} state dict")
    return dict(state)


def map_projector(
    state: dict[str, torch.Tensor], base: dict[str, tuple[int, ...]], hidden_act: str, *, where: str = "mm_projector.bin"
) -> tuple[dict[str, torch.Tensor], str]:
    """Map an original LLaVA projector state dict onto a LLaVA checkpoint's tensor names, shapes checked.

    Args:
        state: the ``.bin``'s tensors (see the module docstring for the keys).
        base: the target checkpoint's projector tensors, name -> shape (other
            names may be present too; only the projector's are used).
        hidden_act: the target config's ``projector_hidden_act``.
        where: the file, for messages.

    Returns:
        ``(target name -> tensor, kind)``, kind ``mlp2x_gelu`` or ``linear``;
        for ``linear`` the identity ``linear_2`` (zero bias) is included.

    Raises:
        ModelError: keys that are not a LLaVA projector's, a linear projector
        into a GELU MLP checkpoint (or an MLP into a linear one), a bias the
        target lacks, a target tensor the file does not cover, a shape mismatch
        (naming the tensor and both shapes).
    """
    prefix = module_prefix(base, _TARGET, where=where, what="LLaVA multi_modal_projector",
                           hint="an mm_projector.bin merges only into a transformers LLaVA checkpoint")  # fmt: skip
    parsed: dict[tuple[str | None, str], torch.Tensor] = {}
    unknown = []
    for key, value in state.items():
        m = _KEY.match(key)
        if m is None:
            unknown.append(key)
        else:
            parsed[(m["index"], m["param"])] = value
    if unknown:
        raise ModelError(
            f"{where}: key(s) {unknown[:3]} are not an original LLaVA projector's "
            "(expected model.mm_projector.0.weight/.0.bias/.2.weight/.2.bias or model.mm_projector.weight/.bias)"
        )
    indices = {i for i, _ in parsed}
    if indices == {None}:
        kind = "linear"
        if hidden_act != "linear":
            raise ModelError(
                f"{where}: a linear projector cannot merge into a checkpoint whose projector is a "
                f"{hidden_act} MLP (projector_hidden_act {hidden_act!r}); use a composite built with a linear "
                "projector (vlmscope models composite --projector linear)"
            )
        mapped = {f"{prefix}linear_1.{param}": value for (_, param), value in parsed.items()}
    elif indices <= set(_MLP_LAYERS):
        kind = "mlp2x_gelu"
        if hidden_act == "linear":
            raise ModelError(
                f"{where}: an mlp2x_gelu projector cannot merge into a checkpoint whose projector_hidden_act "
                "is 'linear' (the GELU between the layers would be dropped)"
            )
        mapped = {f"{prefix}{_MLP_LAYERS[str(i)]}.{param}": value for (i, param), value in parsed.items()}
    else:
        raise ModelError(
            f"{where}: mm_projector layers {sorted(str(i) for i in indices)} are not a linear or mlp2x_gelu "
            "projector (LLaVA's deeper mlpNx_gelu projectors have no transformers LLaVA equivalent)"
        )
    extra = sorted(set(mapped) - set(base))
    if extra:
        raise ModelError(f"{where}: the checkpoint has no tensor(s) {extra} (a projector without bias?)")
    if kind == "linear":
        mapped.update(_identity(prefix + "linear_2.", base))
    missing = sorted(n for n in base if n.startswith(prefix) and n not in mapped)
    if missing:
        raise ModelError(f"{where}: does not cover the checkpoint's projector tensor(s) {missing}")
    for name, value in mapped.items():
        if tuple(value.shape) != tuple(base[name]):
            raise ModelError(
                f"{where}: tensor {name}: shape {tuple(value.shape)} vs {tuple(base[name])} in the checkpoint; "
                "the projector was trained for another vision tower or LM size"
            )
    return mapped, kind


def _identity(prefix: str, base: dict[str, tuple[int, ...]]) -> dict[str, torch.Tensor]:
    """``linear_2`` as the identity: eye weight (it must be square) and zero bias, in the base's shapes."""
    out: dict[str, torch.Tensor] = {}
    weight, bias = prefix + "weight", prefix + "bias"
    if weight in base:
        shape = tuple(base[weight])
        if len(shape) != 2 or shape[0] != shape[1]:
            raise ModelError(f"tensor {weight}: shape {shape} is not square; linear_2 cannot be the identity")
        out[weight] = torch.eye(shape[0])
    if bias in base:
        out[bias] = torch.zeros(tuple(base[bias]))
    return out


def merge_projector_bin(
    base: str | os.PathLike[str],
    projector: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    revision: str | None = None,
) -> dict[str, Any]:
    """Copy LLaVA checkpoint ``base`` to ``out`` with its projector replaced by ``projector`` (an ``mm_projector.bin``).

    ``base``: a checkpoint directory, a ``vlmscope-ref.json`` pin or a cached
    hub id (at ``revision``). Every other tensor is copied unchanged (shards
    without projector tensors byte for byte). Returns ``merge_info.json``'s
    content: base, projector file, its kind and the replaced tensor names.
    """
    check_out(out, "model", [base, projector])
    base_dir, revision = resolve_model_dir(base, revision=revision)
    src = Path(projector)
    state = read_projector_bin(src)
    config = read_json_object(base_dir / "config.json", ModelError)
    hidden_act = str(config.get("projector_hidden_act", "gelu"))
    mapped, kind = map_projector(state, tensor_shapes(base_dir), hidden_act, where=str(src))
    source = {
        "base": str(base), **merged_revision(revision),
        "projector": str(src), "projector_kind": kind, "replaced": sorted(mapped),
    }  # fmt: skip
    return write_merged(out, source, lambda tmp: {"shards": replace_tensors(base_dir, tmp, mapped)})
