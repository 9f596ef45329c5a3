"""The exercise library in more than one language (see docs/exercise-library.md).

A library step is written in English. Each step may also carry a translation of what the phones
and the projector show; the facilitator's script and the exercise's notes stay in English. The
loader keeps the translations inside each stored step, under TRANSLATIONS_KEY:

    {"kind": "scale", "prompt": "How connected...", ..., "translations": {"es": {"prompt": ...}}}

`localized_steps` turns such steps into plain Activity field values in one language, ready for
`Session.add_steps`.
"""

from __future__ import annotations

from typing import Any

# The language the library is written in, and the ones it may be translated into.
SOURCE_LANGUAGE = "en"
LANGUAGES = ("es",)
TRANSLATIONS_KEY = "translations"

# The Activity fields participants see (on their phones or on the projector), which a
# translation may give. Everything else of a step (kind, numbers, script, timing) is shared.
TRANSLATABLE_FIELDS = (
    "prompt",
    "body",
    "options",
    "scale_min_label",
    "scale_max_label",
    "roles",
)
# Answers are stored as indexes into these, so a translation keeps their length and order.
LIST_FIELDS = ("options", "roles")


def localized_step(step: dict[str, Any], language: str) -> dict[str, Any]:
    """One stored step as Activity field values in `language`, without its translations.

    English, field by field, wherever the step has no translation into that language.
    """
    english = {name: value for name, value in step.items() if name != TRANSLATIONS_KEY}
    if language == SOURCE_LANGUAGE:
        return english
    translation = (step.get(TRANSLATIONS_KEY) or {}).get(language) or {}
    localized = dict(english)
    for name in TRANSLATABLE_FIELDS:
        value = translation.get(name)
        if not value:
            continue
        if name in LIST_FIELDS and len(value) != len(english.get(name) or []):
            continue  # never shift what an answer's index means
        localized[name] = value
    return localized


def localized_steps(steps: list[dict[str, Any]], language: str) -> list[dict[str, Any]]:
    """Steps of an Exercise or a Plan, in `language`, ready for `Session.add_steps`."""
    return [localized_step(step, language) for step in steps]
