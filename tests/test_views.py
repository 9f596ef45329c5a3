"""The HTTP views as people meet them: accounts, building, running, joining, the summary."""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import dateformat, timezone

from sessions.exercises.loader import load_library
from sessions.forms import ActivityForm
from sessions.models import (
    DEFAULT_FEELINGS,
    Activity,
    Answer,
    Exercise,
    Group,
    Member,
    Participant,
    Session,
    participant_cookie,
)
from tests.conftest import add_activity

Kind = Activity.Kind
HTMX = {"HTTP_HX_REQUEST": "true"}


def page(response) -> str:
    return response.content.decode()


def participant_cookies(response) -> list[str]:
    """The participant cookies a response sets, whatever their session."""
    prefix = settings.ATTUNE_PARTICIPANT_COOKIE
    return [name for name in response.cookies if name.startswith(prefix)]


def agenda_prompts(session: Session) -> list[str]:
    return [activity.prompt for activity in session.activities_in_order()]


def answer_with(session: Session, activity: Activity, participants, values) -> None:
    """Open `activity`, let each participant give the matching value, then close it again."""
    session.open_activity(activity)
    for participant, value in zip(participants, values, strict=True):
        if value is None:
            participant.pass_on(activity.pk)
        else:
            participant.answer(activity.pk, value)
    session.close_activity()


def new_participants(session: Session, count: int) -> list[Participant]:
    return [session.add_participant()[0] for _ in range(count)]


def start_another_session(facilitator, title: str = "Thursday circle") -> Session:
    other = Session.objects.create(facilitator=facilitator, title=title)
    other.start()
    return other


def messy(code: str) -> str:
    """The code as someone might type it: lower case, with spaces and a dash."""
    return f" {code[:3].lower()} - {code[3:].lower()} "


# Accounts ----------------------------------------------------------------------------------


def test_signing_up_creates_a_facilitator_and_signs_them_in(client, db):
    response = client.post(
        reverse("signup"),
        {
            "username": "carol",
            "password1": "a-long-unusual-passphrase-42",
            "password2": "a-long-unusual-passphrase-42",
        },
    )

    assert response.status_code == 302
    assert response.url == reverse("dashboard")
    assert User.objects.filter(username="carol").exists()
    dashboard = client.get(reverse("dashboard"))
    assert dashboard.status_code == 200
    assert "Sign out (carol)" in page(dashboard)


def test_signing_up_with_passwords_that_differ_creates_nobody(client, db):
    response = client.post(
        reverse("signup"),
        {
            "username": "carol",
            "password1": "a-long-unusual-passphrase-42",
            "password2": "a-different-passphrase-43",
        },
    )

    assert response.status_code == 200
    assert not User.objects.filter(username="carol").exists()
    assert client.get(reverse("dashboard")).status_code == 302


def test_a_facilitator_signs_in_and_lands_on_the_dashboard(client, facilitator):
    response = client.post(reverse("login"), {"username": "alice", "password": "alice-password"})

    assert response.status_code == 302
    assert response.url == reverse("dashboard")
    assert client.get(reverse("dashboard")).status_code == 200


def test_signing_in_with_a_wrong_password_is_refused(client, facilitator):
    response = client.post(reverse("login"), {"username": "alice", "password": "wrong"})

    assert response.status_code == 200
    assert "enter a correct username and password" in page(response)
    assert client.get(reverse("dashboard")).status_code == 302


def test_signing_out_is_a_post_and_ends_the_sign_in(client, facilitator):
    client.force_login(facilitator)

    response = client.post(reverse("logout"))

    assert response.status_code == 302
    assert response.url == reverse("login")
    dashboard = client.get(reverse("dashboard"))
    assert dashboard.status_code == 302
    assert dashboard.url.startswith(reverse("login"))


def test_signing_out_with_a_get_is_refused_and_keeps_the_sign_in(client, facilitator):
    client.force_login(facilitator)

    response = client.get(reverse("logout"))

    assert response.status_code == 405
    assert client.get(reverse("dashboard")).status_code == 200


def test_the_dashboard_sends_a_visitor_who_is_not_signed_in_to_the_login(client, db):
    response = client.get(reverse("dashboard"))

    assert response.status_code == 302
    assert response.url == f"{reverse('login')}?next={reverse('dashboard')}"


def test_a_visitor_who_is_not_signed_in_cannot_create_or_edit_sessions(client, session):
    create = client.post(reverse("session_create"), {"title": "Sneaky"})
    edit = client.get(reverse("session_edit", args=[session.pk]))

    assert create.status_code == 302
    assert create.url.startswith(reverse("login"))
    assert edit.status_code == 302
    assert edit.url.startswith(reverse("login"))
    assert not Session.objects.filter(title="Sneaky").exists()


# Dashboard ---------------------------------------------------------------------------------


def test_the_dashboard_lists_only_the_facilitators_own_sessions_by_state(
    client, facilitator, other_facilitator
):
    Session.objects.create(facilitator=facilitator, title="Monday draft")
    live = Session.objects.create(facilitator=facilitator, title="Tuesday live")
    live.start()
    ended = Session.objects.create(facilitator=facilitator, title="Wednesday ended")
    ended.start()
    ended.end()
    Session.objects.create(facilitator=other_facilitator, title="Circle of Bob")
    client.force_login(facilitator)

    html = page(client.get(reverse("dashboard")))

    live_part, rest = html.split("<h2>Drafts</h2>")
    drafts_part, ended_part = rest.split("<h2>Ended</h2>")
    live_part = live_part.split("<h2>Live now</h2>")[1]
    assert "Tuesday live" in live_part
    assert live.join_code in live_part
    assert "Monday draft" not in live_part
    assert "Monday draft" in drafts_part
    assert "Tuesday live" not in drafts_part
    assert "Wednesday ended" not in drafts_part
    assert "Wednesday ended" in ended_part
    assert "Monday draft" not in ended_part
    assert "Circle of Bob" not in html
    # One's own sessions come first, before the plans to start from.
    assert html.index("<h2>Ended</h2>") < html.index("<h2>Start from a plan</h2>")
    assert f"Draft · made {timezone.localdate():%-d %b %Y}" in drafts_part


def test_a_draft_can_be_deleted_from_its_page(client, facilitator, session):
    client.force_login(facilitator)

    html = page(client.get(reverse("session_edit", args=[session.pk])))

    assert f'href="{reverse("session_delete", args=[session.pk])}"' in html
    client.post(reverse("session_delete", args=[session.pk]))
    assert not Session.objects.filter(pk=session.pk).exists()


def test_a_facilitator_creates_a_session_and_goes_to_its_editor(client, facilitator):
    client.force_login(facilitator)

    response = client.post(reverse("session_create"), {"title": "Friday circle"})

    created = Session.objects.get(title="Friday circle")
    assert created.facilitator == facilitator
    assert created.status == Session.Status.DRAFT
    assert response.status_code == 302
    assert response.url == reverse("session_edit", args=[created.pk])


def test_creating_a_session_with_a_blank_title_shows_an_error_and_creates_nothing(
    client, facilitator
):
    client.force_login(facilitator)

    response = client.post(reverse("session_create"), {"title": "   "})

    assert response.status_code == 400
    assert "This field is required." in page(response)
    assert not Session.objects.exists()


# Isolation between facilitators -------------------------------------------------------------

