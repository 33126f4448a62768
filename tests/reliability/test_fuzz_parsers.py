"""Random strings into every parser: a result or a vlmscope error, never another exception.

The answer parsers (:mod:`vlmscope.evaluation.parsing`) read whatever a model
generates, and ``--set`` values (:func:`vlmscope.cli.options.parse_sets`)
whatever a user types; both are inputs vlmscope does not control. Hypothesis
feeds them arbitrary text (lone surrogates, control characters, digit runs
past Python's 4300-digit int limit, deep YAML nesting) and checks the
contract each documents, not just "no crash": a choice index in range, a
count that fits the Int64 prediction columns, a yes/no/None.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from vlmscope.cli.options import parse_sets
from vlmscope.errors import ConfigError, VlmscopeError
from vlmscope.evaluation.parsing import letter, normalize_open, parse_choice, parse_count, parse_yes_no

FUZZ = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
INT64_MAX = 2**63 - 1

# any code point, surrogates included (model output decoded with errors="surrogateescape" has them)
ANY_CHAR = st.characters(codec=None, categories=None)
WORDY = st.sampled_from(
    ["A", "b)", "(C)", "[d]", "E.", "answer:", "the answer is", "option", "yes", "no", "Nope", "true",
     "twenty-one", "one hundred and five", "thousand", "1,000", "2.5", "-3", "0007", "**B**", "`c`",
     "light blue", "blue", "red or blue", '"', "“", "a", "an", "the", "\n", "\t", " ", ",", ".", ":"]
)  # fmt: skip
TEXT = st.one_of(
    st.text(ANY_CHAR, max_size=60),
    st.lists(WORDY, max_size=12).map(" ".join),
    st.lists(st.one_of(WORDY, st.text(ANY_CHAR, max_size=5)), max_size=10).map("".join),
    st.integers(min_value=0, max_value=10**30).map(str),
    st.integers(min_value=1, max_value=6000).map(lambda n: "9" * n),
)
OPTIONS = st.lists(st.one_of(WORDY, st.text(ANY_CHAR, max_size=12)), min_size=0, max_size=6)


@FUZZ
@given(text=TEXT, options=OPTIONS, letters=st.booleans())
@example(text="B", options=["x"], letters=True)
@example(text="", options=["", " "], letters=False)
def test_parse_choice_returns_an_index_in_range_or_none(text: str, options: list[str], letters: bool) -> None:
    got = parse_choice(text, options, letters=letters)
    assert got is None or (isinstance(got, int) and 0 <= got < len(options))


@FUZZ
@given(text=TEXT)
@example(text="1" * 5000)  # before the fix: ValueError, Python's 4300-digit int limit
@example(text="there are 99999999999999999999 apples")  # before the fix: a count no Int64 column holds
@example(text="0" * 30 + "7")
def test_parse_count_returns_a_count_that_fits_int64_or_minus_one(text: str) -> None:
    got = parse_count(text)
    assert isinstance(got, int) and -1 <= got <= INT64_MAX


def test_parse_count_keeps_its_rules_at_the_int64_edge() -> None:
    assert parse_count(str(INT64_MAX)) == INT64_MAX
    assert parse_count(str(INT64_MAX + 1)) == -1
    assert parse_count("007 apples") == 7
    assert parse_count("1,000") == 1000


@FUZZ
@given(text=TEXT)
def test_parse_yes_no_is_true_false_or_none(text: str) -> None:
    assert parse_yes_no(text) in (True, False, None)


@FUZZ
@given(text=TEXT)
def test_normalize_open_is_stripped_and_case_blind(text: str) -> None:
    got = normalize_open(text)
    assert isinstance(got, str) and got == got.strip()
    assert normalize_open(text.casefold()) == got


@FUZZ
@given(index=st.integers(min_value=-(10**6), max_value=10**7))
def test_letter_is_a_capital_or_a_config_error(index: int) -> None:
    try:
        got = letter(index)
    except ConfigError as e:
        assert not 0 <= index < 26 and str(index) in str(e)
    else:
        assert 0 <= index < 26 and got == "ABCDEFGHIJKLMNOPQRSTUVWXYZ"[index]


KEY = st.one_of(
    st.from_regex(r"\A[a-z][a-z_\-]{0,8}(\.[a-z][a-z_]{0,8}){0,2}\Z"),
    st.text(ANY_CHAR, max_size=10),
)
YAMLISH = st.one_of(
    st.text(ANY_CHAR, max_size=30),
    st.lists(st.sampled_from(list("[]{},:'\"!&*?-|>#%@` \n0123456789aeE.+")), max_size=30).map("".join),
    st.sampled_from(["2020-13-01", "2020-02-30", "1e999", "-.inf", ".nan", "!!python/object:os.system x",
                     "!!binary x", "&a [*a]", "1:2:3", "0x1G", "0o9", "~", "[1,2", "{a: 1", "'''"]),
    st.integers(min_value=1, max_value=3000).map(lambda n: "[" * n),
    st.integers(min_value=1, max_value=3000).map(lambda n: "{a: " * n),
)  # fmt: skip


@FUZZ
@given(items=st.lists(st.one_of(st.tuples(KEY, YAMLISH).map("=".join), st.text(ANY_CHAR, max_size=20)), max_size=4))
@example(items=["counts=2020-13-01"])  # before the fix: ValueError (month must be in 1..12)
@example(items=["counts=" + "[" * 3000])  # before the fix: RecursionError
@example(items=["0\n0=", "0\n0="])  # found by this test: a key with a line break made a two-line error
def test_parse_sets_gives_a_mapping_or_a_config_error(items: list[str]) -> None:
    try:
        got = parse_sets(items)
    except VlmscopeError as e:
        assert isinstance(e, ConfigError) and "--set" in str(e) and "\n" not in str(e).strip()
    else:
        assert isinstance(got, dict)


def test_parse_sets_keeps_a_value_that_is_no_date_as_text() -> None:
    assert parse_sets(["tag=2020-13-01"]) == {"tag": "2020-13-01"}
    with pytest.raises(ConfigError, match="--set counts: value nested too deeply"):
        parse_sets(["counts=" + "[" * 3000])
