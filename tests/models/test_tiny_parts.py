"""The shared tiny-builder parts: sizes, seeding, generation ids and variant registration.

Every family's tiny builder goes through these, so a slip here would change
all tiny checkpoints at once; the conformance suite only sees the result.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from vlmscope.models import tiny_parts
from vlmscope.registry import Registry


def test_decoder_dims_names_the_sizes_transformers_reads() -> None:
    dims = tiny_parts.decoder_dims(100, kv_heads=1)
    assert dims == {
        "vocab_size": 100,
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 1,
        "max_position_embeddings": 2048,
    }


def test_tiny_lm_config_takes_vocabulary_and_special_ids_from_the_tokenizer() -> None:
    class Tok:
        pad_token_id, bos_token_id, eos_token_id = 3, None, 5

        def __len__(self) -> int:
            return 77

    cfg = tiny_parts.tiny_lm_config("qwen2", Tok(), hidden=64, heads=8)
    assert (cfg.vocab_size, cfg.hidden_size, cfg.num_attention_heads) == (77, 64, 8)
    assert (cfg.pad_token_id, cfg.bos_token_id, cfg.eos_token_id) == (3, None, 5)
    assert cfg.sliding_window is None and cfg.tie_word_embeddings is False


class _Model(torch.nn.Module):
    def __init__(self, config: Any) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(config, config)
        self.generation_config = SimpleNamespace(pad_token_id=None, eos_token_id=None, bos_token_id=None)


def test_init_generative_is_seeded_and_sets_the_generation_ids() -> None:
    tok = SimpleNamespace(pad_token_id=0, eos_token_id=2, bos_token_id=1)
    a = tiny_parts.init_generative(_Model, 4, tok, seed=7)
    b = tiny_parts.init_generative(_Model, 4, tok, seed=7)
    c = tiny_parts.init_generative(_Model, 4, tok, seed=8)
    assert torch.equal(a.linear.weight, b.linear.weight)
    assert not torch.equal(a.linear.weight, c.linear.weight)
    gc = a.generation_config
    assert (gc.pad_token_id, gc.eos_token_id, gc.bos_token_id) == (0, 2, 1)


def test_register_variants_registers_one_builder_per_build_name(monkeypatch: pytest.MonkeyPatch) -> None:
    table: Registry[Any] = Registry("tiny model family")
    monkeypatch.setattr(tiny_parts, "TINY", table)
    calls: list[tuple[Path, int, str]] = []

    def build(out: Path, seed: int, *, lm: str) -> None:
        calls.append((out, seed, lm))

    tiny_parts.register_variants(build, "lm", {"fam": "llama", "fam-mistral": "mistral"})
    assert table.names() == ["fam", "fam-mistral"]
    table.get("fam-mistral")(Path("x"), 3)
    table.get("fam")(Path("y"), 0)
    assert calls == [(Path("x"), 3, "mistral"), (Path("y"), 0, "llama")]
