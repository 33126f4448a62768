"""The answer parsers on a table of tricky model outputs (each row pins one documented rule)."""

from __future__ import annotations

import pytest

from vlmscope.evaluation import normalize_open, parse_choice, parse_count, parse_yes_no

COLORS = ["red", "blue", "green", "yellow"]

CHOICE_TABLE = [
    # letters standing alone
    ("B", COLORS, 1),
    ("b", COLORS, 1),
    ("b)", COLORS, 1),
    ("(B)", COLORS, 1),
    ("[B]", COLORS, 1),
    ("B.", COLORS, 1),
    ("B:", COLORS, 1),
    ("**B**", COLORS, 1),
    ("Answer: B", COLORS, 1),
    ("The answer is (B).", COLORS, 1),
    ("The correct option is: C", COLORS, 2),
    ("Option D", COLORS, 3),
    (" \n a \n", COLORS, 0),
    # a delimited letter followed by text
    ("B) blue", COLORS, 1),
    ("(B) blue", COLORS, 1),
    ("B. The blue one", COLORS, 1),
    ("B) red", COLORS, None),  # letter and text disagree
    # letters out of range or not standing alone
    ("E", COLORS, None),
    ("E) red", COLORS, None),
    ("A red circle", COLORS, 0),  # "A" is an article; "red" matches as a word
    ("A red circle", ["blue square", "red circle"], 1),
    ("A dog", COLORS, None),
    ("I think B", COLORS, None),
    # option texts as whole words
    ("blue", COLORS, 1),
    ("Blue.", COLORS, 1),
    ("'blue'", COLORS, 1),
    ("the blue one", COLORS, 1),
    ("It is blue", COLORS, 1),
    ("blueish", COLORS, None),  # never a substring accident
    ("blue", ["blueish", "green"], None),
    ("blueish", ["blue", "blueish"], 1),
    ("light blue", ["blue", "light blue"], 1),  # the longer option covers the shorter
    ("blue", ["blue", "light blue"], 0),
    ("red or blue", COLORS, None),  # two options named: ambiguous
    ("not red", COLORS, 0),  # documented limit: no negation handling
    ("Left  of", ["left of", "right of", "above", "below"], 0),
    ("The circle is left of the square.", ["left of", "right of", "above", "below"], 0),
    ("leftover", ["left of", "right of"], None),
    ("", COLORS, None),
    ("B", [], None),
]


@pytest.mark.parametrize(("text", "options", "expected"), CHOICE_TABLE)
def test_parse_choice(text: str, options: list[str], expected: int | None) -> None:
    assert parse_choice(text, options) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [("B", None), ("b)", None), ("A red circle", 0), ("blue", 1), ("B) blue", 1), ("a", None)],
)
def test_parse_choice_without_letters(text: str, expected: int | None) -> None:
    assert parse_choice(text, COLORS, letters=False) == expected


COUNT_TABLE = [
    ("3", 3),
    ("10", 10),  # never 1
    ("There are 10 apples.", 10),
    ("1", 1),
    ("  007 ", 7),
    ("3 or 4", 3),
    ("three apples and 2 pears", 2),  # digits first, as the study did
    ("1,000", 1000),
    ("2,5", 2),
    ("2.5", 2),
    ("-3", 3),
    ("three", 3),
    ("Three.", 3),
    ("twenty", 20),
    ("twenty-one", 21),
    ("twenty one", 21),
    ("twenty ten", 20),  # a ten follows only a unit 1..9: "ten" starts another number
    ("thirty zero", 30),
    ("nineteen", 19),
    ("one hundred", 100),  # not 1
    ("a hundred", 100),
    ("two thousand and five", 2005),
    ("five hundred and twelve", 512),
    ("one, two, three", 1),
    ("one two three", 1),
    ("someone", -1),  # whole words only
    ("often", -1),
    ("none", -1),
    ("no apples", -1),
    ("", -1),
    ("many", -1),
]


@pytest.mark.parametrize(("text", "expected"), COUNT_TABLE)
def test_parse_count(text: str, expected: int) -> None:
    assert parse_count(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Yes", True),
        ("yes.", True),
        ("Yeah, it is", True),
        ("No", False),
        ("no, it is not", False),
        ("Answer: no", False),
        ("Nope", False),
        ("I think yes", True),
        ("It is not red", None),
        ("yes and no", True),  # the first word decides
        ("maybe yes maybe no", None),
        ("", None),
        ("know", None),
    ],
)
def test_parse_yes_no(text: str, expected: bool | None) -> None:
    assert parse_yes_no(text) is expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [("The Zebra.", "zebra"), ("  a   red  car ", "red car"), ('"Grade 2"', "grade 2"), ("zebra!?", "zebra"), ("", "")],
)
def test_normalize_open(text: str, expected: str) -> None:
    assert normalize_open(text) == expected