# (method, url name, which of bob's activities the URL names, data)
FACILITATOR_URLS = [
    ("get", "session_edit", None, {}),
    ("post", "session_edit", None, {"title": "Taken over", "anonymity_threshold": "2"}),
    ("get", "activity_new_form", None, {"kind": "scale"}),
    ("post", "activity_add", None, {"kind": "open_text", "prompt": "Planted question"}),
    ("get", "activity_edit", 0, {}),
    ("post", "activity_edit", 0, {"prompt": "Changed by alice", "options": "A\nB"}),
    ("post", "activity_move", 1, {"direction": "up"}),
    ("post", "activity_move", 0, {"direction": "down"}),
    ("post", "activity_delete", 0, {}),
    ("post", "session_start", None, {}),
    ("post", "session_end", None, {}),
    ("get", "session_control", None, {}),
    ("get", "session_projector", None, {}),
    ("get", "session_qr", None, {}),
    ("get", "session_summary", None, {}),
]


def everything_about(session: Session) -> tuple:
    return (
        Session.objects.filter(pk=session.pk).values().get(),
        list(Activity.objects.filter(session=session).order_by("pk").values()),
        Participant.objects.filter(session=session).count(),
    )


@pytest.mark.parametrize("bobs_session_is_live", [False, True], ids=["draft", "live"])
@pytest.mark.parametrize(
    ("method", "name", "activity_index", "data"),
    FACILITATOR_URLS,
    ids=[
        f"{method}-{name}-{data.get('direction', '')}" for method, name, _, data in FACILITATOR_URLS
    ],
)
def test_another_facilitators_session_is_not_found_and_left_unchanged(
    client, facilitator, other_facilitator, bobs_session_is_live, method, name, activity_index, data
):
    bobs = Session.objects.create(facilitator=other_facilitator, title="Circle of Bob")
    activities = [
        add_activity(bobs, Kind.SINGLE_CHOICE, "First of Bob"),
        add_activity(bobs, Kind.SCALE, "Second of Bob"),
    ]
    if bobs_session_is_live:
        bobs.start()
    before = everything_about(bobs)
    args = [bobs.pk] if activity_index is None else [bobs.pk, activities[activity_index].pk]
    client.force_login(facilitator)

    response = getattr(client, method)(reverse(name, args=args), data)

    assert response.status_code == 404
    assert everything_about(bobs) == before
    assert "Circle of Bob" not in page(response)


def test_the_owner_reaches_the_same_urls(client, other_facilitator):
    """The counterpart of the 404s above: the URLs work for the session's own facilitator."""
    bobs = Session.objects.create(facilitator=other_facilitator, title="Circle of Bob")
    activity = add_activity(bobs, Kind.SINGLE_CHOICE, "First of Bob")
    bobs.start()
    client.force_login(other_facilitator)

    for name, args in [
        ("session_edit", [bobs.pk]),
        ("activity_new_form", [bobs.pk]),
        ("activity_edit", [bobs.pk, activity.pk]),
        ("session_control", [bobs.pk]),
        ("session_projector", [bobs.pk]),
        ("session_qr", [bobs.pk]),
        ("session_summary", [bobs.pk]),
    ]:
        assert client.get(reverse(name, args=args)).status_code == 200, name


def test_an_activity_of_another_session_is_not_found_under_the_facilitators_own_session(
    client, facilitator, other_facilitator, session
):
    bobs = Session.objects.create(facilitator=other_facilitator, title="Circle of Bob")
    bobs_activity = add_activity(bobs, Kind.OPEN_TEXT, "Secret of Bob")
    client.force_login(facilitator)

    edit = client.post(
        reverse("activity_edit", args=[session.pk, bobs_activity.pk]), {"prompt": "Mine now"}
    )
    delete = client.post(reverse("activity_delete", args=[session.pk, bobs_activity.pk]))

    assert edit.status_code == 404
    assert delete.status_code == 404
    bobs_activity.refresh_from_db()
    assert bobs_activity.prompt == "Secret of Bob"


# Agenda editing ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            {"kind": "single_choice", "prompt": "Tea or coffee?", "options": "Tea\nCoffee\n"},
            {"options": ["Tea", "Coffee"]},
        ),
        (
            {
                "kind": "multiple_choice",
                "prompt": "What helps you rest?",
                "options": "Walking\r\n  Music   at night \r\n\r\nSleep",
            },
            {"options": ["Walking", "Music at night", "Sleep"]},
        ),
        (
            {
                "kind": "scale",
                "prompt": "How rested do you feel?",
                "scale_min": "0",
                "scale_max": "5",
                "scale_min_label": "Exhausted",
                "scale_max_label": "Fresh",
            },
            {
                "scale_min": 0,
                "scale_max": 5,
                "scale_min_label": "Exhausted",
                "scale_max_label": "Fresh",
            },
        ),
        ({"kind": "open_text", "prompt": "What would you like to share?"}, {}),
        ({"kind": "word_cloud", "prompt": "One word for today"}, {}),
        (
            {
                "kind": "instruction",
                "prompt": "Breathe together",
                "body": "In for four, out for six.",
                "timer_seconds": "60",
            },
            {"body": "In for four, out for six.", "timer_seconds": 60},
        ),
    ],
    ids=lambda value: value.get("kind", "") if isinstance(value, dict) else "",
)
def test_a_facilitator_adds_each_kind_of_activity_and_gets_the_agenda_editor_back(
    client, facilitator, session, data, expected
):
    client.force_login(facilitator)

    response = client.post(reverse("activity_add", args=[session.pk]), data, **HTMX)

    assert response.status_code == 200
    html = page(response)
    assert html.startswith('<section id="agenda-editor"')
    assert "<html" not in html
    assert data["prompt"] in html
    assert response["HX-Retarget"] == "#agenda-editor"
    assert response["HX-Reswap"] == "outerHTML"
    activity = session.activities.get()
    assert activity.kind == data["kind"]
    assert activity.prompt == data["prompt"]
    for field, value in expected.items():
        assert getattr(activity, field) == value, field


def test_an_emotion_check_in_starts_with_the_default_feelings(client, facilitator, session):
    client.force_login(facilitator)

    form = client.get(reverse("activity_new_form", args=[session.pk]), {"kind": "emotion"}, **HTMX)
    offered = re.search(r'<textarea[^>]*name="options"[^>]*>\n?(.*?)</textarea>', page(form), re.S)
    assert offered is not None
    assert offered.group(1).splitlines() == DEFAULT_FEELINGS

    response = client.post(
        reverse("activity_add", args=[session.pk]),
        {"kind": "emotion", "prompt": "How do you arrive?", "options": offered.group(1)},
        **HTMX,
    )

    assert response.status_code == 200
    activity = session.activities.get()
    assert activity.kind == Kind.EMOTION
    assert activity.options == DEFAULT_FEELINGS


def test_without_htmx_adding_an_activity_redirects_to_the_editor(client, facilitator, session):
    client.force_login(facilitator)

    response = client.post(
        reverse("activity_add", args=[session.pk]), {"kind": "open_text", "prompt": "Anything?"}
    )

    assert response.status_code == 302
    assert response.url == reverse("session_edit", args=[session.pk])
    assert agenda_prompts(session) == ["Anything?"]


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (
            {"kind": "single_choice", "prompt": "Tea or coffee?", "options": "Tea"},
            "Give at least two options, one per line.",
        ),
        (
            {"kind": "multiple_choice", "prompt": "Tea or coffee?", "options": "Tea\n tea "},
            "Each option must be different.",
        ),
        (
            {"kind": "scale", "prompt": "How rested?", "scale_min": "1", "scale_max": "1"},
            "The highest value must be above the lowest.",
        ),
        ({"kind": "open_text", "prompt": "   "}, "This field is required."),
        (
            {"kind": "instruction", "prompt": "Breathe", "body": "Slowly.", "timer_seconds": "2"},
            "Ensure this value is greater than or equal to 5.",
        ),
    ],
    ids=["one-option", "duplicate-options", "scale-min-not-below-max", "blank-prompt", "timer-2s"],
)
def test_invalid_activity_input_is_refused_with_the_reason_and_nothing_created(
    client, facilitator, session, data, error
):
    client.force_login(facilitator)

    response = client.post(reverse("activity_add", args=[session.pk]), data, **HTMX)

    assert response.status_code == 422
    html = page(response)
    assert error in html
    assert 'class="field-error"' in html
    assert not Activity.objects.exists()


