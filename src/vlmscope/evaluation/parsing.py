"""Turn a model's raw text into an answer, exactly and predictably.

The original studies scored by substring match ("10" counted as "1", "blue"
matched "blueish"). Every parser here works on whole words and documents each
rule; ``tests/evaluation/test_parsing.py`` pins them with a table of tricky
outputs. All functions are pure and never raise on model output.

Rules of :func:`parse_choice` (``text`` against ``options``, K option texts):

1. Normalise: case-fold, drop markdown emphasis (``*``, `````), collapse
   whitespace, then strip a leading answer phrase (``answer:``, ``the answer
   is``, ``correct option:``, ``option``, ... repeated) and surrounding quotes.
2. A *letter* counts only when it stands alone: the whole answer is one letter
   with optional brackets and one trailing ``.``, ``)`` or ``:`` (``B``,
   ``b)``, ``(B)``, ``[B]``, ``B.``), or the answer *starts* with a letter
   followed by a delimiter ``)``, ``.`` or ``:`` and more text (``B) blue``,
   ``(B) blue``, ``B. blue``). A letter followed by a space and a word
   (``A red circle``) is an article, not option A. When the text after a
   delimited letter names a *different* option exactly, the answer
   contradicts itself and parses as ``None``. Letters beyond the K options
   (``E`` with 4 options) parse as ``None``.
3. Otherwise the *option texts* are matched as whole-word phrases (word
   boundaries on both sides, case-insensitive, whitespace-insensitive): the
   whole answer equal to an option (a leading article ``a``/``an``/``the`` and
   trailing punctuation ignored) wins at once; else every option occurring
   somewhere in the text as a whole phrase is a candidate, a candidate whose
   every occurrence lies inside an occurrence of a longer candidate is
   dropped (``light blue`` beats ``blue``), and exactly one remaining
   candidate is the answer; zero or several (``red or blue``) give ``None``.
   So ``blue`` never matches option ``blueish`` and ``blueish`` never
   matches option ``blue``. Negation is not understood (``not red`` picks
   ``red``); greedy short answers rarely hedge, and guessing would be worse.
4. With ``letters=False`` (prompts listing options without letters) rule 2
   is skipped, so a stray ``A`` is not read as the first option.

Rules of :func:`parse_count`: the first run of digits anywhere (``1,000``
with thousands separators is one number; ``2.5`` gives 2; a sign is
ignored; a number beyond 2**63 - 1 is no count and gives -1), else the
first English number phrase made of whole number words (``zero`` ..
``nineteen``, the tens ``twenty`` .. ``ninety``, ``hundred``, ``thousand``,
joined by spaces, hyphens or ``and``: ``twenty-one`` = 21, ``one hundred`` =
100, ``two thousand and five`` = 2005), else ``-1``.
``none`` / ``no`` are not numbers (they give -1, as in the original study).

Rules of :func:`parse_yes_no`: the first word decides (``yes``/``yeah``/
``yep``/``true``/``correct`` -> True, ``no``/``nope``/``false``/``incorrect``
-> False); otherwise exactly one of the words ``yes`` / ``no`` appearing
whole decides; else ``None``.

:func:`normalize_open` is the canonical form open answers are compared in:
case-folded, whitespace collapsed, surrounding quotes and trailing ``.!?,;:``
removed, a leading article dropped.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from vlmscope.errors import ConfigError

__all__ = ["parse_choice", "parse_count", "parse_yes_no", "normalize_open", "letter", "parse_grade"]

_EMPHASIS = re.compile(r"[*`]{1,3}")
_WS = re.compile(r"\s+")
_LEAD = re.compile(
    r"^(?:(?:the\s+)?(?:correct\s+|final\s+|best\s+)?(?:answer|option|choice)\b(?:\s+is)?\s*[:\-]?\s*"
    r"|assistant\s*:\s*)",
)
_QUOTES = "\"'“”‘’"
_TRAIL = ".!?,;:"
_ARTICLE = re.compile(r"^(?:a|an|the)\s+")
_LONE_LETTER = re.compile(r"^[(\[]?([a-z])[)\]]?[.):]?$")
_LEAD_LETTER = re.compile(r"^(?:[(\[]([a-z])[)\]][.):]?|([a-z])[.):])\s+(.+)$")


def letter(index: int) -> str:
    """``0 -> 'A'``: the label of option ``index`` in a lettered prompt (0..25; others raise ConfigError).

    Why the check: past ``Z`` the letters run into ``[``, ``\\`` ... and a
    prompt would silently show options no reader can pick.
    """
    if not 0 <= index < 26:
        raise ConfigError(f"option index {index} has no letter (options are lettered A..Z, index 0..25)")
    return chr(ord("A") + index)


def _norm(text: str) -> str:
    t = _EMPHASIS.sub("", text.casefold())
    t = _WS.sub(" ", t).strip()
    prev = None
    while prev != t:
        prev = t
        t = _LEAD.sub("", t).strip().strip(_QUOTES).strip()
    return t


def normalize_open(text: str) -> str:
    """Canonical form of an open answer (see module docstring)."""
    t = _WS.sub(" ", text.casefold()).strip()
    prev = None
    while prev != t:
        prev = t
        t = t.strip().strip(_QUOTES).rstrip(_TRAIL).strip()
    return _ARTICLE.sub("", t)


def _phrase_pattern(option: str) -> re.Pattern[str] | None:
    words = _WS.sub(" ", option.casefold()).strip().rstrip(_TRAIL).strip()
    if not words:
        return None
    body = r"\s+".join(re.escape(w) for w in words.split(" "))
    return re.compile(rf"(?<!\w){body}(?!\w)")


def _exact_option(text: str, options: Sequence[str]) -> int | None:
    t = normalize_open(text)
    hits = [i for i, o in enumerate(options) if t and normalize_open(o) == t]
    return hits[0] if hits else None


def _phrase_option(text: str, options: Sequence[str]) -> int | None:
    spans: dict[int, list[tuple[int, int]]] = {}
    for i, opt in enumerate(options):
        pat = _phrase_pattern(opt)
        if pat is None:
            continue
        found = [m.span() for m in pat.finditer(text)]
        if found:
            spans[i] = found
    if not spans:
        return None

    def covered(i: int) -> bool:
        return all(
            any(j != i and a <= s and e <= b and (b - a) > (e - s) for j in spans for a, b in spans[j])
            for s, e in spans[i]
        )

    kept = [i for i in spans if not covered(i)]
    # Two options with the same text are one answer: report the first.
    texts = {normalize_open(options[i]) for i in kept}
    return kept[0] if len(texts) == 1 else None


def parse_choice(text: str, options: Sequence[str], *, letters: bool = True) -> int | None:
    """Index of the option ``text`` picks, or ``None`` when it picks none or several.

    ``options`` are the option texts in displayed order (option ``i`` has
    letter ``letter(i)``). ``letters=False`` is for prompts that list the
    options without letters: then only option texts count (rule 3), so a
    stray "A" is not read as the first option. See the module docstring.
    """
    if not options:
        return None
    t = _norm(text)
    if not t:
        return None
    m = _LONE_LETTER.match(t) if letters else None
    if m:
        idx = ord(m.group(1)) - ord("a")
        # A lone "a" that is also an option's text is that option either way.
        return idx if idx < len(options) else _exact_option(t, options)
    m = _LEAD_LETTER.match(t) if letters else None
    if m:
        idx = ord(m.group(1) or m.group(2)) - ord("a")
        if idx >= len(options):
            return None
        rest = _exact_option(m.group(3), options)
        if rest is not None and normalize_open(options[rest]) != normalize_open(options[idx]):
            return None
        return idx
    exact = _exact_option(t, options)
    if exact is not None:
        return exact
    return _phrase_option(t, options)


_UNITS = {
    w: i
    for i, w in enumerate(
        "zero one two three four five six seven eight nine ten eleven twelve thirteen "
        "fourteen fifteen sixteen seventeen eighteen nineteen".split()
    )
}
_TENS = {w: 10 * (i + 2) for i, w in enumerate("twenty thirty forty fifty sixty seventy eighty ninety".split())}
_SCALES = {"hundred": 100, "thousand": 1000}
_NUMBER_WORDS = {**_UNITS, **_TENS, **_SCALES}
_MAX_COUNT = 2**63 - 1  # the Int64 prediction columns' bound
_DIGITS = re.compile(r"\d{1,3}(?:,\d{3})+(?!\d)|\d+")
_WORD = re.compile(r"[a-z]+")


def _words_value(words: list[str]) -> int:
    total, current = 0, 0
    for w in words:
        if w in _UNITS:
            current += _UNITS[w]
        elif w in _TENS:
            current += _TENS[w]
        elif w == "hundred":
            current = max(current, 1) * 100
        else:  # thousand
            total += max(current, 1) * 1000
            current = 0
    return total + current


def _may_follow(prev: str, word: str) -> bool:
    """English number grammar: ``twenty one`` and ``one hundred`` join; ``one two`` does not."""
    if word in _SCALES:
        return prev not in _SCALES or _SCALES[word] > _SCALES[prev]
    if prev in _TENS:
        return word in _UNITS and 0 < _UNITS[word] < 10
    return prev in _SCALES


def parse_count(text: str) -> int:
    """The count ``text`` states, or ``-1`` (see module docstring for the rules)."""
    t = text.casefold()
    m = _DIGITS.search(t)
    if m:
        digits = m.group(0).replace(",", "").lstrip("0") or "0"
        # checked before int(): Python refuses to convert more than 4300 digits
        return int(digits) if len(digits) <= 19 and int(digits) <= _MAX_COUNT else -1
    tokens = [(w.group(0), w.start(), w.end()) for w in _WORD.finditer(t)]
    for k, (w, _s, _e) in enumerate(tokens):
        if w not in _NUMBER_WORDS:
            continue
        run = [w]
        end = _e
        for w2, s2, e2 in tokens[k + 1 :]:
            gap = t[end:s2]
            if gap.strip() not in ("", "-"):
                break
            if w2 == "and" and run[-1] in _SCALES:
                end = e2
                continue
            if w2 not in _NUMBER_WORDS or not _may_follow(run[-1], w2):
                break
            run.append(w2)
            end = e2
        return _words_value(run)
    return -1


_YES = {"yes", "yeah", "yep", "true", "correct"}
_NO = {"no", "nope", "false", "incorrect"}


def parse_yes_no(text: str) -> bool | None:
    """True for a yes, False for a no, None when the text says neither or both."""
    words = _WORD.findall(_norm(text))
    if not words:
        return None
    if words[0] in _YES:
        return True
    if words[0] in _NO:
        return False
    has_yes, has_no = "yes" in words, "no" in words
    if has_yes != has_no:
        return has_yes
    return None


# -- grades (ordinal answers: "Grade 2", "KL grade 3") ------------------------------------------------------------

_GRADE_WORD = r"(?<![a-z0-9])(?:kl(?:[\s_\-]*grades?)?|kellgren[\s_\-]*(?:and[\s_\-]*|&[\s_\-]*)?lawrence(?:[\s_\-]*grades?)?|grades?)"
_GRADE_NUM = r"(\d+(?:\.\d+)?)(?![a-z0-9]|\.\d)"
_GRADE_SEP = r"\s*(?:,\s*(?:or|and)?|/|-|–|to|or|and/or|and)\s*"
_GRADE_MENTION = re.compile(
    _GRADE_WORD + r"[\s_\-]*(?:(?:is|of|=|:)[\s_\-]*)*" + _GRADE_NUM + rf"((?:{_GRADE_SEP}\d+(?:\.\d+)?(?![a-z0-9]|\.\d))*)"
)
_GRADE_LIST_NUM = re.compile(r"\d+(?:\.\d+)?")
_BARE_GRADE = re.compile(r"^\d+$")


def _grade_value(number: str) -> int | None:
    """A whole number within the Int64 range; a decimal (``2.5``) or an overflow is no grade."""
    if "." in number:
        return None
    digits = number.lstrip("0") or "0"
    return int(digits) if len(digits) <= 19 and int(digits) <= _MAX_COUNT else None


def parse_grade(text: str) -> int | None:
    """The ordinal grade ``text`` states, or ``None`` when it states none or several.

    Rules (ordinal answers like the medical study's KL grades):

    1. Normalise as :func:`parse_choice` does (case-fold, markdown emphasis
       dropped, a leading ``answer:`` / ``the answer is`` phrase stripped).
    2. A *grade mention* is a grade word (``grade``/``grades``, ``kl``, ``kl
       grade``, ``kellgren-lawrence grade``; whole words, so ``upgrade 2`` is
       none) followed by optional ``is``/``of``/``:``/``=``/``-``/``_`` and a
       whole number, plus any further numbers joined to it by ``,``, ``/``,
       ``-``, ``to``, ``or``, ``and`` (``grades 2 or 3`` names 2 and 3). The
       number must end there: ``Grade 10`` is 10, never 1; ``grade 2nd`` is
       no mention. Numbers elsewhere (``Grade 2 (out of 4)``) are ignored.
    3. All mentions together must name exactly one grade: ``Grade 2 ... KL
       grade 2`` is 2, ``grade 2 or grade 3`` and ``grade 2-3`` are ``None``.
       A decimal (``grade 2.5``) or a number beyond 2**63 - 1 in a mention
       makes the answer ``None``.
    4. Without any mention, the whole answer must be one bare whole number
       (``2``, ``"3."``); any other text is ``None`` (``there are 2 knees``
       states no grade).

    Negation is not understood (``not grade 3`` is 3), as in :func:`parse_choice`.
    Never raises on model output.
    """
    t = _norm(text)
    found: set[int] = set()
    any_mention = False
    for m in _GRADE_MENTION.finditer(t):
        any_mention = True
        for number in (m.group(1), *_GRADE_LIST_NUM.findall(m.group(2) or "")):
            value = _grade_value(number)
            if value is None:
                return None
            found.add(value)
    if any_mention:
        return found.pop() if len(found) == 1 else None
    bare = t.strip(_QUOTES).rstrip(_TRAIL).strip().strip(_QUOTES).strip()
    return _grade_value(bare) if _BARE_GRADE.match(bare) else None
