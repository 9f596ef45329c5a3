"""The exercise library's data files and their loader (see docs/exercise-library.md)."""

from __future__ import annotations

import re
import shutil
from functools import partial
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from sessions.exercises.loader import load_library, read_library
from sessions.exercises.schema import LIBRARY_DIR, PLANS_DIR, LibraryError
from sessions.management.commands import load_library as command_module
from sessions.models import DEFAULT_FEELINGS, Activity, Exercise, Plan

Kind = Activity.Kind

REQUIRED_EXERCISES = {
    "check-in",
    "check-out",
    "quick-assessment",
    "what-gets-in-the-way",
    "attachment-reflection",
    "emotional-intelligence-check",
    "calm-the-nervous-system",
    "myths-that-block-connection",
    "active-listening-pairs",
    "deeper-questions",
    "small-social-risks",
    "connection-profiles",
    "how-are-you-really",
    "more-support",
}

EXERCISE_FILES = sorted(LIBRARY_DIR.glob("*.toml"))
PLAN_FILES = sorted(PLANS_DIR.glob("*.toml"))


@pytest.fixture(scope="module")
def library() -> tuple[dict[str, dict], list[dict]]:
    """The real library as read from its files: exercises by slug, and the plans."""
    exercises, plans = read_library()
    return {exercise["slug"]: exercise for exercise in exercises}, plans


def steps_of(library, slug: str, kind: str | None = None) -> list[dict]:
    exercises, _plans = library
    return [step for step in exercises[slug]["steps"] if kind is None or step["kind"] == kind]


def connectedness_scale(library, slug: str) -> dict:
    scales = [step for step in steps_of(library, slug, Kind.SCALE) if step["measure"]]
    assert len(scales) == 1, f"{slug} should have one scale with a measure"
    return scales[0]


# The real library's files ------------------------------------------------------------------


def test_every_file_of_the_library_and_its_plans_is_valid():
    exercises, plans = read_library()

    assert len(exercises) == len(EXERCISE_FILES)
    assert len(plans) == len(PLAN_FILES)


def test_the_library_has_every_required_exercise(library):
    exercises, _plans = library

    assert REQUIRED_EXERCISES - set(exercises) == set()


def test_the_library_has_at_least_three_plans(library):
    _exercises, plans = library

    assert len(plans) >= 3


def test_every_plan_names_existing_exercises_from_check_in_to_check_out(library):
    exercises, plans = library

    for plan in plans:
        slugs = plan["exercises"]
        assert set(slugs) <= set(exercises), plan["slug"]
        assert slugs[0] == "check-in", plan["slug"]
        ends = slugs[-1] == "check-out" or slugs[-2:] == ["check-out", "more-support"]
        assert ends, plan["slug"]


def test_check_in_and_check_out_ask_the_same_connectedness_scale(library):
    check_in = connectedness_scale(library, "check-in")
    check_out = connectedness_scale(library, "check-out")

    assert check_in["measure"] == check_out["measure"] == "connectedness"
    for field in ("prompt", "scale_min", "scale_max", "scale_min_label", "scale_max_label"):
        assert check_in[field] == check_out[field], field
    assert check_in["scale_min_label"]
    assert check_in["scale_max_label"]


def test_the_attachment_reflection_keeps_its_answers_private_and_is_not_a_diagnosis(library):
    answered = [
        step
        for step in steps_of(library, "attachment-reflection")
        if step["kind"] not in Activity.STEP_KINDS
    ]

    assert answered, "the attachment reflection should ask people to pick a pattern"
    for step in answered:
        assert step["private_results"] is True, step["prompt"]
        said = f"{step.get('body', '')}\n{step['script']}".casefold()
        assert "not a diagnosis" in said, step["prompt"]


def test_more_support_leaves_the_local_crisis_contacts_for_the_facilitator_to_fill_in(library):
    resources = steps_of(library, "more-support", Kind.RESOURCES)

    assert resources
    for step in resources:
        assert "[Your local emergency number]" in step["body"]
        assert "[Your local crisis line" in step["body"]