def test_without_htmx_invalid_activity_input_is_a_400(client, facilitator, session):
    client.force_login(facilitator)

    response = client.post(
        reverse("activity_add", args=[session.pk]),
        {"kind": "single_choice", "prompt": "Tea?", "options": "Tea"},
    )

    assert response.status_code == 400
    assert "Give at least two options, one per line." in page(response)
    assert not Activity.objects.exists()


def submitted_kind(html: str) -> str:
    """The kind a browser would send: the selected option, or the first when none is selected."""
    select = re.search(r'<select[^>]*name="kind"[^>]*>(.*?)</select>', html, re.S)
    assert select is not None
    options = re.findall(r'<option value="([^"]*)"( selected)?>', select.group(1))
    picked = [value for value, selected in options if selected]
    assert len(picked) <= 1
    return picked[0] if picked else options[0][0]


def test_the_kind_select_swaps_in_the_fields_of_that_kind(client, facilitator, session):
    client.force_login(facilitator)

    response = client.get(
        reverse("activity_new_form", args=[session.pk]), {"kind": "scale"}, **HTMX
    )

    assert response.status_code == 200
    html = page(response)
    assert html.startswith('<form id="activity-new-form"')
    assert 'name="scale_min"' in html
    assert 'name="scale_max"' in html
    assert "Lowest value" in html
    assert 'name="options"' not in html
    # The select must show the picked kind, or the form posts another kind than the fields shown.
    assert submitted_kind(html) == "scale"


def test_changing_the_kind_keeps_the_prompt_already_typed(client, facilitator, session):
    client.force_login(facilitator)

    response = client.get(
        reverse("activity_new_form", args=[session.pk]),
        {"kind": "word_cloud", "prompt": "One word for tonight"},
        **HTMX,
    )

    assert 'value="One word for tonight"' in page(response)


def test_a_refused_scale_comes_back_still_set_to_scale(client, facilitator, session):
    client.force_login(facilitator)

    response = client.post(
        reverse("activity_add", args=[session.pk]),
        {"kind": "scale", "prompt": "", "scale_min": "1", "scale_max": "5"},
        **HTMX,
    )

    assert response.status_code == 422
    html = page(response)
    assert 'name="scale_min"' in html
    assert submitted_kind(html) == "scale"


def test_an_unknown_kind_falls_back_to_single_choice(client, facilitator, session):
    client.force_login(facilitator)

    response = client.get(
        reverse("activity_new_form", args=[session.pk]), {"kind": "teleport"}, **HTMX
    )

    html = page(response)
    assert submitted_kind(html) == "single_choice"
    assert 'name="options"' in html
    assert 'name="scale_min"' not in html


def test_a_facilitator_edits_an_activity_prompt(client, facilitator, session):
    activity = add_activity(session, Kind.SINGLE_CHOICE, "Did you sleep?")
    client.force_login(facilitator)

    form = client.get(reverse("activity_edit", args=[session.pk, activity.pk]), **HTMX)
    assert form.status_code == 200
    assert 'value="Did you sleep?"' in page(form)

    response = client.post(
        reverse("activity_edit", args=[session.pk, activity.pk]),
        {"prompt": "Did you sleep well?", "options": "Yes\nNo\nNot sure"},
        **HTMX,
    )

    assert response.status_code == 200
    assert page(response).startswith('<section id="agenda-editor"')
    assert "Did you sleep well?" in page(response)
    activity.refresh_from_db()
    assert activity.prompt == "Did you sleep well?"


def test_a_facilitator_plans_the_minutes_of_their_own_steps(client, facilitator, session):
    client.force_login(facilitator)
    url = reverse("activity_add", args=[session.pk])
    client.post(
        url, {"kind": "open_text", "prompt": "What helped?", "planned_minutes": "5"}, **HTMX
    )
    response = client.post(
        url, {"kind": "instruction", "prompt": "Pause", "body": "Breathe.", "planned_minutes": "0"}
    )
    assert "Ensure this value is greater than or equal to 1." in page(response)

    (added,) = session.activities.all()
    assert added.suggested_seconds == 300
    assert "About 5 min in all" in page(client.get(reverse("session_edit", args=[session.pk])))

    edit = reverse("activity_edit", args=[session.pk, added.pk])
    assert 'name="planned_minutes" value="5"' in page(client.get(edit, **HTMX))
    client.post(edit, {"prompt": "What helped?", "planned_minutes": "8"}, **HTMX)
    added.refresh_from_db()
    assert added.suggested_seconds == 480
    client.post(edit, {"prompt": "What helped?", "planned_minutes": ""}, **HTMX)
    added.refresh_from_db()
    assert added.suggested_seconds is None


def test_editing_a_library_step_keeps_its_planned_seconds_unless_the_minutes_change(
    client, facilitator, session
):
    step = add_activity(session, Kind.SCALE, "How connected?", suggested_seconds=90)
    client.force_login(facilitator)
    edit = reverse("activity_edit", args=[session.pk, step.pk])
    assert 'name="planned_minutes" value="2"' in page(client.get(edit, **HTMX))
    fields = {"prompt": "How connected now?", "scale_min": "1", "scale_max": "10"}

    client.post(edit, {**fields, "planned_minutes": "2"}, **HTMX)

    step.refresh_from_db()
    assert (step.prompt, step.suggested_seconds) == ("How connected now?", 90)


def test_editing_a_step_keeps_the_card_drawn_meanwhile(live_session):
    """The edit read the activity; a card was drawn before it saved: the card stays drawn."""
    deck = "What made you smile this week?\nWho do you miss?\nWhat helps you rest?"
    cards = add_activity(live_session, Kind.QUESTION_CARDS, "Cards", options=deck.split("\n"))
    read_by_the_edit = Activity.objects.get(pk=cards.pk)
    cards.draw_card()

    form = ActivityForm(
        {"prompt": "Question cards", "options": deck}, instance=read_by_the_edit, kind=cards.kind
    )
    assert form.is_valid(), form.errors
    form.save()

    cards.refresh_from_db()
    assert cards.prompt == "Question cards"
    assert len(cards.cards_drawn) == 1


def test_an_invalid_edit_is_refused_with_the_reason(client, facilitator, session):
    activity = add_activity(session, Kind.SINGLE_CHOICE, "Did you sleep?")
    client.force_login(facilitator)

    response = client.post(
        reverse("activity_edit", args=[session.pk, activity.pk]),
        {"prompt": "Did you sleep?", "options": "Only one"},
        **HTMX,
    )

    assert response.status_code == 422
    assert "Give at least two options, one per line." in page(response)
    activity.refresh_from_db()
    assert activity.options == ["Yes", "No", "Not sure"]


def options_textarea(html: str) -> str:
    found = re.search(r'<textarea[^>]*name="options"[^>]*>', html)
    assert found is not None
    return found.group(0)


