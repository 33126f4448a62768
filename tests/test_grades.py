"""``grade_of_name``: a class name is a grade only when it is a grade word and a whole number, nothing else."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vlmscope.grades import grade_of_name


@pytest.mark.parametrize(
    "name,expected",
    [
        ("0", 0), ("02", 2), ("10", 10), (" 3 ", 3),
        ("grade_2", 2), ("Grade 2", 2), ("GRADE-4", 4), ("Grade 10", 10),
        ("KL2", 2), ("KL 2", 2), ("kl_grade_3", 3), ("KL-grade: 2", 2), ("Kellgren-Lawrence grade 4", 4),
        # not grades
        ("2_mild", None), ("grade 2 or 3", None), ("Normal", None), ("", None), ("grade", None),
        ("grades 2", None), ("x2", None), ("-1", None), ("2.5", None), ("٣", None), ("9" * 19, None),
    ],
)  # fmt: skip
def test_grade_of_name(name: str, expected: int | None) -> None:
    assert grade_of_name(name) == expected


@given(grade=st.integers(0, 10**18 - 1), prefix=st.sampled_from(["", "grade_", "Grade ", "KL", "KL ", "kl_grade_"]))
def test_a_grade_name_round_trips(grade: int, prefix: str) -> None:
    assert grade_of_name(f"{prefix}{grade}") == grade