def test_calm_the_nervous_system_has_a_breathing_pacer(library):
    breathing = steps_of(library, "calm-the-nervous-system", Kind.BREATHING)

    assert breathing
    assert all(step["inhale_seconds"] and step["exhale_seconds"] for step in breathing)


@pytest.mark.parametrize("slug", ["active-listening-pairs", "how-are-you-really"])
def test_the_pair_exercises_have_a_pair_round_with_two_roles(library, slug):
    rounds = steps_of(library, slug, Kind.PAIR_ROUND)

    assert rounds
    assert all(len(step["roles"]) == 2 for step in rounds)


def test_deeper_questions_has_a_deck_of_at_least_twenty_cards(library):
    decks = steps_of(library, "deeper-questions", Kind.QUESTION_CARDS)

    assert decks
    assert all(len(step["options"]) >= 20 for step in decks)


def test_every_exercise_has_safety_notes_and_sources_and_every_step_a_script(library):
    exercises, _plans = library

    for slug, exercise in exercises.items():
        assert exercise["safety"], slug
        assert exercise["sources"], slug
        assert exercise["steps"], slug
        for step in exercise["steps"]:
            assert step["script"].strip(), f"{slug}: {step['prompt']}"


# Loading into the database -----------------------------------------------------------------


def test_loading_stores_every_exercise_and_plan(db):
    report = load_library()

    assert report.exercises_added == len(EXERCISE_FILES)
    assert report.exercises_unchanged == 0
    assert report.plans == len(PLAN_FILES)
    assert Exercise.objects.count() == len(EXERCISE_FILES)
    assert set(Exercise.objects.values_list("slug", flat=True)) >= REQUIRED_EXERCISES
    assert Plan.objects.filter(owner=None).count() == len(PLAN_FILES)
    assert Plan.objects.count() == len(PLAN_FILES)


def test_loading_twice_adds_nothing_the_second_time(db):
    load_library()
    exercises_before = list(Exercise.objects.order_by("pk").values())
    plans_before = list(Plan.objects.order_by("pk").values())

    report = load_library()

    assert report.exercises_added == 0
    assert report.exercises_unchanged == len(EXERCISE_FILES)
    assert report.plans == len(PLAN_FILES)
    assert list(Exercise.objects.order_by("pk").values()) == exercises_before
    assert list(Plan.objects.order_by("pk").values()) == plans_before


def test_a_library_plan_holds_its_exercises_steps_in_order_with_their_source(db, library):
    _exercises, plans = library
    load_library()

    for plan_data in plans:
        plan = Plan.objects.get(owner=None, slug=plan_data["slug"])
        expected = []
        for slug in plan_data["exercises"]:
            exercise = Exercise.objects.get(slug=slug)
            expected += [{**step, "source": exercise.label} for step in exercise.steps]
        assert plan.title == plan_data["title"]
        assert plan.duration_minutes == plan_data["duration_minutes"]
        assert plan.steps == expected
        assert plan.steps[0]["source"] == Exercise.objects.get(slug="check-in").label


def test_the_load_library_command_loads_the_library_and_reports_it(db):
    first, second = StringIO(), StringIO()

    call_command("load_library", stdout=first)
    call_command("load_library", stdout=second)

    assert f"{len(EXERCISE_FILES)} exercise versions added, 0 unchanged" in first.getvalue()
    assert f"{len(PLAN_FILES)} session plans" in first.getvalue()
    assert f"0 exercise versions added, {len(EXERCISE_FILES)} unchanged" in second.getvalue()
    assert Exercise.objects.count() == len(EXERCISE_FILES)
    assert Plan.objects.count() == len(PLAN_FILES)


def test_the_load_library_command_with_check_validates_and_writes_nothing(db):
    out = StringIO()

    call_command("load_library", check=True, stdout=out)

    assert (
        f"{len(EXERCISE_FILES)} exercises and {len(PLAN_FILES)} plans are valid." in out.getvalue()
    )
    assert not Exercise.objects.exists()
    assert not Plan.objects.exists()


