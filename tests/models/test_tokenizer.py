"""The offline tokenizer: deterministic, answers are single tokens, any text round-trips."""

from __future__ import annotations

import pytest

from vlmscope.errors import ConfigError
from vlmscope.models.tokenizer import ANSWER_WORDS, answer_token_problems, build_tokenizer


@pytest.fixture(scope="module")
def tok():
    return build_tokenizer(["<image>", "<|im_start|>"])


def test_same_inputs_give_the_same_vocabulary_and_merges() -> None:
    a, b = build_tokenizer(["<image>"]), build_tokenizer(["<image>"])
    assert a.backend_tokenizer.to_str() == b.backend_tokenizer.to_str()
    assert 300 < len(a) <= 1024


def test_special_tokens_take_the_lowest_ids_in_order(tok) -> None:
    assert [tok.pad_token_id, tok.bos_token_id, tok.eos_token_id] == [0, 1, 2]
    assert tok.convert_tokens_to_ids(["<image>", "<|im_start|>"]) == [3, 4]
    ids = tok("a <image> b")["input_ids"]
    assert ids[0] == tok.bos_token_id and 3 in ids
    assert tok.padding_side == "left"


@pytest.mark.parametrize("word", ["left", "right", "above", "below", "red", "magenta", "star", "pentagon",
                                  "0", "9", "10", "17", "20", "A", "H", "yes", "No", "seven"])  # fmt: skip
def test_answer_words_are_single_tokens_with_and_without_space(tok, word: str) -> None:
    assert len(tok(word, add_special_tokens=False)["input_ids"]) == 1
    assert len(tok(" " + word, add_special_tokens=False)["input_ids"]) == 1


def test_every_listed_answer_word_is_one_token(tok) -> None:
    assert answer_token_problems(tok, ANSWER_WORDS) == []


def test_numbers_are_not_split_into_digits_that_collide(tok) -> None:
    ten = tok(" 10", add_special_tokens=False)["input_ids"]
    one = tok(" 1", add_special_tokens=False)["input_ids"]
    assert ten != one and len(ten) == 1


@pytest.mark.parametrize("text", ["héllo wörld ✓ 123", "What is the zebra's colour?\n\tTabs", "日本語"])
def test_any_text_round_trips(tok, text: str) -> None:
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert tok.decode(ids) == text


def test_extra_words_are_learned_and_checked() -> None:
    t = build_tokenizer(extra_words=("giraffe",))
    assert len(t(" giraffe", add_special_tokens=False)["input_ids"]) == 1


def test_bad_arguments_are_refused_with_the_fix() -> None:
    with pytest.raises(ConfigError, match="vocab_size must be at least"):
        build_tokenizer(vocab_size=100)
    with pytest.raises(ConfigError, match="raise vocab_size"):
        build_tokenizer(vocab_size=400)
    with pytest.raises(ConfigError, match="bos token"):
        build_tokenizer(bos_token="</s>")