def test_options_can_still_change_while_nobody_has_answered(
    client, facilitator, live_session, choice_activity
):
    client.force_login(facilitator)
    url = reverse("activity_edit", args=[live_session.pk, choice_activity.pk])

    form = client.get(url, **HTMX)
    response = client.post(url, {"prompt": "Colours?", "options": "Red\nBlue"}, **HTMX)

    assert "disabled" not in options_textarea(page(form))
    assert response.status_code == 200
    choice_activity.refresh_from_db()
    assert choice_activity.options == ["Red", "Blue"]


def test_once_answered_the_options_are_disabled_and_cannot_be_changed(
    client, facilitator, live_session, choice_activity, participant
):
    answer_with(live_session, choice_activity, [participant], [{"choice": "0"}])
    client.force_login(facilitator)
    url = reverse("activity_edit", args=[live_session.pk, choice_activity.pk])

    form = client.get(url, **HTMX)
    response = client.post(url, {"prompt": "Did you rest?", "options": "Red\nBlue"}, **HTMX)

    assert re.search(r"\bdisabled\b", options_textarea(page(form)))
    assert "People have answered already" in page(form)
    assert response.status_code == 200
    choice_activity.refresh_from_db()
    assert choice_activity.prompt == "Did you rest?"
    assert choice_activity.options == ["Yes", "No", "Not sure"]
    assert Answer.objects.get().value == [0]


def test_once_answered_the_scale_ends_cannot_be_changed(
    client, facilitator, live_session, participant
):
    scale = add_activity(live_session, Kind.SCALE, "How rested?", scale_min=1, scale_max=5)
    answer_with(live_session, scale, [participant], [{"value": "4"}])
    client.force_login(facilitator)

    response = client.post(
        reverse("activity_edit", args=[live_session.pk, scale.pk]),
        {"prompt": "How rested now?", "scale_min": "0", "scale_max": "10"},
        **HTMX,
    )

    assert response.status_code == 200
    scale.refresh_from_db()
    assert scale.prompt == "How rested now?"
    assert (scale.scale_min, scale.scale_max) == (1, 5)


@pytest.fixture
def agenda(session) -> list[Activity]:
    return [
        add_activity(session, Kind.OPEN_TEXT, "First"),
        add_activity(session, Kind.WORD_CLOUD, "Second"),
        add_activity(session, Kind.SCALE, "Third"),
    ]


def order_in(html: str, prompts: list[str]) -> list[str]:
    return sorted(prompts, key=lambda prompt: html.index(f'<span class="agenda-prompt">{prompt}'))


@pytest.mark.parametrize(
    ("moved", "direction", "expected"),
    [(2, "up", ["First", "Third", "Second"]), (0, "down", ["Second", "First", "Third"])],
)
def test_moving_an_activity_reorders_the_agenda(
    client, facilitator, session, agenda, moved, direction, expected
):
    client.force_login(facilitator)

    response = client.post(
        reverse("activity_move", args=[session.pk, agenda[moved].pk]),
        {"direction": direction},
        **HTMX,
    )

    assert response.status_code == 200
    assert agenda_prompts(session) == expected
    assert order_in(page(response), ["First", "Second", "Third"]) == expected


def exercise(session: Session, name: str, prompts: list[str]) -> list[Activity]:
    """A copy of a library exercise on the agenda: steps with the same source, in a row."""
    return [add_activity(session, Kind.INSTRUCTION, prompt, source=name) for prompt in prompts]


def test_an_exercise_moves_as_one_past_a_step_and_past_another_exercise(
    client, facilitator, session
):
    add_activity(session, Kind.SCALE, "Mine")
    check_in = exercise(session, "check-in v3", ["Arrive", "Breathe", "Share"])
    exercise(session, "check-out v2", ["Look back", "Take away"])
    client.force_login(facilitator)

    def move(step: Activity, direction: str):
        url = reverse("activity_move", args=[session.pk, step.pk])
        return client.post(url, {"direction": direction, "block": "exercise"}, **HTMX)

    response = move(check_in[0], "up")
    assert response.status_code == 200
    assert agenda_prompts(session) == [
        "Arrive",
        "Breathe",
        "Share",
        "Mine",
        "Look back",
        "Take away",
    ]
    editor = page(response)
    assert editor.count("This step starts an exercise of") == 2  # not on a step of one's own
    assert "This step starts an exercise of 3 steps:" in editor
    assert re.search(r'id="move-exercise-up-\d+"[^>]*disabled', editor)  # at the top now

    move(check_in[0], "down")
    move(check_in[0], "down")  # past the whole check-out, not into it
    assert agenda_prompts(session) == [
        "Mine",
        "Look back",
        "Take away",
        "Arrive",
        "Breathe",
        "Share",
    ]
    # Its own step's arrows still move one step, into the exercise if asked.
    client.post(
        reverse("activity_move", args=[session.pk, check_in[0].pk]), {"direction": "up"}, **HTMX
    )
    assert agenda_prompts(session)[2:4] == ["Arrive", "Take away"]


def test_two_copies_of_one_exercise_in_a_row_move_apart(client, facilitator, session):
    first = exercise(session, "check-in v3", ["Arrive", "Share"])
    second = exercise(session, "check-in v3", ["Arrive", "Share"])
    client.force_login(facilitator)

    client.post(
        reverse("activity_move", args=[session.pk, second[0].pk]),
        {"direction": "up", "block": "exercise"},
        **HTMX,
    )

    order = [step.pk for step in session.activities_in_order()]
    assert order == [second[0].pk, second[1].pk, first[0].pk, first[1].pk]


def test_a_move_of_something_else_than_a_step_or_an_exercise_is_refused(
    client, facilitator, session, agenda
):
    client.force_login(facilitator)

    response = client.post(
        reverse("activity_move", args=[session.pk, agenda[1].pk]),
        {"direction": "up", "block": "session"},
        **HTMX,
    )

    assert response.status_code == 400
    assert agenda_prompts(session) == ["First", "Second", "Third"]


def test_a_move_without_a_direction_is_refused(client, facilitator, session, agenda):
    client.force_login(facilitator)

    response = client.post(
        reverse("activity_move", args=[session.pk, agenda[0].pk]), {"direction": "left"}, **HTMX
    )

    assert response.status_code == 400
    assert agenda_prompts(session) == ["First", "Second", "Third"]


def test_deleting_an_activity_removes_it_from_the_agenda(client, facilitator, session, agenda):
    client.force_login(facilitator)

    response = client.post(reverse("activity_delete", args=[session.pk, agenda[1].pk]), **HTMX)

    assert response.status_code == 200
    assert agenda_prompts(session) == ["First", "Third"]
    assert "Second" not in page(response)
    assert "Third" in page(response)


def test_an_ended_sessions_agenda_stays_as_it_was_run(client, facilitator, session, agenda):
    """Its summary shows answers under each question: a question reworded, moved or deleted
    afterwards would make the record say what the room was never asked."""
    load_library()
    session.start()
    session.end()
    client.force_login(facilitator)
    first = agenda[0]
    changes = [
        ("activity_edit", [first.pk], {"prompt": "Something else", "kind": first.kind}),
        ("activity_move", [first.pk], {"direction": "down"}),
        ("activity_delete", [first.pk], {}),
        ("activity_add", [], {"kind": "scale", "prompt": "Added later"}),
        ("exercise_add", [Exercise.objects.first().pk], {}),
    ]
    for name, args, data in changes:
        response = client.post(reverse(name, args=[session.pk, *args]), data)
        assert response.status_code == 403, name
        assert "its agenda stays as it was run" in page(response)
    assert client.get(reverse("activity_new_form", args=[session.pk])).status_code == 403
    assert agenda_prompts(session) == ["First", "Second", "Third"]

    editor = page(client.get(reverse("session_edit", args=[session.pk])))
    assert "its agenda stays as it was run" in editor
    assert reverse("activity_edit", args=[session.pk, first.pk]) not in editor
    assert "Add from the exercise library" not in editor
    assert "Save this agenda as a plan" in editor