@pytest.mark.parametrize("check", [False, True], ids=["load", "check"])
def test_the_load_library_command_fails_with_the_problems_of_a_broken_library(
    db, monkeypatch, tmp_path, check
):
    library_dir, plans_dir = empty_library(tmp_path)
    write(library_dir / "broken.toml", exercise_toml("broken", header='colour = "blue"'))
    monkeypatch.setattr(
        command_module, "load_library", partial(load_library, library_dir, plans_dir)
    )
    monkeypatch.setattr(
        command_module, "read_library", partial(read_library, library_dir, plans_dir)
    )

    with pytest.raises(CommandError) as caught:
        call_command("load_library", check=check, stdout=StringIO())

    assert "broken.toml: colour: unknown field" in str(caught.value)
    assert not Exercise.objects.exists()


# Versions ----------------------------------------------------------------------------------

CHECK_IN_TEXT = "Think about today, not your whole life."
NEW_CHECK_IN_TEXT = "Think about this evening only."


@pytest.fixture
def library_copy(tmp_path) -> tuple[Path, Path]:
    library_dir, plans_dir = tmp_path / "library", tmp_path / "plans"
    shutil.copytree(LIBRARY_DIR, library_dir)
    shutil.copytree(PLANS_DIR, plans_dir)
    return library_dir, plans_dir


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert text.count(old) == 1, f"{old!r} should occur once in {path.name}"
    path.write_text(text.replace(old, new))


def raise_version(path: Path) -> None:
    text, count = re.subn(r"^version = (\d+)$", bump, path.read_text(), count=1, flags=re.M)
    assert count == 1
    path.write_text(text)


def bump(match: re.Match) -> str:
    return f"version = {int(match.group(1)) + 1}"


def test_changing_a_file_without_raising_its_version_is_refused_and_writes_nothing(
    db, library_copy
):
    library_dir, plans_dir = library_copy
    load_library(library_dir, plans_dir)
    exercises_before = list(Exercise.objects.order_by("pk").values())
    plans_before = list(Plan.objects.order_by("pk").values())
    # A correct new version of a file that is loaded before the faulty one ...
    first = library_dir / "active-listening-pairs.toml"
    raise_version(first)
    edit(first, "title = ", 'title = "Listening in pairs" # was: ')
    # ... a plan change ...
    edit(plans_dir / "drop-in.toml", 'title = "Drop-in', 'title = "Changed drop-in')
    # ... and a text change without a new version.
    edit(library_dir / "check-in.toml", CHECK_IN_TEXT, NEW_CHECK_IN_TEXT)

    with pytest.raises(LibraryError) as caught:
        load_library(library_dir, plans_dir)

    message = str(caught.value)
    assert "check-in.toml: version:" in message
    assert "raise the version" in message
    assert "active-listening-pairs.toml" not in message
    assert list(Exercise.objects.order_by("pk").values()) == exercises_before
    assert list(Plan.objects.order_by("pk").values()) == plans_before


def test_raising_the_version_adds_a_second_version_and_keeps_the_first(db, library_copy):
    library_dir, plans_dir = library_copy
    load_library(library_dir, plans_dir)
    check_in = library_dir / "check-in.toml"
    edit(check_in, CHECK_IN_TEXT, NEW_CHECK_IN_TEXT)
    raise_version(check_in)

    report = load_library(library_dir, plans_dir)

    assert report.exercises_added == 1
    assert report.exercises_unchanged == len(EXERCISE_FILES) - 1
    old, new = Exercise.objects.filter(slug="check-in").order_by("version")
    assert new.version == old.version + 1
    assert CHECK_IN_TEXT in old.steps[0]["body"]
    assert NEW_CHECK_IN_TEXT in new.steps[0]["body"]
    assert Exercise.objects.count() == len(EXERCISE_FILES) + 1
    latest = {exercise.slug: exercise for exercise in Exercise.objects.latest_versions()}
    assert latest["check-in"] == new
    # The library's plans follow the new version; loading again changes nothing.
    drop_in = Plan.objects.get(owner=None, slug="drop-in")
    assert drop_in.steps[0]["source"] == new.label == f"check-in v{new.version}"
    assert NEW_CHECK_IN_TEXT in drop_in.steps[0]["body"]
    assert load_library(library_dir, plans_dir).exercises_added == 0


