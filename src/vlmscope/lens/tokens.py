"""Token ids of answers as the model would generate them, and readable token strings.

The lens target is the *first token of the answer as it follows the
generation prefix*: LLaVA's ``ASSISTANT:`` is followed by ``" left"`` (a
leading space), ChatML's ``assistant\\n`` and PaliGemma's ``\\n`` by
``"left"``. That separator rule lives in the family adapter
(``ImageTextAdapter.answer_ids``); this module asks the adapter class for it
with only the processor loaded (no weights), so the lens and training agree
on what "the answer's first token" is.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from vlmscope.errors import DatasetError, ModelError
from vlmscope.lens.weights import LensModel

__all__ = ["AnswerTokenizer", "decode_tokens", "normalise_word"]


class _ConfigOnly:
    """Stands in for the model inside a text-only adapter: prompts and answers need only its config."""

    def __init__(self, config: Any) -> None:
        self.config = config


class AnswerTokenizer:
    """The family adapter's prompt and answer tokenization, with the processor only (no weights)."""

    def __init__(self, model: LensModel) -> None:
        from vlmscope.models import ADAPTERS, LoadOptions
        from vlmscope.models.lm_adapter import load_processor

        cls = ADAPTERS.get(model.family)
        processor = load_processor(str(model.directory), LoadOptions(revision=model.revision))
        self.adapter = cls(_ConfigOnly(model.config), processor, source=model.source)  # type: ignore[arg-type]
        if not cls.is_generator:
            raise ModelError(f"family {model.family!r} generates no answers; the lens needs a generative model")

    @property
    def tokenizer(self) -> Any:
        return self.adapter.tokenizer

    def first_tokens(
        self, answers: Sequence[str], questions: Sequence[str] | None, sample_ids: Sequence[str], *, column: str
    ) -> np.ndarray:
        """(N,) int64: each answer's first token id after its prompt's generation prefix.

        Raises:
            DatasetError: an empty answer (names the sample and the column).
        """
        prompts: dict[str, str] = {}
        cache: dict[tuple[str, str], int] = {}
        fixed_sep = self.adapter.answer_prefix is not None
        out = np.empty(len(answers), dtype=np.int64)
        for i, ans in enumerate(answers):
            text = "" if ans is None else str(ans)
            if not text.strip():
                raise DatasetError(
                    f"sample {sample_ids[i]!r}: column {column!r} is empty; the lens needs a target answer "
                    f"for every sample (pick another column with --target-column / --label-column)"
                )
            q = "" if fixed_sep or questions is None else str(questions[i])
            if q not in prompts:
                prompts[q] = self.adapter.format_prompt(q)
            key = (text, q)
            if key not in cache:
                ids = self.adapter.answer_ids(text, prompts[q])
                cache[key] = int(ids[0])
            out[i] = cache[key]
        return out


def decode_tokens(tokenizer: Any, ids: Sequence[int] | np.ndarray) -> dict[int, str]:
    """``{id: text}`` for the unique ids, each decoded alone (leading spaces kept, specials shown)."""
    out: dict[int, str] = {}
    for i in np.unique(np.asarray(ids, dtype=np.int64)).tolist():
        out[int(i)] = tokenizer.decode([int(i)], skip_special_tokens=False, clean_up_tokenization_spaces=False)
    return out


def normalise_word(text: str) -> str:
    """Case-insensitive, whitespace-stripped form used to compare a token with a label word."""
    return str(text).strip().lower()