def test_a_page_that_is_not_there_says_so_with_a_way_back(client, facilitator):
    client.force_login(facilitator)

    response = client.get("/sessions/987654/summary/")

    assert response.status_code == 404
    assert "Not found" in page(response) and reverse("dashboard") in page(response)
    assert "attune.css" in page(response)  # the site's own page, with its header


def test_agenda_urls_that_change_things_refuse_a_get(client, facilitator, session, agenda):
    client.force_login(facilitator)

    move = client.get(reverse("activity_move", args=[session.pk, agenda[0].pk]))
    delete = client.get(reverse("activity_delete", args=[session.pk, agenda[0].pk]))
    start = client.get(reverse("session_start", args=[session.pk]))

    assert (move.status_code, delete.status_code, start.status_code) == (405, 405, 405)
    assert agenda_prompts(session) == ["First", "Second", "Third"]
    session.refresh_from_db()
    assert session.status == Session.Status.DRAFT


# Starting and running ------------------------------------------------------------------------


def test_starting_makes_the_session_live_with_a_code_and_opens_the_control_view(
    client, facilitator, session
):
    client.force_login(facilitator)

    response = client.post(reverse("session_start", args=[session.pk]))

    session.refresh_from_db()
    assert session.is_live
    assert len(session.join_code) == 6
    assert response.status_code == 302
    assert response.url == reverse("session_control", args=[session.pk])


def test_starting_a_session_while_another_is_live_says_which_one(client, facilitator, session):
    Session.objects.create(facilitator=facilitator, title="Last week").start()
    client.force_login(facilitator)

    response = client.post(reverse("session_start", args=[session.pk]), follow=True)

    assert "Your session “Last week” is still live too" in page(response)


def test_starting_a_session_says_nothing_of_another_facilitators_live_one(
    client, facilitator, session
):
    someone_else = User.objects.create_user("someone-else")
    Session.objects.create(facilitator=someone_else, title="Theirs").start()
    client.force_login(facilitator)

    response = client.post(reverse("session_start", args=[session.pk]), follow=True)

    assert "is still live too" not in page(response)


def test_the_control_view_shows_the_code_and_the_controls(client, facilitator, live_session):
    client.force_login(facilitator)

    response = client.get(reverse("session_control", args=[live_session.pk]))

    assert response.status_code == 200
    html = page(response)
    assert live_session.join_code in html
    assert f"/join/{live_session.join_code}/" in html
    assert "ws-send" in html
    assert "End session" in html


def test_a_private_reflection_offers_nothing_to_show_on_the_projector(
    client, facilitator, live_session
):
    reflection = add_activity(
        live_session, Activity.Kind.OPEN_TEXT, "My first small step", private_results=True
    )
    live_session.open_activity(reflection)
    texts = ["Call my sister", "Say hello to a neighbour", "Join the walking group", "Rest", "Cook"]
    for text in texts:  # enough for an open text's threshold
        live_session.add_participant()[0].answer(reflection.pk, {"text": text})
    client.force_login(facilitator)

    html = page(client.get(reverse("session_control", args=[live_session.pk])))

    assert "Say hello to a neighbour" in html  # the facilitator reads them
    assert "never shown on the projector" in html
    assert "Show on projector" not in html
    assert "On the projector" not in html
    assert "waiting for your approval" not in html


def test_the_projector_shows_the_code_and_qr_but_no_facilitator_controls(
    client, facilitator, live_session, choice_activity
):
    live_session.open_activity(choice_activity)
    client.force_login(facilitator)

    response = client.get(reverse("session_projector", args=[live_session.pk]))

    assert response.status_code == 200
    html = page(response)
    assert live_session.join_code in html
    assert re.search(
        rf'<img[^>]*src="{re.escape(reverse("session_qr", args=[live_session.pk]))}"', html
    )
    assert "Did you sleep well?" in html
    assert "ws-send" not in html
    assert "End session" not in html
    assert reverse("session_end", args=[live_session.pk]) not in html


def test_the_qr_code_is_an_svg_image(client, facilitator, live_session):
    client.force_login(facilitator)

    response = client.get(reverse("session_qr", args=[live_session.pk]))

    assert response.status_code == 200
    assert response["Content-Type"] == "image/svg+xml"
    assert b"<svg" in response.content


def test_a_draft_has_no_qr_code(client, facilitator, session):
    client.force_login(facilitator)

    assert client.get(reverse("session_qr", args=[session.pk])).status_code == 404


@pytest.mark.parametrize("name", ["session_control", "session_projector"])
def test_a_drafts_live_views_redirect_to_its_editor(client, facilitator, session, name):
    client.force_login(facilitator)

    response = client.get(reverse(name, args=[session.pk]))

    assert response.status_code == 302
    assert response.url == reverse("session_edit", args=[session.pk])


@pytest.mark.parametrize("name", ["session_control", "session_projector"])
def test_an_ended_sessions_live_views_redirect_to_its_summary(
    client, facilitator, live_session, name
):
    live_session.end()
    client.force_login(facilitator)

    response = client.get(reverse(name, args=[live_session.pk]))

    assert response.status_code == 302
    assert response.url == reverse("session_summary", args=[live_session.pk])


# Joining -------------------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["/", "/join/"])
def test_the_join_page_asks_for_the_session_code(client, db, url):
    response = client.get(url)

    assert response.status_code == 200
    html = page(response)
    assert re.search(r'<label for="id_code">Session code</label>', html)
    assert 'name="code"' in html
    assert re.search(r"<button[^>]*>Join</button>", html)


def test_a_code_typed_in_lower_case_with_spaces_and_dashes_finds_the_session(client, live_session):
    response = client.post(reverse("join"), {"code": messy(live_session.join_code)})

    assert response.status_code == 302
    assert response.url == f"/join/{live_session.join_code}/"
    assert not participant_cookies(response)


def test_an_unknown_code_is_refused_with_a_clear_message(client, live_session):
    unknown = "ZZZZZZ" if live_session.join_code != "ZZZZZZ" else "YYYYYY"

    response = client.post(reverse("join"), {"code": unknown})

    assert response.status_code == 400
    assert "No session has that code. Check the code on the screen and try again." in page(response)
    assert not participant_cookies(response)
    assert not Participant.objects.exists()


def test_an_ended_sessions_code_is_refused_with_a_clear_message(client, live_session):
    live_session.end()

    response = client.post(reverse("join"), {"code": live_session.join_code.lower()})

    assert response.status_code == 400
    assert "This session has ended. Thank you for taking part." in page(response)
    assert not participant_cookies(response)


def test_a_draft_session_cannot_be_joined(client, session):
    # A draft has no code to type; even one planted in the database does not open it.
    Session.objects.filter(pk=session.pk).update(join_code="DRAFT2")

    typed = client.post(reverse("join"), {"code": "draft2"})
    opened = client.get(reverse("participant_entry", args=["DRAFT2"]))
    consented = client.post(reverse("participant_entry", args=["DRAFT2"]))

    assert typed.status_code == 400
    assert "No session has that code." in page(typed)
    assert opened.status_code == 404
    assert "No session has that code." in page(opened)
    assert consented.status_code == 404
    for response in (typed, opened, consented):
        assert not participant_cookies(response)
    assert not Participant.objects.exists()