def test_a_session_keeps_the_steps_it_copied_when_a_new_version_loads(db, library_copy, session):
    library_dir, plans_dir = library_copy
    load_library(library_dir, plans_dir)
    old = Exercise.objects.get(slug="check-in")
    session.add_steps(old.steps, source=old.label)
    check_in = library_dir / "check-in.toml"
    edit(check_in, CHECK_IN_TEXT, NEW_CHECK_IN_TEXT)
    raise_version(check_in)

    load_library(library_dir, plans_dir)

    activities = session.activities_in_order()
    assert [activity.prompt for activity in activities] == [step["prompt"] for step in old.steps]
    assert CHECK_IN_TEXT in activities[0].body
    assert all(NEW_CHECK_IN_TEXT not in activity.body for activity in activities)
    assert {activity.source for activity in activities} == {old.label}


# Schema errors -----------------------------------------------------------------------------

OPEN_TEXT_STEP = """
[[steps]]
kind = "open_text"
prompt = "What brought you here today?"
script = "Ask it gently, and say that passing is fine."
minutes = 2
"""


def exercise_toml(
    slug: str, *, duration: int = 5, header: str = "", steps: str = OPEN_TEXT_STEP
) -> str:
    """A small exercise file; `header` adds top-level lines (they must come before the steps)."""
    return f"""
slug = "{slug}"
version = 1
title = "The {slug} exercise"
purpose = "What it is for."
duration_minutes = {duration}
audience = "Any group."
safety = ["Passing is always fine."]
sources = ["Author, A. (2020). A title. A journal."]
{header}
{steps}
"""


def plan_toml(slug: str, exercises: str, *, duration: int = 5) -> str:
    return f"""
slug = "{slug}"
version = 1
title = "The {slug} plan"
duration_minutes = {duration}
description = "Who it is for."
exercises = {exercises}
"""


def step(
    kind: str, extra: str = "", *, script: bool = True, minutes: float = 2, prompt: str = ""
) -> str:
    prompt = prompt or f"A {kind} step"
    lines = ["[[steps]]", f'kind = "{kind}"', f'prompt = "{prompt}"', f"minutes = {minutes}"]
    if script:
        lines.append('script = "What to say."')
    return "\n".join([*lines, extra]) + "\n"


def empty_library(tmp_path: Path) -> tuple[Path, Path]:
    library_dir, plans_dir = tmp_path / "library", tmp_path / "plans"
    library_dir.mkdir()
    plans_dir.mkdir()
    return library_dir, plans_dir


def write(path: Path, text: str) -> None:
    path.write_text(text.lstrip())


def problems(library_dir: Path, plans_dir: Path) -> str:
    with pytest.raises(LibraryError) as caught:
        read_library(library_dir, plans_dir)
    return str(caught.value)


def test_a_small_hand_written_library_is_valid(tmp_path):
    library_dir, plans_dir = empty_library(tmp_path)
    write(library_dir / "hello.toml", exercise_toml("hello"))
    write(plans_dir / "short.toml", plan_toml("short", '["hello"]'))

    exercises, plans = read_library(library_dir, plans_dir)

    assert [exercise["slug"] for exercise in exercises] == ["hello"]
    assert exercises[0]["steps"][0]["suggested_seconds"] == 120
    assert [plan["slug"] for plan in plans] == ["short"]


def test_a_led_step_after_a_question_may_be_a_recap(tmp_path):
    library_dir, plans_dir = empty_library(tmp_path)
    steps = step("open_text") + step("instruction", 'text = "Look back."\nrecap = true')
    write(library_dir / "hello.toml", exercise_toml("hello", steps=steps))
    write(plans_dir / "short.toml", plan_toml("short", '["hello"]'))

    exercises, _plans = read_library(library_dir, plans_dir)

    assert [step["recap"] for step in exercises[0]["steps"]] == [False, True]


SOME_OPTIONS = 'options = ["Yes", "No"]\n'

