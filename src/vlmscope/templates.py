"""The check every user-supplied prompt template goes through.

Importer and evaluation configs take ``str.format`` templates from
``params.yaml`` or ``--set``; a missing or misspelt placeholder would only
fail (or silently drop the question text) deep inside a run. This one check
fails at config validation instead, with the offending template in the
message.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import AfterValidator, ValidationInfo

__all__ = ["check_template", "template_check"]


def check_template(template: str, field: str, required: Sequence[str], optional: Sequence[str] = ()) -> str:
    """Return ``template`` if it names every ``required`` placeholder and no unknown one.

    ``field`` is the config field's name, for the message. Raises ``ValueError``
    (a pydantic ValidationError in the config).
    """
    for name in required:
        if f"{{{name}}}" not in template:
            raise ValueError(f"{field} must contain {{{name}}}, got {template!r}")
    try:
        template.format(**{name: name for name in (*required, *optional)})
    except (KeyError, IndexError, ValueError) as e:
        raise ValueError(f"{field} {template!r} has an unknown placeholder: {e}") from None
    return template


def template_check(*required: str, optional: Sequence[str] = ()) -> AfterValidator:
    """A field validator running :func:`check_template` under the field's own name.

    Use as ``prompt_template: Annotated[str, template_check("label")] = "..."``.
    """

    def check(template: str, info: ValidationInfo) -> str:
        return check_template(template, str(info.field_name), required, optional)

    return AfterValidator(check)