def test_a_session_closed_to_joining_refuses_new_phones_with_a_clear_message(client, live_session):
    live_session.set_joins_locked(True)
    message = "This session is not taking new participants right now."

    typed = client.post(reverse("join"), {"code": live_session.join_code})
    opened = client.get(reverse("participant_entry", args=[live_session.join_code]))
    consented = client.post(reverse("participant_entry", args=[live_session.join_code]))

    assert typed.status_code == 400
    assert message in page(typed)
    assert opened.status_code == 404
    assert message in page(opened)
    assert consented.status_code == 404
    assert message in page(consented)
    for response in (typed, opened, consented):
        assert not participant_cookies(response)
    assert not Participant.objects.exists()


def test_a_phone_already_in_a_session_closed_to_joining_gets_back_in(client, live_session):
    client.post(reverse("participant_entry", args=[live_session.join_code]))
    pseudonym = Participant.objects.get().pseudonym
    live_session.set_joins_locked(True)

    typed = client.post(reverse("join"), {"code": live_session.join_code})
    phone = client.get(reverse("participant_entry", args=[live_session.join_code]))

    assert typed.status_code == 302
    assert pseudonym in page(phone)


def test_the_join_link_shows_the_consent_screen_first(client, live_session):
    response = client.get(reverse("participant_entry", args=[live_session.join_code.lower()]))

    assert response.status_code == 200
    html = page(response)
    assert "Tuesday circle" in html
    assert re.search(r"\banonymous\b", html)
    assert re.search(r"\bpass\b", html)
    assert "I understand, join" in html
    assert not Participant.objects.exists()
    assert not participant_cookies(response)


def csrf_tokens_in(html: str) -> set[str]:
    return set(re.findall(r'(?:csrfmiddlewaretoken" value="|"X-CSRFToken": ")([^"]+)', html))


def test_a_room_gets_one_consent_page_each_with_its_own_token_and_each_phone_joins(
    live_session, django_assert_num_queries
):
    # A room scanning the QR code together: the page is rendered once, not once per phone.
    url = reverse("participant_entry", args=[live_session.join_code])
    first, second = Client(enforce_csrf_checks=True), Client(enforce_csrf_checks=True)
    first_page = page(first.get(url))
    with django_assert_num_queries(0):
        second_page = page(second.get(url))

    first_tokens, second_tokens = csrf_tokens_in(first_page), csrf_tokens_in(second_page)
    assert len(first_tokens) == len(second_tokens) == 1
    assert first_tokens != second_tokens
    assert first_page.replace(first_tokens.pop(), "") == second_page.replace(
        second_tokens.pop(), ""
    )
    for phone, html in ((first, first_page), (second, second_page)):
        token = csrf_tokens_in(html).pop()
        assert phone.post(url, {"csrfmiddlewaretoken": token}).status_code == 302
    assert Participant.objects.filter(session=live_session).count() == 2
    # Each page's token is its own phone's: another phone's is refused.
    third = Client(enforce_csrf_checks=True)
    third.get(url)
    assert third.post(url, {"csrfmiddlewaretoken": token}).status_code == 403


def test_a_change_to_the_session_shows_on_the_next_consent_page(client, live_session):
    url = reverse("participant_entry", args=[live_session.join_code])
    assert "Tuesday circle" in page(client.get(url))

    live_session.title = "<script>alert(1)</script> circle"
    live_session.save(update_fields=["title"])

    for _ in range(2):  # rendered, then the copy kept
        html = page(client.get(url))
        assert "&lt;script&gt;alert(1)&lt;/script&gt; circle" in html
        assert "<script>alert" not in html


def test_in_a_group_that_keeps_nicknames_each_phone_gets_its_own_consent_page(
    live_session, facilitator
):
    live_session.group = Group.objects.create(
        facilitator=facilitator, name="Evening circle", keep_pseudonyms=True
    )
    live_session.save(update_fields=["group"])
    member, token = Member.enrol(live_session.add_participant()[0])
    url = reverse("participant_entry", args=[live_session.join_code])

    newcomer = page(Client().get(url))
    returning = Client()
    returning.cookies[f"{settings.ATTUNE_MEMBER_COOKIE}_{live_session.group_id}"] = token

    assert "Keep my nickname for the next sessions of Evening circle" in newcomer
    assert f"Go on as <strong>{member.pseudonym}</strong> in Evening circle" in page(
        returning.get(url)
    )


def test_a_consent_page_kept_from_before_joins_were_locked_still_cannot_join(client, live_session):
    # Another server process locked joins: this one's copy of the page lasts a moment more,
    # and the form's answer reads the session afresh.
    url = reverse("participant_entry", args=[live_session.join_code])
    client.get(url)
    Session.objects.filter(pk=live_session.pk).update(joins_locked=True)  # no signal here

    assert "I understand, join" in page(client.get(url))
    refused = client.post(url)
    assert "not taking new participants" in page(refused)
    assert not Participant.objects.exists()


def test_a_kept_consent_page_is_given_out_only_for_a_moment(client, live_session, monkeypatch):
    monkeypatch.setattr("sessions.views.CONSENT_PAGE_SECONDS", 0.0)
    url = reverse("participant_entry", args=[live_session.join_code])
    client.get(url)
    Session.objects.filter(pk=live_session.pk).update(joins_locked=True)  # no signal here

    assert "not taking new participants" in page(client.get(url))


def test_the_consent_page_is_in_each_phones_own_language(client, live_session):
    url = reverse("participant_entry", args=[live_session.join_code])
    english = page(client.get(url, HTTP_ACCEPT_LANGUAGE="en"))
    spanish = page(client.get(url, HTTP_ACCEPT_LANGUAGE="es"))

    assert "I understand, join" in english
    assert "I understand, join" not in spanish
    assert 'lang="es"' in spanish
    assert "I understand, join" in page(client.get(url, HTTP_ACCEPT_LANGUAGE="en"))


def test_consenting_sets_a_private_cookie_and_shows_the_phone_with_a_pseudonym(
    client, live_session
):
    url = reverse("participant_entry", args=[live_session.join_code])

    response = client.post(url)

    assert response.status_code == 302
    assert response.url == url
    cookie = response.cookies[participant_cookie(live_session.join_code)]
    assert cookie.value
    assert cookie["httponly"] is True
    assert cookie["samesite"] == "Lax"
    participant = Participant.objects.get()
    assert participant.session == live_session

    phone = client.get(response.url)

    assert phone.status_code == 200
    assert f"You are <strong>{participant.pseudonym}</strong>" in page(phone)
    assert "I understand, join" not in page(phone)


def test_consent_posted_by_htmx_is_answered_with_the_phone_page_itself(
    client, live_session, choice_activity
):
    # One request and one round trip fewer on the room's Wi-Fi than following a redirect.
    live_session.open_activity(choice_activity)
    url = reverse("participant_entry", args=[live_session.join_code])

    response = client.post(url, HTTP_HX_REQUEST="true", HTTP_HX_BOOSTED="true")

    assert response.status_code == 200
    participant = Participant.objects.get()
    assert response.cookies[participant_cookie(live_session.join_code)]["httponly"] is True
    html = page(response)
    assert f"You are <strong>{participant.pseudonym}</strong>" in html
    assert f'ws-connect="/ws/join/{live_session.join_code}/"' in html
    assert "Did you sleep well?" in html
    assert "I understand, join" not in html
    # The cookie it set opens the same place again, as a reload would.
    assert f"You are <strong>{participant.pseudonym}</strong>" in page(client.get(url))
    assert Participant.objects.count() == 1