SCHEMA_ERRORS = [
    (
        "unknown-top-level-field",
        exercise_toml("broken", header='colour = "blue"'),
        "broken.toml: colour: unknown field",
    ),
    (
        "slug-not-the-file-name",
        exercise_toml("mended"),
        "broken.toml: slug: must equal the file name (broken)",
    ),
    (
        "unknown-step-kind",
        exercise_toml("broken", steps=step("dance")),
        "broken.toml: steps[1].kind: must be one of",
    ),
    (
        "step-without-script",
        exercise_toml("broken", steps=step("open_text", script=False)),
        "broken.toml: steps[1].script: missing",
    ),
    (
        "single-choice-with-one-option",
        exercise_toml("broken", steps=step("single_choice", 'options = ["Only one"]')),
        "broken.toml: steps[1].options: Give at least two options",
    ),
    (
        "pair-round-without-roles",
        exercise_toml("broken", steps=step("pair_round", 'text = "Talk."\nrounds = 2')),
        "broken.toml: steps[1].roles: Give two different roles",
    ),
    (
        "minutes-above-sixty",
        exercise_toml("broken", steps=step("open_text", minutes=61)),
        "broken.toml: steps[1].minutes: must be a number from 0.5 to 60",
    ),
    (
        "minutes-below-half-a-minute",
        exercise_toml("broken", steps=step("open_text", minutes=0.25)),
        "broken.toml: steps[1].minutes: must be a number from 0.5 to 60",
    ),
    (
        "recap-on-a-question",
        exercise_toml(
            "broken", steps=step("open_text") + step("single_choice", SOME_OPTIONS + "recap = true")
        ),
        "broken.toml: steps[2].recap: only a step that is led, not answered, can be a recap",
    ),
    (
        "recap-with-no-question-before-it",
        exercise_toml(
            "broken",
            steps=step("instruction", 'text = "Look back."\nrecap = true') + step("open_text"),
        ),
        "broken.toml: steps[1].recap: no question before this step",
    ),
    (
        "recap-after-private-questions-only",
        exercise_toml(
            "broken",
            steps=step("open_text", "private = true")
            + step("instruction", 'text = "Look back."\nrecap = true'),
        ),
        "broken.toml: steps[2].recap: no question before this step",
    ),
    (
        "recap-not-true-or-false",
        exercise_toml(
            "broken",
            steps=step("open_text") + step("instruction", 'text = "Look back."\nrecap = "yes"'),
        ),
        "broken.toml: steps[2].recap: must be true or false",
    ),
    (
        "two-steps-with-one-prompt",
        exercise_toml(
            "broken",
            steps=step("open_text", prompt="Twice") + step("word_cloud", prompt="Twice"),
        ),
        "broken.toml: steps[2].prompt: the same as steps[1]'s: give each step a prompt of its own",
    ),
    (
        "invalid-toml",
        'slug = "broken\nversion = 1\n',
        "broken.toml: file: not valid TOML",
    ),
]


@pytest.mark.parametrize(
    ("text", "expected"),
    [case[1:] for case in SCHEMA_ERRORS],
    ids=[case[0] for case in SCHEMA_ERRORS],
)
def test_a_faulty_exercise_file_is_refused_naming_the_file_and_the_field(tmp_path, text, expected):
    library_dir, plans_dir = empty_library(tmp_path)
    write(library_dir / "fine.toml", exercise_toml("fine"))
    write(library_dir / "broken.toml", text)

    message = problems(library_dir, plans_dir)

    assert expected in message
    assert "fine.toml" not in message


def test_a_faulty_file_makes_loading_write_nothing(db, tmp_path):
    library_dir, plans_dir = empty_library(tmp_path)
    write(library_dir / "a-fine-one.toml", exercise_toml("a-fine-one"))
    write(library_dir / "broken.toml", exercise_toml("broken", header='colour = "blue"'))

    with pytest.raises(LibraryError):
        load_library(library_dir, plans_dir)

    assert not Exercise.objects.exists()
    assert not Plan.objects.exists()


def test_a_plan_naming_a_missing_exercise_is_refused(tmp_path):
    library_dir, plans_dir = empty_library(tmp_path)
    write(library_dir / "hello.toml", exercise_toml("hello"))
    write(plans_dir / "plan.toml", plan_toml("plan", '["hello", "nowhere"]'))

    message = problems(library_dir, plans_dir)

    assert "plan.toml: exercises: no exercise named nowhere" in message


