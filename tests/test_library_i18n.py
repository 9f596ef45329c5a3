"""The exercise library's participant text in Spanish (see docs/exercise-library.md)."""

from __future__ import annotations

import copy
import shutil
import tomllib
from pathlib import Path

import pytest
from django.conf import settings

from sessions.exercises.loader import load_library, read_library
from sessions.exercises.schema import LIBRARY_DIR, PLANS_DIR, LibraryError
from sessions.exercises.translations import (
    LANGUAGES,
    LIST_FIELDS,
    SOURCE_LANGUAGE,
    TRANSLATABLE_FIELDS,
    TRANSLATIONS_KEY,
    localized_steps,
)
from sessions.models import PLACEHOLDER, Activity, Exercise, Plan

Kind = Activity.Kind
EXERCISE_FILES = sorted(LIBRARY_DIR.glob("*.toml"))
# What the facilitator alone sees: never translated, never overwritten by a translation.
SHARED_FIELDS = set(Activity.STEP_FIELDS) - set(TRANSLATABLE_FIELDS)


@pytest.fixture(scope="module")
def exercises() -> dict[str, dict]:
    exercises, _plans = read_library()
    return {exercise["slug"]: exercise for exercise in exercises}


def every_step(exercises: dict[str, dict]):
    for slug, exercise in exercises.items():
        for number, step in enumerate(exercise["steps"], start=1):
            yield f"{slug} step {number}", step


def spanish(step: dict) -> dict:
    return step[TRANSLATIONS_KEY]["es"]


def assert_holds(activities: list[Activity], steps: list[dict]) -> None:
    """Each activity holds every field value of its step."""
    assert len(activities) == len(steps)
    for activity, step in zip(activities, steps, strict=True):
        for name, value in step.items():
            assert getattr(activity, name) == value, f"{activity.prompt}: {name}"


# The real library ----------------------------------------------------------------------------


def test_spanish_is_a_language_the_facilitator_can_pick():
    assert LANGUAGES == ("es",)
    assert set(LANGUAGES) | {SOURCE_LANGUAGE} <= {code for code, _name in settings.LANGUAGES}


@pytest.mark.parametrize("path", EXERCISE_FILES, ids=[path.stem for path in EXERCISE_FILES])
def test_every_step_of_every_exercise_file_has_a_spanish_table(path):
    steps = tomllib.loads(path.read_text())["steps"]

    assert all(isinstance(step.get("es"), dict) for step in steps)


def test_every_step_has_a_complete_spanish_version(exercises):
    for where, step in every_step(exercises):
        translation = spanish(step)
        shown = {name for name in TRANSLATABLE_FIELDS if step.get(name)}
        assert set(translation) == shown, where
        for name in shown:
            if name in LIST_FIELDS:
                assert len(translation[name]) == len(step[name]), f"{where}: {name}"
                assert all(item.strip() for item in translation[name]), f"{where}: {name}"
            else:
                assert translation[name].strip(), f"{where}: {name}"


def test_the_spanish_steps_are_translated_not_copied(exercises):
    for where, step in every_step(exercises):
        for name, value in spanish(step).items():
            assert value != step[name], f"{where}: {name}"
            if name in LIST_FIELDS:
                same = [
                    item for item, english in zip(value, step[name], strict=True) if item == english
                ]
                assert not same, f"{where}: {name} left in English: {same}"


def test_the_spanish_keeps_the_placeholders_the_facilitator_fills_in(exercises):
    support = exercises["more-support"]["steps"][0]
    placeholders = PLACEHOLDER.findall(support["body"])

    assert len(placeholders) >= 5
    assert PLACEHOLDER.findall(spanish(support)["body"]) == placeholders


def test_check_in_and_check_out_ask_the_same_question_in_spanish_too(exercises):
    def connectedness(slug: str) -> dict:
        (scale,) = [step for step in exercises[slug]["steps"] if step["measure"]]
        return spanish(scale)

    check_in, check_out = connectedness("check-in"), connectedness("check-out")

    for name in ("prompt", "scale_min_label", "scale_max_label"):
        assert check_in[name] == check_out[name], name


def test_the_spanish_group_profile_has_a_label_before_each_colon(exercises):
    scales = [
        spanish(step)["prompt"]
        for step in exercises["emotional-intelligence-check"]["steps"]
        if step["kind"] == Kind.SCALE
    ]

    labels = [prompt.split(":")[0] for prompt in scales]
    assert labels == [
        "Autoconciencia",
        "Autorregulación",
        "Habilidades sociales",
        "Empatía",
        "Motivación",
    ]


def test_the_private_reflection_says_it_is_not_a_diagnosis_in_spanish(exercises):
    private = [
        spanish(step)["body"]
        for step in exercises["attachment-reflection"]["steps"]
        if step.get("private_results")
    ]

    assert private
    assert all("no un diagnóstico" in body for body in private)


# localized_steps -----------------------------------------------------------------------------


