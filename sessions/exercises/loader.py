"""Loading the library into the database: all files valid, or nothing written."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.db import transaction

from ..models import Exercise, Plan
from .schema import LIBRARY_DIR, PLANS_DIR, LibraryError, read_exercise, read_plan

# A plan's length should match its exercises' within this many minutes.
PLAN_DURATION_TOLERANCE = 10


@dataclass
class LoadReport:
    exercises_added: int = 0
    exercises_unchanged: int = 0
    plans: int = 0

    def __str__(self) -> str:
        return (
            f"Exercise library: {self.exercises_added} exercise versions added, "
            f"{self.exercises_unchanged} unchanged; {self.plans} session plans."
        )


def read_library(
    library_dir: Path = LIBRARY_DIR, plans_dir: Path = PLANS_DIR
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every exercise and plan, validated; LibraryError lists every problem found."""
    problems: list[str] = []
    exercises = []
    for path in sorted(library_dir.glob("*.toml")):
        exercise, found = read_exercise(path)
        problems += found
        exercises.append(exercise)
    if not exercises:
        problems.append(f"{library_dir}: no exercise files")
    by_slug = {exercise.get("slug"): exercise for exercise in exercises}
    plans = []
    for path in sorted(plans_dir.glob("*.toml")):
        plan, found = read_plan(path)
        problems += found
        plans.append(plan)
        if found:
            continue
        missing = [slug for slug in plan["exercises"] if slug not in by_slug]
        if missing:
            problems.append(f"{path.name}: exercises: no exercise named {', '.join(missing)}")
        else:
            total = sum(by_slug[slug]["duration_minutes"] for slug in plan["exercises"])
            if abs(total - plan["duration_minutes"]) > PLAN_DURATION_TOLERANCE:
                problems.append(
                    f"{path.name}: duration_minutes: {plan['duration_minutes']} minutes, but its "
                    f"exercises take {total}"
                )
    if problems:
        raise LibraryError("\n".join(problems))
    return exercises, plans


def load_library(library_dir: Path = LIBRARY_DIR, plans_dir: Path = PLANS_DIR) -> LoadReport:
    """Store every exercise version not stored yet, and refresh the library's plans.

    Idempotent. A file whose content changed while its version stayed the same is refused:
    sessions and plans may already hold that version.
    """
    exercises, plans = read_library(library_dir, plans_dir)
    report = LoadReport()
    with transaction.atomic():
        for exercise in exercises:
            stored = Exercise.objects.filter(
                slug=exercise["slug"], version=exercise["version"]
            ).first()
            if stored is None:
                Exercise.objects.create(**exercise)
                report.exercises_added += 1
            elif stored.content_hash != exercise["content_hash"]:
                raise LibraryError(
                    f"{exercise['slug']}.toml: version: the content changed but version "
                    f"{exercise['version']} is already loaded; raise the version"
                )
            else:
                report.exercises_unchanged += 1
        by_slug = {exercise["slug"]: exercise for exercise in exercises}
        for plan in plans:
            steps = [
                {**step, "source": f"{slug} v{by_slug[slug]['version']}"}
                for slug in plan["exercises"]
                for step in by_slug[slug]["steps"]
            ]
            Plan.objects.update_or_create(
                owner=None,
                slug=plan["slug"],
                defaults={
                    "title": plan["title"],
                    "description": plan["description"],
                    "duration_minutes": plan["duration_minutes"],
                    "steps": steps,
                },
            )
            report.plans += 1
    return report