def test_a_plan_whose_length_is_off_by_more_than_ten_minutes_is_refused(tmp_path):
    library_dir, plans_dir = empty_library(tmp_path)
    write(library_dir / "hello.toml", exercise_toml("hello", duration=5))
    write(library_dir / "again.toml", exercise_toml("again", duration=10))
    write(plans_dir / "plan.toml", plan_toml("plan", '["hello", "again"]', duration=26))

    message = problems(library_dir, plans_dir)

    assert "plan.toml: duration_minutes: 26 minutes, but its exercises take 15" in message


@pytest.mark.parametrize("duration", [5, 25], ids=["ten-under", "ten-over"])
def test_a_plan_within_ten_minutes_of_its_exercises_is_accepted(tmp_path, duration):
    library_dir, plans_dir = empty_library(tmp_path)
    write(library_dir / "hello.toml", exercise_toml("hello", duration=5))
    write(library_dir / "again.toml", exercise_toml("again", duration=10))
    write(plans_dir / "plan.toml", plan_toml("plan", '["hello", "again"]', duration=duration))

    _exercises, plans = read_library(library_dir, plans_dir)

    assert plans[0]["duration_minutes"] == duration


def test_a_plan_listing_something_other_than_exercise_names_is_refused(tmp_path):
    library_dir, plans_dir = empty_library(tmp_path)
    write(library_dir / "hello.toml", exercise_toml("hello"))
    write(plans_dir / "plan.toml", plan_toml("plan", '["hello", 3]'))

    message = problems(library_dir, plans_dir)

    assert "plan.toml: exercises:" in message


def test_an_exercise_longer_than_ninety_minutes_is_refused(tmp_path):
    # docs/exercise-library.md: duration_minutes is "whole minutes, 1 to 90".
    library_dir, plans_dir = empty_library(tmp_path)
    write(library_dir / "broken.toml", exercise_toml("broken", duration=91))

    message = problems(library_dir, plans_dir)

    assert "broken.toml: duration_minutes:" in message


def test_an_emotion_step_without_options_offers_attunes_feelings(tmp_path):
    # docs/exercise-library.md: an emotion step's options default to Attune's feeling set.
    library_dir, plans_dir = empty_library(tmp_path)
    write(library_dir / "feelings.toml", exercise_toml("feelings", steps=step("emotion")))

    exercises, _plans = read_library(library_dir, plans_dir)

    assert exercises[0]["steps"][0]["options"] == DEFAULT_FEELINGS


def test_a_library_without_exercise_files_is_refused(tmp_path):
    library_dir, plans_dir = empty_library(tmp_path)

    message = problems(library_dir, plans_dir)

    assert "no exercise files" in message


def test_every_problem_of_every_file_is_reported_at_once(tmp_path):
    library_dir, plans_dir = empty_library(tmp_path)
    steps = (
        step("open_text", script=False)
        + step("scale", "scale_min = 1\nscale_max = 5", minutes=99)
        + step("dance")
    )
    write(
        library_dir / "broken.toml",
        exercise_toml("mended", header='colour = "blue"', steps=steps),
    )
    write(library_dir / "other.toml", exercise_toml("other", steps=step("single_choice")))

    message = problems(library_dir, plans_dir)

    for expected in [
        "broken.toml: colour: unknown field",
        "broken.toml: slug: must equal the file name (broken)",
        "broken.toml: steps[1].script: missing",
        "broken.toml: steps[2].minutes: must be a number from 0.5 to 60",
        "broken.toml: steps[3].kind: must be one of",
        "other.toml: steps[1].options: Give at least two options",
    ]:
        assert expected in message
    assert len(message.splitlines()) == 6


def test_a_newer_attune_that_cleans_steps_differently_still_loads_unchanged_files(db, monkeypatch):
    load_library()
    from sessions.exercises import schema

    cleaned_before = schema.step_fields

    def cleaned_differently(*args, **kwargs):
        return {**cleaned_before(*args, **kwargs), "script": "cleaned another way"}

    monkeypatch.setattr(schema, "step_fields", cleaned_differently)

    report = load_library()  # must not ask for a version bump: the files did not change

    assert report.exercises_added == 0