@pytest.mark.django_db(transaction=True)  # as the server runs the view: no transaction around it
@pytest.mark.parametrize("kind", [Activity.Kind.SINGLE_CHOICE, Activity.Kind.PAIR_ROUND])
def test_joining_reads_nothing_a_phone_cannot_have_yet_and_opens_no_transaction(
    client, live_session, kind
):
    # A room that scans the QR code together joins at once: each statement and round trip
    # counts. A phone that joins this moment has no answer and no pair-round group yet (its
    # socket places it in one), and its row is one INSERT, atomic by itself.
    roles = {"roles": ["Ask", "Listen"]} if kind == Activity.Kind.PAIR_ROUND else {}
    activity = add_activity(live_session, kind, "Did you sleep well?", **roles)
    live_session.open_activity(activity)
    url = reverse("participant_entry", args=[live_session.join_code])
    statements = []

    def record(execute, sql, params, many, context):
        statements.append((sql, context["connection"].in_atomic_block))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        phone = client.post(url, HTTP_HX_REQUEST="true", HTTP_HX_BOOSTED="true")

    assert "Did you sleep well?" in page(phone)
    assert Participant.objects.count() == 1
    assert [sql for sql, _ in statements if '"live_answer"' in sql or "live_pair" in sql] == []
    assert [sql for sql, in_transaction in statements if in_transaction] == []


def test_the_phone_page_reads_its_session_once(client, live_session, choice_activity):
    # A room that scans the QR code together loads this page at once: each read counts.
    live_session.open_activity(choice_activity)
    url = reverse("participant_entry", args=[live_session.join_code])
    client.post(url)

    with CaptureQueriesContext(connection) as queries:
        phone = client.get(url)

    assert "Did you sleep well?" in page(phone)
    session_reads = [
        query for query in queries.captured_queries if '"live_session"' in query["sql"]
    ]
    assert len(session_reads) == 1


def test_coming_back_with_the_cookie_keeps_the_same_pseudonym(client, live_session):
    url = reverse("participant_entry", args=[live_session.join_code])
    client.post(url)
    participant = Participant.objects.get()

    first = client.get(url)
    again = client.get(url)
    consent_again = client.post(url)

    for response in (first, again, consent_again):
        assert response.status_code == 200
        assert f"You are <strong>{participant.pseudonym}</strong>" in page(response)
    assert Participant.objects.count() == 1
    assert not participant_cookies(consent_again)


def test_the_raw_cookie_token_is_not_stored(client, live_session):
    response = client.post(reverse("participant_entry", args=[live_session.join_code]))
    token = response.cookies[participant_cookie(live_session.join_code)].value

    rows = list(Participant.objects.values())

    assert len(rows) == 1
    assert all(token not in str(value) for value in rows[0].values())
    assert rows[0]["token_hash"] == hashlib.sha256(token.encode()).hexdigest()


def test_a_cookie_from_one_session_does_not_open_another(client, facilitator, live_session):
    other = start_another_session(facilitator)
    client.post(reverse("participant_entry", args=[live_session.join_code]))
    pseudonym = Participant.objects.get().pseudonym

    response = client.get(reverse("participant_entry", args=[other.join_code]))

    assert response.status_code == 200
    assert "I understand, join" in page(response)
    assert "Thursday circle" in page(response)
    assert pseudonym not in page(response)
    assert not other.participants.exists()


def test_joining_another_session_keeps_the_place_and_the_withdrawal_in_the_first(
    client, facilitator, live_session
):
    first_url = reverse("participant_entry", args=[live_session.join_code])
    client.post(first_url)
    first = Participant.objects.get()
    live_session.end()  # the hours after it, while answers can still be withdrawn
    other = start_another_session(facilitator)

    client.post(reverse("participant_entry", args=[other.join_code]))

    assert other.participants.count() == 1
    back = page(client.get(first_url))
    assert f"You are <strong>{first.pseudonym}</strong>" in back
    assert 'value="withdraw"' in back


def test_a_phone_joined_before_cookies_were_per_session_keeps_its_place(client, live_session):
    client.post(reverse("participant_entry", args=[live_session.join_code]))
    participant = Participant.objects.get()
    name = participant_cookie(live_session.join_code)
    token = client.cookies.pop(name).value
    client.cookies[settings.ATTUNE_PARTICIPANT_COOKIE] = token  # as earlier versions set it

    response = client.get(reverse("participant_entry", args=[live_session.join_code]))

    assert f"You are <strong>{participant.pseudonym}</strong>" in page(response)


def test_typing_the_code_of_another_session_with_a_cookie_leads_to_its_consent(
    client, facilitator, live_session
):
    other = start_another_session(facilitator)
    client.post(reverse("participant_entry", args=[live_session.join_code]))

    typed = client.post(reverse("join"), {"code": other.join_code})
    response = client.get(typed.url)

    assert typed.status_code == 302
    assert "I understand, join" in page(response)


# Ending and the summary ------------------------------------------------------------------------


def test_ending_makes_the_session_ended_and_opens_the_summary(client, facilitator, live_session):
    client.force_login(facilitator)

    response = client.post(reverse("session_end", args=[live_session.pk]))

    live_session.refresh_from_db()
    assert live_session.is_ended
    assert live_session.ended_at is not None
    assert response.status_code == 302
    assert response.url == reverse("session_summary", args=[live_session.pk])


def test_ending_with_htmx_sends_the_browser_to_the_summary(client, facilitator, live_session):
    client.force_login(facilitator)

    response = client.post(reverse("session_end", args=[live_session.pk]), **HTMX)

    live_session.refresh_from_db()
    assert live_session.is_ended
    assert response["HX-Redirect"] == reverse("session_summary", args=[live_session.pk])


def test_after_the_end_the_phone_says_the_session_has_ended(client, live_session):
    url = reverse("participant_entry", args=[live_session.join_code])
    client.post(url)
    live_session.end()

    response = client.get(url)

    assert response.status_code == 200
    assert "This session has ended" in page(response)


def when(moment) -> str:
    return dateformat.format(timezone.localtime(moment), "j M Y, H:i")


def test_the_summary_shows_every_activity_with_its_result_and_the_sessions_facts(
    client, facilitator, live_session
):
    choice = add_activity(live_session, Kind.SINGLE_CHOICE, "Did you sleep well?")
    scale = add_activity(live_session, Kind.SCALE, "How rested are you?", scale_min=1, scale_max=5)
    words = add_activity(live_session, Kind.WORD_CLOUD, "One word for today")
    add_activity(live_session, Kind.INSTRUCTION, "Breathe together", body="In for four.")
    people = new_participants(live_session, 4)
    answer_with(
        live_session, choice, people, [{"choice": "0"}, {"choice": "0"}, {"choice": "1"}, None]
    )
    answer_with(live_session, scale, people, [{"value": "4"}, {"value": "4"}, {"value": "2"}, None])
    answer_with(
        live_session, words, people, [{"word": "calm"}, {"word": "Calm"}, {"word": "tired"}, None]
    )
    Session.objects.filter(pk=live_session.pk).update(
        started_at=timezone.now() - timedelta(minutes=12, seconds=5)
    )
    client.force_login(facilitator)
    client.post(reverse("session_end", args=[live_session.pk]))
    live_session.refresh_from_db()

    response = client.get(reverse("session_summary", args=[live_session.pk]))

    assert response.status_code == 200
    html = page(response)
    for prompt in ["Did you sleep well?", "How rested are you?", "One word for today"]:
        assert f"<h2>{prompt}</h2>" in html
    assert "<h2>Breathe together</h2>" in html
    assert "In for four." in html
    assert html.count("3 answered · 1 passed") == 3
    assert '<span class="bar-label">Yes</span>' in html
    assert '<span class="bar-value">2 <span class="percent">(67%)</span>' in html
    assert '<span class="bar-value">1 <span class="percent">(33%)</span>' in html
    assert "Mean <strong>3.3</strong> · Median <strong>4</strong>" in html
    assert re.search(r'<li class="word size-\d">calm<span class="sr-only"> \(2\)', html)
    assert "results-hidden" not in html
    assert "<dt>Joined</dt><dd>4</dd>" in html
    assert f"<dt>Started</dt><dd>{when(live_session.started_at)}</dd>" in html
    assert f"<dt>Ended</dt><dd>{when(live_session.ended_at)}</dd>" in html
    assert "<dt>Duration</dt><dd>12 min</dd>" in html