def test_localized_steps_gives_spanish_for_es_and_english_for_en(exercises):
    steps = exercises["deeper-questions"]["steps"]
    before = copy.deepcopy(steps)

    english = localized_steps(steps, "en")
    in_spanish = localized_steps(steps, "es")

    assert steps == before, "the stored steps must not change"
    for step, en, es in zip(steps, english, in_spanish, strict=True):
        assert TRANSLATIONS_KEY not in en
        assert TRANSLATIONS_KEY not in es
        assert en == {name: value for name, value in step.items() if name != TRANSLATIONS_KEY}
        assert es == {**en, **spanish(step)}
        for name in SHARED_FIELDS & set(step):
            assert es[name] == step[name], name
    cards = in_spanish[1]
    assert cards["prompt"] == "Una pregunta para conversar en pareja"
    assert cards["options"][0] == "¿Qué cosa pequeña te levantó el ánimo esta semana?"
    assert cards["script"].startswith("About 10 minutes")  # the facilitator's script stays English


def test_localized_steps_falls_back_to_english_where_there_is_no_translation():
    step = {"kind": "open_text", "prompt": "What brought you here?", "script": "Ask."}
    translated = {
        **step,
        TRANSLATIONS_KEY: {"es": {"prompt": "¿Qué te ha traído aquí?"}},
    }

    assert localized_steps([step], "es") == [step]
    assert localized_steps([translated], "fr") == [step]
    assert localized_steps([translated], "es") == [{**step, "prompt": "¿Qué te ha traído aquí?"}]


def test_localized_steps_never_changes_how_many_options_there_are():
    step = {
        "kind": "single_choice",
        "prompt": "Tea or coffee?",
        "options": ["Tea", "Coffee"],
        TRANSLATIONS_KEY: {"es": {"prompt": "¿Té o café?", "options": ["Té"]}},
    }

    (localized,) = localized_steps([step], "es")

    assert localized["prompt"] == "¿Té o café?"
    assert localized["options"] == ["Tea", "Coffee"]


@pytest.mark.parametrize("language", ["en", "es"])
def test_localized_steps_make_valid_activities_through_add_steps(db, session, language):
    load_library()
    for exercise in Exercise.objects.all():
        wanted = localized_steps(exercise.steps, language)

        activities = session.add_steps(wanted, source=exercise.label)

        assert_holds(activities, [{**step, "source": exercise.label} for step in wanted])
        for activity in activities:
            activity.full_clean()


def test_a_spanish_session_gets_the_library_in_spanish(db, session):
    load_library()
    session.language = "es"
    session.save()
    plan = Plan.objects.get(owner=None, slug="why-is-connecting-hard")

    activities = session.add_steps(plan.steps)

    assert_holds(activities, localized_steps(plan.steps, "es"))
    assert activities[0].prompt == "¿Cuánta conexión sientes en este momento?"
    assert activities[0].script == plan.steps[0]["script"]
    assert activities[0].source == plan.steps[0]["source"]


def test_the_stored_exercises_and_plans_keep_their_translations(db, exercises):
    load_library()

    for slug, exercise in exercises.items():
        stored = Exercise.objects.get(slug=slug, version=exercise["version"])
        assert stored.steps == exercise["steps"]
        assert all(spanish(step) for step in stored.steps)
    for plan in Plan.objects.filter(owner=None):
        assert all(spanish(step) for step in plan.steps), plan.slug


def test_changing_a_spanish_text_without_raising_the_version_is_refused(db, tmp_path):
    library_dir, plans_dir = tmp_path / "library", tmp_path / "plans"
    shutil.copytree(LIBRARY_DIR, library_dir)
    shutil.copytree(PLANS_DIR, plans_dir)
    load_library(library_dir, plans_dir)
    check_in = library_dir / "check-in.toml"
    text = check_in.read_text()
    assert text.count("Muy poca conexión") == 1
    check_in.write_text(text.replace("Muy poca conexión", "Nada de conexión"))

    with pytest.raises(LibraryError) as caught:
        load_library(library_dir, plans_dir)

    assert "check-in.toml: version:" in str(caught.value)


# Schema errors -------------------------------------------------------------------------------

CHOICE = """
[[steps]]
kind = "single_choice"
prompt = "Tea or coffee?"
text = "Pick one."
options = ["Tea", "Coffee", "Neither"]
script = "Ask it lightly."
minutes = 1
"""
CHOICE_ES = """
[steps.es]
prompt = "¿Té o café?"
text = "Elige una."
options = ["Té", "Café", "Ninguno"]
"""
PAIRS = """
[[steps]]
kind = "pair_round"
prompt = "Talk in pairs"
text = "Take turns. Fill in [the topic of the week] first."
roles = ["Speaker", "Listener"]
rounds = 2
script = "Draw the pairs."
minutes = 6
"""
PAIRS_ES = """
[steps.es]
prompt = "Hablar en parejas"
text = "Por turnos. Primero rellena [the topic of the week]."
roles = ["Quien habla", "Quien escucha"]
"""


def exercise_toml(steps: str) -> str:
    return f"""
slug = "broken"
version = 1
title = "A small exercise"
purpose = "What it is for."
duration_minutes = 7
audience = "Any group."
safety = ["Passing is always fine."]
sources = ["Author, A. (2020). A title. A journal."]
{steps}
"""


