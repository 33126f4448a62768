"""The few tensors a CPU lens needs, read straight from a checkpoint's safetensors files.

A logit lens needs the final norm and the unembedding; the FFN analysis the
MLP down projections. Instantiating a 7B model for that would read 14 GB and
take minutes, so :class:`LensModel` opens the safetensors files lazily
(``safe_open``; a sharded checkpoint through ``model.safetensors.index.json``)
and reads one named tensor at a time. Which names to read comes from the
family adapter's ``tensor_names(config)`` (``vlmscope.models``), so no family
is special-cased here.

Shapes: D hidden size, V vocabulary, F FFN width.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vlmscope.errors import ModelError, NotFound
from vlmscope.models.adapter import TensorNames, text_config
from vlmscope.models.ref import resolve_model_dir

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = ["FinalNorm", "LensModel", "SafetensorsReader", "resolve_model_dir", "open_lens_model"]

INDEX_FILE = "model.safetensors.index.json"


class SafetensorsReader:
    """Reads single tensors by name from a directory's ``*.safetensors`` files (sharded or not)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._where = self._map(directory)
        self._files: dict[str, Any] = {}

    @staticmethod
    def _map(directory: Path) -> dict[str, Path]:
        from safetensors import safe_open

        from vlmscope.io.tensorfile import check_safetensors_dir

        check_safetensors_dir(directory)  # truncated/corrupt shards: one line naming the file
        index = directory / INDEX_FILE
        if index.is_file():
            try:
                weight_map = json.loads(index.read_text())["weight_map"]
            except (json.JSONDecodeError, KeyError, TypeError) as e:
                raise ModelError(f"{index}: not a safetensors index (no 'weight_map': {e})") from e
            return {str(k): directory / str(v) for k, v in weight_map.items()}
        files = sorted(directory.glob("*.safetensors"))
        if not files:
            others = sorted(p.name for p in directory.iterdir() if p.suffix in (".bin", ".pt", ".pth", ".gguf"))
            hint = f" (found {', '.join(others)}: re-save the checkpoint with safetensors)" if others else ""
            raise NotFound(f"{directory}: no *.safetensors weight files{hint}")
        where: dict[str, Path] = {}
        for f in files:
            with safe_open(str(f), framework="pt") as fh:
                for k in fh.keys():
                    where[k] = f
        return where

    def _handle(self, name: str) -> Any:
        from safetensors import safe_open

        if name not in self._where:
            raise ModelError(
                f"{self.directory}: tensor {name!r} is in none of its safetensors files "
                f"({len(self._where)} tensors); is this the checkpoint the store was extracted with?"
            )
        path = self._where[name]
        if not path.is_file():
            raise NotFound(f"{path}: safetensors shard listed in {INDEX_FILE} is missing")
        if path not in self._files:
            self._files[path] = safe_open(str(path), framework="pt")
        return self._files[path]

    def shape(self, name: str) -> tuple[int, ...]:
        """Shape of ``name`` without reading its values."""
        return tuple(int(s) for s in self._handle(name).get_slice(name).get_shape())

    def read(self, name: str) -> torch.Tensor:
        """Tensor ``name`` as float32 (bf16/fp16 checkpoints are upcast for CPU math)."""
        import torch

        return self._handle(name).get_tensor(name).to(torch.float32)


@dataclass(frozen=True)
class FinalNorm:
    """The LM's final norm as data: ``kind`` is ``rms``, ``rms_plus_one`` (Gemma) or ``layer``."""

    weight: Any
    """(D,) float32 tensor."""
    bias: Any | None
    """(D,) float32 tensor, LayerNorm only."""
    kind: str
    eps: float


@dataclass
class LensModel:
    """A checkpoint opened for the lens: config facts plus lazy tensor reads (nothing loaded up front)."""

    directory: Path
    source: str
    """The model as the user gave it (recorded in outputs)."""
    family: str
    names: TensorNames
    config: Any
    """The transformers config (``AutoConfig``) of the checkpoint."""
    reader: SafetensorsReader
    revision: str | None = None
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def text_config(self) -> Any:
        return text_config(self.config)

    @property
    def hidden_size(self) -> int:
        """D, from the unembedding's shape (what the lens multiplies with)."""
        return int(self.reader.shape(self.names.unembedding_weight)[1])

    @property
    def vocab_size(self) -> int:
        return int(self.reader.shape(self.names.unembedding_weight)[0])

    @property
    def num_layers(self) -> int:
        """L decoder blocks, from the config."""
        return int(self.text_config.num_hidden_layers)

    def ffn_size(self, block: int) -> int:
        """F of decoder block ``block`` (the down projection's input width)."""
        return int(self.reader.shape(self.down_proj_name(block))[1])

    def down_proj_name(self, block: int) -> str:
        return self.names.down_proj_weight.format(layer=block)

    def final_norm(self) -> FinalNorm:
        if "norm" not in self._cache:
            n = self.names
            bias = self.reader.read(n.final_norm_bias) if n.final_norm_bias else None
            self._cache["norm"] = FinalNorm(self.reader.read(n.final_norm_weight), bias, n.norm_kind, n.norm_eps)
        return self._cache["norm"]  # type: ignore[no-any-return]

    def unembedding(self) -> torch.Tensor:
        """(V, D) float32 unembedding matrix (read once, then cached)."""
        if "unembed" not in self._cache:
            self._cache["unembed"] = self.reader.read(self.names.unembedding_weight)
        return self._cache["unembed"]  # type: ignore[no-any-return]

    def down_proj(self, block: int) -> torch.Tensor:
        """(D, F) float32 down projection of decoder block ``block``; column j is neuron j's value vector."""
        if not 0 <= block < self.num_layers:
            raise ModelError(f"{self.source}: decoder block {block} out of range (model has {self.num_layers})")
        return self.reader.read(self.down_proj_name(block))


def open_lens_model(
    model: str | os.PathLike[str], *, family: str | None = None, revision: str | None = None
) -> LensModel:
    """Open ``model`` (checkpoint dir, pin dir or cached hub id) for the lens without loading its weights.

    ``revision`` picks the snapshot of a cached hub id (see :func:`resolve_model_dir`).

    Raises:
        NotFound: no such directory / no safetensors files.
        ModelError: a family without an LM head (CLIP, SigLIP), an unreadable config, a hub id not cached.
    """
    from transformers import AutoConfig

    from vlmscope.models import ADAPTERS, detect_family

    directory, revision = resolve_model_dir(model, revision=revision)
    fam = family or detect_family(directory)
    cls = ADAPTERS.get(fam)
    if not cls.is_generator:
        raise ModelError(
            f"{model}: family {fam!r} has no language-model head (contrastive model); "
            "the logit lens and FFN analysis need a generative VLM"
        )
    try:
        config = AutoConfig.from_pretrained(str(directory))
    except (OSError, ValueError) as e:
        raise ModelError(f"{directory}: cannot read the transformers config ({e})") from e
    names = cls.tensor_names(config)  # type: ignore[union-attr]
    return LensModel(
        directory=directory,
        source=str(model),
        family=fam,
        names=names,
        config=config,
        reader=SafetensorsReader(directory),
        revision=revision,
    )