def test_the_summary_hides_results_below_the_anonymity_threshold(client, facilitator, live_session):
    choice = add_activity(live_session, Kind.SINGLE_CHOICE, "Did you sleep well?")
    text = add_activity(live_session, Kind.OPEN_TEXT, "What is on your mind?")
    people = new_participants(live_session, 3)
    answer_with(live_session, choice, people, [{"choice": "0"}, {"choice": "1"}, None])
    answer_with(live_session, text, people, [{"text": "My sister's visit"}, None, None])
    live_session.end()
    client.force_login(facilitator)

    html = page(client.get(reverse("session_summary", args=[live_session.pk])))

    assert "Fewer than 3 people answered, so this result stays hidden." in html
    # Open text asks for five answers, whatever the session's threshold.
    assert "Fewer than 5 people answered, so this result stays hidden." in html
    assert "bar-label" not in html
    assert '<span class="bar-value">' not in html
    assert "visit" not in html
    assert "<h2>Did you sleep well?</h2>" in html


def test_the_summary_shows_the_counts_once_the_threshold_is_reached(
    client, facilitator, live_session
):
    choice = add_activity(live_session, Kind.SINGLE_CHOICE, "Did you sleep well?")
    people = new_participants(live_session, 3)
    answer_with(live_session, choice, people, [{"choice": "0"}, {"choice": "1"}, {"choice": "0"}])
    live_session.end()
    client.force_login(facilitator)

    html = page(client.get(reverse("session_summary", args=[live_session.pk])))

    assert "results-hidden" not in html
    assert '<span class="bar-label">Yes</span>' in html
    assert '<span class="bar-value">2 <span class="percent">(67%)</span>' in html
    assert '<span class="bar-label">Not sure</span>' in html
    assert '<span class="bar-value">0 <span class="percent">(0%)</span>' in html


def test_settings_refused_leave_the_page_naming_the_session_as_saved(client, facilitator, session):
    client.force_login(facilitator)

    response = client.post(
        reverse("session_edit", args=[session.pk]),
        {"title": "Thursday circle", "anonymity_threshold": "99999999999", "retention_days": "30"},
    )

    html = page(response)
    assert "<h1>Tuesday circle</h1>" in html  # nothing was saved
    assert 'value="Thursday circle"' in html  # what was typed is kept in its field
    assert "Settings saved." not in html
    session.refresh_from_db()
    assert session.title == "Tuesday circle"


def test_saved_settings_say_so(client, facilitator, session):
    client.force_login(facilitator)
    form = {"title": "Thursday circle", "anonymity_threshold": "3", "retention_days": "30"}

    response = client.post(reverse("session_edit", args=[session.pk]), form, follow=True)

    assert "Settings saved." in page(response)
    assert "<h1>Thursday circle</h1>" in page(response)


def test_the_summary_respects_a_threshold_lowered_before_the_start(client, facilitator, session):
    client.force_login(facilitator)
    client.post(
        reverse("session_edit", args=[session.pk]),
        {"title": "Tuesday circle", "anonymity_threshold": "2", "retention_days": "30"},
    )
    session.refresh_from_db()
    session.start()
    choice = add_activity(session, Kind.SINGLE_CHOICE, "Did you sleep well?")
    people = new_participants(session, 2)
    answer_with(session, choice, people, [{"choice": "0"}, {"choice": "1"}])
    session.end()

    html = page(client.get(reverse("session_summary", args=[session.pk])))

    assert "results-hidden" not in html
    assert '<span class="bar-value">1 <span class="percent">(50%)</span>' in html


@pytest.mark.parametrize("status", ["live", "ended"])
def test_the_threshold_cannot_be_lowered_once_people_answered_under_it(
    client, facilitator, live_session, status
):
    if status == "ended":
        live_session.end()
    client.force_login(facilitator)
    url = reverse("session_edit", args=[live_session.pk])

    response = client.post(
        url, {"title": "Tuesday circle", "anonymity_threshold": "2", "retention_days": "30"}
    )

    assert "this can only go up" in page(response)
    live_session.refresh_from_db()
    assert live_session.anonymity_threshold == 3
    client.post(
        url, {"title": "Tuesday circle", "anonymity_threshold": "5", "retention_days": "30"}
    )
    live_session.refresh_from_db()
    assert live_session.anonymity_threshold == 5


@pytest.mark.parametrize("status", ["live", "ended"])
def test_the_days_answers_are_kept_cannot_go_up_once_people_joined_on_them(
    client, facilitator, live_session, status
):
    """The consent screen told each phone how long its answers are kept."""
    if status == "ended":
        live_session.end()
    client.force_login(facilitator)
    url = reverse("session_edit", args=[live_session.pk])
    form = {"title": "Tuesday circle", "anonymity_threshold": "3"}

    response = client.post(url, {**form, "retention_days": "3650"})

    assert "this can only go down" in page(response)
    assert "deleted 30 days after it ends" in page(response)
    live_session.refresh_from_db()
    assert live_session.retention_days == 30
    client.post(url, {**form, "retention_days": "7"})
    live_session.refresh_from_db()
    assert live_session.retention_days == 7


def test_a_draft_can_keep_its_answers_longer(client, facilitator, session):
    client.force_login(facilitator)
    form = {"title": "Tuesday circle", "anonymity_threshold": "3", "retention_days": "90"}

    client.post(reverse("session_edit", args=[session.pk]), form)

    session.refresh_from_db()
    assert session.retention_days == 90


# Escaping -------------------------------------------------------------------------------------


def test_an_open_text_answer_with_markup_is_shown_escaped_on_the_summary(
    client, facilitator, live_session
):
    live_session.auto_approve = True
    live_session.save()
    text = add_activity(live_session, Kind.OPEN_TEXT, "What is on your mind?")
    people = new_participants(live_session, 5)
    hostile = '<script>alert(1)</script> <a hx-get="/x">click</a>'
    texts = [hostile, "Rest", "Family", "Sleep", "Friends"]
    answer_with(live_session, text, people, [{"text": typed} for typed in texts])
    live_session.end()
    client.force_login(facilitator)

    html = page(client.get(reverse("session_summary", args=[live_session.pk])))

    assert "<script>alert(1)</script>" not in html
    assert "<script>alert" not in html
    assert 'hx-get="/x"' not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "hx-get=&quot;/x&quot;" in html
    assert "Family" in html


def test_a_prompt_with_markup_is_shown_escaped_in_the_agenda_editor(client, facilitator, session):
    client.force_login(facilitator)

    response = client.post(
        reverse("activity_add", args=[session.pk]),
        {"kind": "open_text", "prompt": "<script>alert(1)</script>"},
        **HTMX,
    )

    html = page(response)
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