def read(tmp_path: Path, steps: str) -> tuple[list[dict], str]:
    library_dir, plans_dir = tmp_path / "library", tmp_path / "plans"
    library_dir.mkdir()
    plans_dir.mkdir()
    (library_dir / "broken.toml").write_text(exercise_toml(steps))
    try:
        exercises, _plans = read_library(library_dir, plans_dir)
    except LibraryError as error:
        return [], str(error)
    return exercises, ""


def test_a_hand_written_translation_is_valid_and_kept_with_its_step(tmp_path):
    exercises, message = read(tmp_path, CHOICE + CHOICE_ES + PAIRS + PAIRS_ES)

    assert message == ""
    choice, pairs = exercises[0]["steps"]
    assert choice[TRANSLATIONS_KEY] == {
        "es": {"prompt": "¿Té o café?", "body": "Elige una.", "options": ["Té", "Café", "Ninguno"]}
    }
    assert pairs[TRANSLATIONS_KEY]["es"]["roles"] == ["Quien habla", "Quien escucha"]


def test_an_exercise_without_translations_is_still_valid_and_stays_english(tmp_path):
    exercises, message = read(tmp_path, CHOICE + PAIRS)

    assert message == ""
    steps = exercises[0]["steps"]
    assert all(TRANSLATIONS_KEY not in step for step in steps)
    assert localized_steps(steps, "es") == steps


TRANSLATION_ERRORS = [
    (
        "wrong-option-count",
        CHOICE + CHOICE_ES.replace(', "Ninguno"', "") + PAIRS + PAIRS_ES,
        "broken.toml: steps[1].es.options: 2 items, but the English step has 3",
    ),
    (
        "unknown-field",
        CHOICE + CHOICE_ES + 'colour = "azul"\n' + PAIRS + PAIRS_ES,
        "broken.toml: steps[1].es.colour: unknown field",
    ),
    (
        "facilitator-only-script",
        CHOICE + CHOICE_ES + 'script = "Pregúntalo."\n' + PAIRS + PAIRS_ES,
        "broken.toml: steps[1].es.script: not translated: participants never see it",
    ),
    (
        "facilitator-only-minutes",
        CHOICE + CHOICE_ES + "minutes = 2\n" + PAIRS + PAIRS_ES,
        "broken.toml: steps[1].es.minutes: not translated",
    ),
    (
        "missing-field",
        CHOICE + CHOICE_ES.replace('text = "Elige una."\n', "") + PAIRS + PAIRS_ES,
        "broken.toml: steps[1].es.text: missing: the English step has it",
    ),
    (
        "field-the-english-step-lacks",
        CHOICE + CHOICE_ES + 'scale_min_label = "Nada"\n' + PAIRS + PAIRS_ES,
        "broken.toml: steps[1].es.scale_min_label: the English step has none",
    ),
    (
        "empty-text",
        CHOICE + CHOICE_ES.replace('"¿Té o café?"', '"  "') + PAIRS + PAIRS_ES,
        "broken.toml: steps[1].es.prompt: must be a non-empty text",
    ),
    (
        "empty-option",
        CHOICE + CHOICE_ES.replace('"Ninguno"', '""') + PAIRS + PAIRS_ES,
        "broken.toml: steps[1].es.options: must be a list of non-empty texts",
    ),
    (
        "unsupported-language",
        CHOICE + CHOICE_ES + PAIRS + PAIRS_ES + '[steps.fr]\nprompt = "Parler"\n',
        "broken.toml: steps[2].fr: not a language of the library",
    ),
    (
        "placeholder-translated",
        CHOICE + CHOICE_ES + PAIRS + PAIRS_ES.replace("[the topic of the week]", "[el tema]"),
        "broken.toml: steps[2].es.text: keep the English [placeholders] exactly as they are",
    ),
    (
        "same-roles",
        CHOICE + CHOICE_ES + PAIRS + PAIRS_ES.replace('"Quien escucha"', '"Quien habla"'),
        "broken.toml: steps[2].es.roles: Give two different roles",
    ),
    (
        "option-too-long",
        CHOICE + CHOICE_ES.replace('"Té"', '"' + "Té " * 50 + '"') + PAIRS + PAIRS_ES,
        "broken.toml: steps[1].es.options: Keep each option under 120 characters",
    ),
    (
        "one-step-left-untranslated",
        CHOICE + CHOICE_ES + PAIRS,
        "broken.toml: steps[2]: no [steps.es] translation",
    ),
    (
        "not-a-table",
        CHOICE.replace("minutes = 1", 'minutes = 1\nes = "¿Té o café?"') + PAIRS,
        "broken.toml: steps[1].es: must be a table",
    ),
]


@pytest.mark.parametrize(
    ("steps", "expected"),
    [case[1:] for case in TRANSLATION_ERRORS],
    ids=[case[0] for case in TRANSLATION_ERRORS],
)
def test_a_faulty_translation_is_refused_naming_the_file_and_the_field(tmp_path, steps, expected):
    _exercises, message = read(tmp_path, steps)

    assert expected in message
