"""Reading and validating the exercise library's data files (see docs/exercise-library.md).

Each error names the file and the field, so a library author can fix it without reading code.
A step is validated by the same ActivityForm a facilitator uses, so both follow one set of rules.
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
from ..models import DEFAULT_FEELINGS, Activity

HERE = Path(__file__).parent
LIBRARY_DIR = HERE / "library"
PLANS_DIR = HERE / "plans"
SLUG = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")

# TOML names that differ from the activity's field names.
RENAMED = {"text": "body", "private": "private_results"}
_TOML_NAME = {field: key for key, field in RENAMED.items()}
# What a step in a file may hold: the activity's step fields, in the file's words; the time
# is given in minutes, and the source is set by the loader.
STEP_KEYS = {
    _TOML_NAME.get(name, name)
    for name in Activity.STEP_FIELDS
    if name not in Activity.LIBRARY_ONLY_FIELDS
} | {"minutes", "measure"}


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
    # The hash of what the file says, not of the cleaned steps: a newer Attune that cleans
    # steps differently must not take an unchanged file for a changed one.
    digest = hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()
    return {**data, "steps": steps, "content_hash": digest}, problems.messages


def step_fields(step: Any, where: str, problems: Problems) -> dict[str, Any]:
    """One library step as Activity field values, validated by the facilitator's ActivityForm."""
    if not isinstance(step, dict):
        problems.add(where, "must be a table")
        return {}
    for key in set(step) - STEP_KEYS:
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

    data = {RENAMED.get(key, key): value for key, value in step.items() if key in STEP_KEYS}
    for key in ("options", "roles"):
        if isinstance(data.get(key), list):
            if not all(isinstance(item, str) for item in data[key]):
                problems.add(f"{where}.{key}", "must be a list of texts")
            data[key] = "\n".join(str(item) for item in data[key])
    if kind == Activity.Kind.EMOTION and "options" not in data:
        data["options"] = "\n".join(DEFAULT_FEELINGS)
    if data.get("private_results") is False:
        del data["private_results"]  # an unticked checkbox is simply absent from a form
    form = ActivityForm(data=data, kind=kind)
    if not form.is_valid():
        for name, errors in form.errors.items():
            for error in errors:
                problems.add(f"{where}.{_toml_name(name)}", error)
        return {}
    for name in set(data) - set(form.fields) - {"minutes", "measure"}:
        problems.add(f"{where}.{_toml_name(name)}", f"not used by a {kind} step")
    return {
        **form.cleaned_data,
        "kind": kind,
        "suggested_seconds": round(minutes * 60),
        "measure": measure or "",
    }


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
