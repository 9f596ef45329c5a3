"""Reading and validating the exercise library's data files (see docs/exercise-library.md).

Each error names the file and the field, so a library author can fix it without reading code.
A step is validated by the same ActivityForm a facilitator uses, so both follow one set of rules,
and so is each translation of a step (see translations.py): the step as participants would see it
in that language.
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..forms import ActivityForm
from ..models import DEFAULT_FEELINGS, PLACEHOLDER, Activity
from .translations import LANGUAGES, LIST_FIELDS, TRANSLATABLE_FIELDS, TRANSLATIONS_KEY

HERE = Path(__file__).parent
LIBRARY_DIR = HERE / "library"
PLANS_DIR = HERE / "plans"
SLUG = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")

# TOML names that differ from the activity's field names.
RENAMED = {"text": "body", "private": "private_results"}
_TOML_NAME = {field: key for key, field in RENAMED.items()}
# What only a library step holds, not the facilitator's form (whose planned time is its own
# field, planned_minutes); the time is given in minutes.
LIBRARY_KEYS = {"minutes", "measure", "recap"}
# What a step in a file may hold: the activity's step fields, in the file's words (the source
# is set by the loader).
STEP_KEYS = {
    _TOML_NAME.get(name, name)
    for name in Activity.STEP_FIELDS
    if name not in Activity.LIBRARY_ONLY_FIELDS
} | LIBRARY_KEYS
# What a step's translation (a sub-table such as [steps.es]) may hold, in the file's words.
TRANSLATABLE_KEYS = tuple(_TOML_NAME.get(name, name) for name in TRANSLATABLE_FIELDS)


class LibraryError(Exception):
    """Everything wrong with the library files, one problem a line."""


@dataclass
class Problems:
    path: Path
    messages: list[str] = field(default_factory=list)

    def add(self, where: str, message: str) -> None:
        self.messages.append(f"{self.path.name}: {where}: {message}")


def read_toml(path: Path, problems: Problems) -> dict[str, Any]:
    try:
        with path.open("rb") as file:
            return tomllib.load(file)
    except tomllib.TOMLDecodeError as error:
        problems.add("file", f"not valid TOML ({error})")
        return {}


def _check_header(
    data: dict[str, Any], problems: Problems, required: dict[str, type], *, longest_minutes: int
) -> None:
    for key, kind in required.items():
        value = data.get(key)
        if value is None:
            problems.add(key, "missing")
        elif not isinstance(value, kind) or isinstance(value, bool) or value in ("", []):
            problems.add(key, f"must be a non-empty {kind.__name__}")
    for key in set(data) - set(required):
        problems.add(key, "unknown field")
    slug = data.get("slug")
    if isinstance(slug, str):
        if not SLUG.match(slug):
            problems.add("slug", "use a-z, 0-9 and dashes only")
        if slug != problems.path.stem:
            problems.add("slug", f"must equal the file name ({problems.path.stem})")
    if isinstance(data.get("version"), int) and data["version"] < 1:
        problems.add("version", "must be 1 or more")
    minutes = data.get("duration_minutes")
    if isinstance(minutes, int) and not 1 <= minutes <= longest_minutes:
        problems.add("duration_minutes", f"must be from 1 to {longest_minutes}")
    for key in ("safety", "sources", "exercises"):
        if isinstance(data.get(key), list) and not all(
            isinstance(item, str) and item.strip() for item in data[key]
        ):
            problems.add(key, "must be a list of non-empty texts")


EXERCISE_FIELDS = {
    "slug": str,
    "version": int,
    "title": str,
    "purpose": str,
    "duration_minutes": int,
    "audience": str,
    "safety": list,
    "sources": list,
    "steps": list,
}


def read_exercise(path: Path) -> tuple[dict[str, Any], list[str]]:
    """The exercise as Exercise field values, and the problems found (none when it is valid)."""
    problems = Problems(path)
    data = read_toml(path, problems)
    if not data:
        return {}, problems.messages
    _check_header(data, problems, EXERCISE_FIELDS, longest_minutes=90)
    steps = [
        step_fields(step, f"steps[{index}]", problems)
        for index, step in enumerate(data.get("steps") or [], start=1)
    ]
    _check_every_step_translated(data.get("steps"), problems)
    _check_recaps(steps, problems)
    _check_prompts_differ(steps, problems)
    # The hash of what the file says, not of the cleaned steps: a newer Attune that cleans
    # steps differently must not take an unchanged file for a changed one.
    digest = hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()
    return {**data, "steps": steps, "content_hash": digest}, problems.messages


def _check_every_step_translated(steps: Any, problems: Problems) -> None:
    """A language an exercise is translated into covers all its steps: no mixed screens."""
    if not isinstance(steps, list):
        return
    tables = [step for step in steps if isinstance(step, dict)]
    for language in LANGUAGES:
        if any(language in step for step in tables):
            for index, step in enumerate(steps, start=1):
                if isinstance(step, dict) and language not in step:
                    problems.add(
                        f"steps[{index}]",
                        f"no [steps.{language}] translation, but other steps of this exercise "
                        "have one: translate every step, or none",
                    )


def _check_recaps(steps: list[dict[str, Any]], problems: Problems) -> None:
    """A recap shows the results of the questions before it: there must be one."""
    for index, step in enumerate(steps, start=1):
        if step.get("recap") and not any(
            earlier.get("kind") not in Activity.STEP_KINDS and not earlier.get("private_results")
            for earlier in steps[: index - 1]
        ):
            problems.add(
                f"steps[{index}].recap",
                "no question before this step whose results the room may see again",
            )


def _check_prompts_differ(steps: list[dict[str, Any]], problems: Problems) -> None:
    """Each step has a prompt of its own, in every language: on an agenda that holds the
    exercise twice, a prompt seen again is where the copy before ends (for a recap and a
    group profile, Activity._earlier_in_exercise)."""
    for language in ("en", *LANGUAGES):
        first_at: dict[str, int] = {}
        for index, step in enumerate(steps, start=1):
            prompt = step.get(TRANSLATIONS_KEY, {}).get(language, {}).get("prompt")
            prompt = prompt or step.get("prompt")
            if not prompt:
                continue
            if prompt in first_at:
                in_language = "" if language == "en" else f" (in {language})"
                problems.add(
                    f"steps[{index}].prompt",
                    f"the same as steps[{first_at[prompt]}]'s{in_language}: "
                    "give each step a prompt of its own",
                )
            first_at.setdefault(prompt, index)


def step_fields(step: Any, where: str, problems: Problems) -> dict[str, Any]:
    """One library step as Activity field values, validated by the facilitator's ActivityForm.

    Its translations, validated too, come under TRANSLATIONS_KEY: {language: {field: value}}.
    """
    if not isinstance(step, dict):
        problems.add(where, "must be a table")
        return {}
    translations = {}
    for key in sorted(set(step) - STEP_KEYS):
        if key in LANGUAGES:
            translations[key] = step[key]
        elif isinstance(step[key], dict):
            problems.add(
                f"{where}.{key}",
                f"not a language of the library; translations may be in {', '.join(LANGUAGES)}",
            )
        else:
            problems.add(f"{where}.{key}", "unknown field")
    kind = step.get("kind")
    if kind not in Activity.Kind.values:
        problems.add(f"{where}.kind", f"must be one of {', '.join(Activity.Kind.values)}")
        return {}
    if not isinstance(step.get("script"), str) or not step["script"].strip():
        problems.add(f"{where}.script", "missing: what the facilitator says and does")
    minutes = step.get("minutes")
    if (
        isinstance(minutes, bool)
        or not isinstance(minutes, int | float)
        or not 0.5 <= minutes <= 60
    ):
        problems.add(f"{where}.minutes", "must be a number from 0.5 to 60")
        minutes = 0
    measure = step.get("measure", "")
    if measure and (not isinstance(measure, str) or not SLUG.match(measure)):
        problems.add(f"{where}.measure", "use a-z, 0-9 and dashes only")
    recap = step.get("recap", False)
    if not isinstance(recap, bool):
        problems.add(f"{where}.recap", "must be true or false")
    elif recap and kind not in Activity.STEP_KINDS:
        problems.add(f"{where}.recap", "only a step that is led, not answered, can be a recap")

    data = {RENAMED.get(key, key): value for key, value in step.items() if key in STEP_KEYS}
    for key in LIST_FIELDS:
        if isinstance(data.get(key), list) and not all(isinstance(item, str) for item in data[key]):
            problems.add(f"{where}.{key}", "must be a list of texts")
    if kind == Activity.Kind.EMOTION and "options" not in data:
        data["options"] = list(DEFAULT_FEELINGS)
    cleaned = _validated(data, kind, where, problems)
    if cleaned is None:
        return {}
    fields = {
        **cleaned,
        "kind": kind,
        "suggested_seconds": round(minutes * 60),
        "measure": measure or "",
        "recap": recap is True,
    }
    found = {}
    for language, table in translations.items():
        translated = translation_fields(table, data, cleaned, kind, f"{where}.{language}", problems)
        if translated:
            found[language] = translated
    if found:
        fields[TRANSLATIONS_KEY] = found
    return fields


def _validated(
    data: dict[str, Any], kind: str, where: str, problems: Problems
) -> dict[str, Any] | None:
    """A step (Activity field names) as the ActivityForm cleans it, or None when it is invalid."""
    data = {
        key: "\n".join(str(item) for item in value)
        if key in LIST_FIELDS and isinstance(value, list)
        else value
        for key, value in data.items()
    }
    if data.get("private_results") is False:
        del data["private_results"]  # an unticked checkbox is simply absent from a form
    form = ActivityForm(data=data, kind=kind)
    if not form.is_valid():
        for name, errors in form.errors.items():
            for error in errors:
                problems.add(f"{where}.{_toml_name(name)}", error)
        return None
    for name in set(data) - set(form.fields) - LIBRARY_KEYS:
        problems.add(f"{where}.{_toml_name(name)}", f"not used by a {kind} step")
    # A library step's planned time is its `minutes`, read with the other library-only keys.
    return {name: value for name, value in form.cleaned_data.items() if name != "planned_minutes"}


def translation_fields(
    table: Any,
    data: dict[str, Any],
    english: dict[str, Any],
    kind: str,
    where: str,
    problems: Problems,
) -> dict[str, Any]:
    """A step's translation (e.g. [steps.es]) as Activity field values; {} when it is faulty.

    `data` is the English step as given to the form, `english` as the form cleaned it. A
    translation gives every participant-facing field the English step has, and nothing else:
    lists of the same length (answers are stored as option indexes), the same [placeholders].
    The step in that language must then pass the ActivityForm like the English one.
    """
    if not isinstance(table, dict):
        problems.add(where, "must be a table of translated fields")
        return {}
    before = len(problems.messages)
    for key in sorted(table):
        name = RENAMED.get(key, key)
        value = table[key]
        if key not in TRANSLATABLE_KEYS:
            if key in STEP_KEYS:
                problems.add(
                    f"{where}.{key}",
                    "not translated: participants never see it (a translation may give "
                    f"{', '.join(TRANSLATABLE_KEYS)})",
                )
            else:
                problems.add(f"{where}.{key}", "unknown field")
        elif not english.get(name):
            problems.add(f"{where}.{key}", "the English step has none, so nothing to translate")
        elif name in LIST_FIELDS:
            if not isinstance(value, list) or not all(
                isinstance(item, str) and item.strip() for item in value
            ):
                problems.add(f"{where}.{key}", "must be a list of non-empty texts")
            elif len(value) != len(english[name]):
                problems.add(
                    f"{where}.{key}",
                    f"{len(value)} items, but the English step has {len(english[name])}: "
                    "translate each one, in the same order",
                )
            else:
                _check_placeholders(value, english[name], f"{where}.{key}", problems)
        elif not isinstance(value, str) or not value.strip():
            problems.add(f"{where}.{key}", "must be a non-empty text")
        else:
            _check_placeholders([value], [english[name]], f"{where}.{key}", problems)
    for name, key in zip(TRANSLATABLE_FIELDS, TRANSLATABLE_KEYS, strict=True):
        if english.get(name) and key not in table:
            problems.add(f"{where}.{key}", "missing: the English step has it")
    if len(problems.messages) > before:
        return {}
    translated = _validated(
        {**data, **{RENAMED.get(key, key): value for key, value in table.items()}},
        kind,
        where,
        problems,
    )
    if translated is None:
        return {}
    fields = {name: translated[name] for name in TRANSLATABLE_FIELDS if english.get(name)}
    for name in LIST_FIELDS:
        if name in fields and len(fields[name]) != len(english[name]):
            problems.add(f"{where}.{_toml_name(name)}", "one item per entry, without line breaks")
            return {}
    return fields


def _check_placeholders(
    texts: list[str], english: list[str], where: str, problems: Problems
) -> None:
    """The facilitator fills in [placeholders] before the session: they stay as they are."""
    for position, (text, original) in enumerate(zip(texts, english, strict=True), start=1):
        wanted = sorted(PLACEHOLDER.findall(original))
        if sorted(PLACEHOLDER.findall(text)) != wanted:
            at = f" (item {position})" if len(texts) > 1 else ""
            problems.add(
                where,
                f"keep the English [placeholders]{at} exactly as they are: "
                f"{', '.join(wanted) or 'none'}",
            )


def _toml_name(name: str) -> str:
    return _TOML_NAME.get(name, name)


PLAN_FIELDS = {
    "slug": str,
    "version": int,
    "title": str,
    "duration_minutes": int,
    "description": str,
    "exercises": list,
}


def read_plan(path: Path) -> tuple[dict[str, Any], list[str]]:
    problems = Problems(path)
    data = read_toml(path, problems)
    if data:
        _check_header(data, problems, PLAN_FIELDS, longest_minutes=180)
    return data, problems.messages
