"""Prompt template check shared by importer (and evaluation) configs."""

from __future__ import annotations

import pytest

from vlmscope.templates import check_template, template_check


def test_a_template_with_its_placeholders_passes_unchanged() -> None:
    t = "Is {subj} {choices} of {obj}?"
    assert check_template(t, "prompt_template", ("subj", "obj"), ("choices",)) is t
    assert check_template("{subj} / {obj}", "prompt_template", ("subj", "obj"), ("choices",)) == "{subj} / {obj}"


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("How many?", r"prompt_template must contain \{label\}, got 'How many\?'"),
        ("{label} {colour}", r"prompt_template '\{label\} \{colour\}' has an unknown placeholder: 'colour'"),
        ("{label} {0}", r"has an unknown placeholder: Replacement index 0 out of range"),
        ("{label} {label:d}", r"has an unknown placeholder: Unknown format code 'd'"),
        ("{label} {", r"has an unknown placeholder: Single '\{' encountered"),
    ],
)
def test_missing_or_unknown_placeholders_are_named(template: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check_template(template, "prompt_template", ("label",))


def test_template_check_names_the_config_field_it_guards() -> None:
    from typing import Annotated

    from pydantic import BaseModel, ValidationError

    class Cfg(BaseModel):
        contrastive_template: Annotated[str, template_check("option")] = "Answer: {option}"

    assert Cfg().contrastive_template == "Answer: {option}"
    with pytest.raises(ValidationError, match=r"contrastive_template must contain \{option\}"):
        Cfg(contrastive_template="Answer:")
