"""Which class names are grades: one rule for the importers and the trainers.

An ordinal class set (the medical study's KL grades 0-4) arrives as names:
folder names (``2``, ``grade_2``, ``KL 2``) or answers (``Grade 2``). The
class-folders importer decides from them whether rows are graded, and
``train clip`` orders classes and measures MAE by them; both must read a name
the same way. A name is a grade only when it is *nothing but* an optional
grade word and a whole number, so ``2_mild`` or ``grade 2 or 3`` are no
grades. (Free model output is parsed by :func:`vlmscope.evaluation.parsing.parse_grade`,
which also finds a grade inside a sentence.) This module sits below
``data`` and ``evaluation`` so that neither imports the other for it.
"""

from __future__ import annotations

import re

__all__ = ["grade_of_name"]

_NAME = re.compile(
    r"(?:(?:(?:kl|kellgren[\s_\-]*(?:and[\s_\-]*|&[\s_\-]*)?lawrence)[\s_\-]*)?grade[\s_\-:]*|kl[\s_\-:]*)?([0-9]{1,18})",
    re.IGNORECASE,
)


def grade_of_name(name: str) -> int | None:
    """``2`` for ``"2"``, ``"02"``, ``"grade_2"``, ``"Grade 2"``, ``"KL2"``, ``"KL-grade: 2"``; else ``None``.

    Case and surrounding whitespace are ignored; the whole name must match.
    ASCII digits only, at most 18 of them, so every grade fits an Int64 column.
    """
    m = _NAME.fullmatch(name.strip())
    return int(m.group(1)) if m else None
