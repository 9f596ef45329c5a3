"""What a facilitator does with the exercise library and session plans, through the views."""

from __future__ import annotations

import pytest
import time_machine
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape

from sessions import live
from sessions.exercises.loader import LoadReport, load_library
from sessions.exercises.translations import localized_steps
from sessions.models import PLACEHOLDER, Activity, Answer, Exercise, Participant, Plan, Session
from sessions.templatetags.attune import approx_minutes, contact_links
from tests.conftest import add_activity

Kind = Activity.Kind
HTMX = {"HTTP_HX_REQUEST": "true"}
PLAN_ERROR = "Give the plan a title, and put at least one activity on the agenda."


@pytest.fixture
def library(db) -> LoadReport:
    return load_library()


def page(response) -> str:
    return response.content.decode()


def exercise(slug: str) -> Exercise:
    return Exercise.objects.filter(slug=slug).order_by("-version").first()


def library_plan(slug: str) -> Plan:
    return Plan.objects.get(owner=None, slug=slug)


def assert_matches(activities: list[Activity], steps: list[dict]) -> None:
    """Each activity holds every field value of its step (in English), in the same order."""
    assert len(activities) == len(steps)
    for activity, step in zip(activities, localized_steps(steps, "en"), strict=True):
        for field, value in step.items():
            assert getattr(activity, field) == value, f"{activity.prompt}: {field}"


def bobs_plan(other_facilitator) -> Plan:
    return Plan.objects.create(
        owner=other_facilitator,
        title="Circle plan of Bob",
        steps=[{"kind": "open_text", "prompt": "Planted by Bob", "source": ""}],
    )


# The library page --------------------------------------------------------------------------


def test_the_library_page_lists_every_exercise_with_safety_notes_and_sources(
    client, facilitator, library
):
    client.force_login(facilitator)

    response = client.get(reverse("library"))

    assert response.status_code == 200
    html = page(response)
    exercises = Exercise.objects.latest_versions()
    assert len(exercises) == library.exercises_added
    for shown in exercises:
        assert escape(shown.title) in html
        for note in shown.safety:
            assert escape(note) in html, shown.slug
        for source in shown.sources:
            assert escape(source) in html, shown.slug
    assert "not therapy and not a diagnosis" in html


def test_the_library_and_the_session_page_offer_only_the_latest_version(
    client, facilitator, session, library
):
    old = exercise("check-in")
    new = Exercise.objects.create(
        **{
            field: getattr(old, field)
            for field in ("slug", "purpose", "duration_minutes", "audience", "safety", "sources")
        },
        version=old.version + 1,
        title="Check-in, second edition",
        steps=old.steps,
        content_hash="x" * 64,
    )
    client.force_login(facilitator)

    library_page = page(client.get(reverse("library")))
    session_page = page(client.get(reverse("session_edit", args=[session.pk])))

    assert "Check-in, second edition" in library_page
    assert escape(old.title) not in library_page
    assert reverse("exercise_add", args=[session.pk, new.pk]) in session_page
    assert reverse("exercise_add", args=[session.pk, old.pk]) not in session_page


def test_the_library_page_requires_signing_in(client, library):
    response = client.get(reverse("library"))

    assert response.status_code == 302
    assert response.url == f"{reverse('login')}?next={reverse('library')}"


# Adding an exercise to a session ------------------------------------------------------------


def test_the_session_page_offers_every_exercise_to_add(client, facilitator, session, library):
    client.force_login(facilitator)

    html = page(client.get(reverse("session_edit", args=[session.pk])))

    for offered in Exercise.objects.latest_versions():
        assert escape(offered.title) in html
        assert reverse("exercise_add", args=[session.pk, offered.pk]) in html


def test_a_facilitator_adds_an_exercise_and_its_steps_join_the_end_of_the_agenda(
    client, facilitator, session, library
):
    add_activity(session, Kind.SCALE, "Warm-up")
    cards = exercise("deeper-questions")
    client.force_login(facilitator)

    response = client.post(reverse("exercise_add", args=[session.pk, cards.pk]), **HTMX)

    assert response.status_code == 200
    html = page(response)
    assert html.startswith('<section id="agenda-editor"')
    assert "<html" not in html
    assert response["HX-Retarget"] == "#agenda-editor"
    assert response["HX-Reswap"] == "outerHTML"
    first, *added = session.activities_in_order()
    assert first.prompt == "Warm-up"
    assert_matches(added, cards.steps)
    assert [activity.kind for activity in added] == [step["kind"] for step in cards.steps]
    for activity, step in zip(added, cards.steps, strict=True):
        assert activity.script == step["script"]
        assert activity.script.strip()
        assert activity.suggested_seconds == step["suggested_seconds"]
        assert activity.source == f"deeper-questions v{cards.version}"
        assert escape(activity.prompt) in html
    assert Kind.QUESTION_CARDS in [activity.kind for activity in added]
    # Said beside the button clicked, far below the agenda, and the new rows stand out.
    assert (
        f'<div hx-swap-oob="innerHTML:#added-{cards.pk}">Added {len(added)} steps to the end of '
        f'the agenda. <a href="#activity-{added[0].pk}">Show in the agenda</a></div>'
    ) in html
    assert html.count('class="is-new"') == len(added)
    assert f'<li id="activity-{first.pk}">' in html
    assert f'id="added-{cards.pk}" role="status"' in page(
        client.get(reverse("session_edit", args=[session.pk]))
    )


def test_an_exercise_can_go_before_a_step_already_on_the_agenda(
    client, facilitator, session, library
):
    """A check-out already at the end: the exercise goes before it, and the next one too."""
    add_activity(session, Kind.SCALE, "Check-in")
    check_out = add_activity(session, Kind.SCALE, "Check-out")
    client.force_login(facilitator)
    breathing, cards = exercise("calm-the-nervous-system"), exercise("deeper-questions")

    for added in (breathing, cards):
        url = reverse("exercise_add", args=[session.pk, added.pk])
        html = page(client.post(url, {"before": check_out.pk}, **HTMX))
        assert "before “Check-out”." in html
        # The place picker comes back with the agenda, still on the place just used.
        assert f'<option value="{check_out.pk}" selected>' in html

    prompts = [activity.prompt for activity in session.activities_in_order()]
    expected = [step["prompt"] for step in (*breathing.steps, *cards.steps)]
    assert prompts == ["Check-in", *expected, "Check-out"]
    positions = [activity.position for activity in session.activities_in_order()]
    assert positions == list(range(1, len(prompts) + 1))


def test_an_exercise_never_goes_inside_another_exercise(client, facilitator, session, library):
    """A group profile reads the scales before it in the same copy of its exercise: nothing
    may come between them."""
    check = exercise("emotional-intelligence-check")
    inside = session.add_steps(check.steps, source=check.label)[2]
    client.force_login(facilitator)

    edit_page = page(client.get(reverse("session_edit", args=[session.pk])))
    url = reverse("exercise_add", args=[session.pk, exercise("check-in").pk])
    html = page(client.post(url, {"before": inside.pk}, **HTMX))

    assert f'<option value="{inside.pk}"' not in edit_page
    assert edit_page.count('id="add-before"') == 1
    assert "to the end of the agenda" in html
    assert [a.source for a in session.activities_in_order()][-1].startswith("check-in")


def test_an_exercise_for_a_step_not_on_the_agenda_goes_at_the_end(
    client, facilitator, session, other_facilitator, library
):
    add_activity(session, Kind.SCALE, "Check-in")
    elsewhere = add_activity(
        Session.objects.create(facilitator=other_facilitator, title="Theirs"), Kind.SCALE
    )
    client.force_login(facilitator)
    breathing = exercise("calm-the-nervous-system")

    for before in (elsewhere.pk, "nonsense", ""):
        url = reverse("exercise_add", args=[session.pk, breathing.pk])
        assert "to the end of the agenda" in page(client.post(url, {"before": before}, **HTMX))

    assert session.activities_in_order()[0].prompt == "Check-in"
    assert [a.prompt for a in session.activities.filter(source__startswith=breathing.slug)] == [
        step["prompt"] for step in breathing.steps
    ] * 3
    assert not elsewhere.session.activities.exclude(pk=elsewhere.pk).exists()


def test_the_agenda_says_how_long_the_session_is_planned_to_take(
    client, facilitator, session, library
):
    add_activity(session, Kind.SCALE, "Warm-up", suggested_seconds=90)
    add_activity(session, Kind.SCALE, "No time given")
    client.force_login(facilitator)
    edit = reverse("session_edit", args=[session.pk])
    assert "About 1.5 min in all" in page(client.get(edit))

    breathing = exercise("calm-the-nervous-system")
    html = page(client.post(reverse("exercise_add", args=[session.pk, breathing.pk]), **HTMX))

    planned = 90 + sum(step.get("suggested_seconds") or 0 for step in breathing.steps)
    assert f"About {approx_minutes(planned)} in all" in html


def test_check_in_and_check_out_added_to_a_session_share_the_connectedness_measure(
    client, facilitator, session, library
):
    client.force_login(facilitator)

    for slug in ("check-in", "check-out"):
        url = reverse("exercise_add", args=[session.pk, exercise(slug).pk])
        assert client.post(url, **HTMX).status_code == 200

    scales = [a for a in session.activities_in_order() if a.measure == "connectedness"]
    assert [scale.source.split()[0] for scale in scales] == ["check-in", "check-out"]
    assert scales[0].prompt == scales[1].prompt


def test_adding_an_exercise_without_htmx_returns_to_the_session_page(
    client, facilitator, session, library
):
    client.force_login(facilitator)
    breathing = exercise("calm-the-nervous-system")

    response = client.post(reverse("exercise_add", args=[session.pk, breathing.pk]))

    assert response.status_code == 302
    assert response.url == reverse("session_edit", args=[session.pk])
    assert_matches(session.activities_in_order(), breathing.steps)


def test_adding_an_exercise_needs_a_post(client, facilitator, session, library):
    client.force_login(facilitator)

    response = client.get(reverse("exercise_add", args=[session.pk, exercise("check-in").pk]))

    assert response.status_code == 405
    assert not session.activities.exists()


def test_a_facilitator_cannot_add_an_exercise_to_another_facilitators_session(
    client, facilitator, other_facilitator, library
):
    bobs = Session.objects.create(facilitator=other_facilitator, title="Circle of Bob")
    client.force_login(facilitator)

    response = client.post(reverse("exercise_add", args=[bobs.pk, exercise("check-in").pk]), **HTMX)

    assert response.status_code == 404
    assert not bobs.activities.exists()


def test_adding_an_exercise_that_does_not_exist_is_not_found(client, facilitator, session, library):
    client.force_login(facilitator)
    missing = Exercise.objects.order_by("-pk").first().pk + 1

    response = client.post(reverse("exercise_add", args=[session.pk, missing]), **HTMX)

    assert response.status_code == 404
    assert not session.activities.exists()


# Plans -------------------------------------------------------------------------------------


def test_the_dashboard_lists_the_library_plans(client, facilitator, library):
    client.force_login(facilitator)

    html = page(client.get(reverse("dashboard")))

    plans = Plan.objects.filter(owner=None)
    assert plans.count() == library.plans >= 3
    for plan in plans:
        assert escape(plan.title) in html
        assert reverse("plan_use", args=[plan.pk]) in html
        assert reverse("plan_delete", args=[plan.pk]) not in html
    assert "From the library" in html


def test_a_facilitator_makes_a_session_from_a_plan_in_one_click(client, facilitator, library):
    plan = library_plan("why-is-connecting-hard")
    client.force_login(facilitator)

    response = client.post(reverse("plan_use", args=[plan.pk]))

    created = Session.objects.get(facilitator=facilitator)
    assert response.status_code == 302
    assert response.url == reverse("session_edit", args=[created.pk])
    assert created.title == plan.title
    assert created.status == Session.Status.DRAFT
    activities = created.activities_in_order()
    assert_matches(activities, plan.steps)
    assert activities[0].source.startswith("check-in v")
    assert activities[-1].source.startswith("check-out v")
    assert client.get(response.url).status_code == 200


def test_a_facilitator_cannot_use_another_facilitators_plan(
    client, facilitator, other_facilitator, library
):
    plan = bobs_plan(other_facilitator)
    client.force_login(facilitator)

    response = client.post(reverse("plan_use", args=[plan.pk]))

    assert response.status_code == 404
    assert not Session.objects.exists()


def test_using_a_plan_needs_a_post(client, facilitator, library):
    client.force_login(facilitator)

    response = client.get(reverse("plan_use", args=[library_plan("drop-in").pk]))

    assert response.status_code == 405
    assert not Session.objects.exists()


def test_a_facilitator_saves_the_agenda_as_their_own_plan(
    client, facilitator, other_facilitator, session, library
):
    session.add_steps(exercise("check-in").steps, source=exercise("check-in").label)
    add_activity(session, Kind.OPEN_TEXT, "What would help this week?", script="Ask kindly.")
    session.add_steps(exercise("check-out").steps, source=exercise("check-out").label)
    client.force_login(facilitator)

    response = client.post(
        reverse("plan_save", args=[session.pk]),
        {"title": "Tuesday as usual", "description": "Our weekly shape."},
        follow=True,
    )

    assert response.redirect_chain == [(reverse("session_edit", args=[session.pk]), 302)]
    assert "Saved as your plan “Tuesday as usual”." in page(response)
    plan = Plan.objects.get(owner=facilitator)
    assert plan.title == "Tuesday as usual"
    assert plan.description == "Our weekly shape."
    agenda = session.activities_in_order()
    assert plan.steps == [activity.as_step() for activity in agenda]
    assert [step["prompt"] for step in plan.steps] == [activity.prompt for activity in agenda]
    assert plan.steps[2]["script"] == "Ask kindly."
    assert plan.steps[0]["source"] == exercise("check-in").label
    assert plan.duration_minutes == session.suggested_minutes()
    alices_dashboard = page(client.get(reverse("dashboard")))
    assert "Tuesday as usual" in alices_dashboard
    assert reverse("plan_delete", args=[plan.pk]) in alices_dashboard
    client.force_login(other_facilitator)
    bobs_dashboard = page(client.get(reverse("dashboard")))
    assert "Tuesday as usual" not in bobs_dashboard
    assert reverse("plan_use", args=[plan.pk]) not in bobs_dashboard


def test_a_saved_plan_makes_a_session_with_the_same_agenda(client, facilitator, session, library):
    session.add_steps(exercise("how-are-you-really").steps, source="how-are-you-really v9")
    add_activity(session, Kind.SINGLE_CHOICE, "Tea or coffee?")
    client.force_login(facilitator)
    client.post(reverse("plan_save", args=[session.pk]), {"title": "Pairs night"})
    plan = Plan.objects.get(owner=facilitator)

    response = client.post(reverse("plan_use", args=[plan.pk]))

    created = Session.objects.exclude(pk=session.pk).get()
    assert response.url == reverse("session_edit", args=[created.pk])
    assert created.title == "Pairs night"
    assert [a.as_step() for a in created.activities_in_order()] == [
        a.as_step() for a in session.activities_in_order()
    ]


@pytest.mark.parametrize("title", ["", "   "], ids=["empty", "blank"])
def test_saving_a_plan_without_a_title_creates_nothing_and_says_why(
    client, facilitator, session, library, title
):
    add_activity(session, Kind.OPEN_TEXT, "What brought you here?")
    client.force_login(facilitator)

    response = client.post(reverse("plan_save", args=[session.pk]), {"title": title}, follow=True)

    assert response.status_code == 200
    assert escape(PLAN_ERROR) in page(response)
    assert not Plan.objects.filter(owner=facilitator).exists()


def test_saving_a_plan_from_an_empty_agenda_creates_nothing_and_says_why(
    client, facilitator, session, library
):
    client.force_login(facilitator)

    response = client.post(
        reverse("plan_save", args=[session.pk]), {"title": "Nothing yet"}, follow=True
    )

    assert response.status_code == 200
    assert escape(PLAN_ERROR) in page(response)
    assert not Plan.objects.filter(owner=facilitator).exists()


def test_a_facilitator_cannot_save_a_plan_from_another_facilitators_session(
    client, facilitator, other_facilitator, library
):
    bobs = Session.objects.create(facilitator=other_facilitator, title="Circle of Bob")
    add_activity(bobs, Kind.OPEN_TEXT, "Private question of Bob")
    client.force_login(facilitator)

    response = client.post(reverse("plan_save", args=[bobs.pk]), {"title": "Taken"})

    assert response.status_code == 404
    assert not Plan.objects.exclude(owner=None).exists()


def test_a_facilitator_deletes_their_own_plan(client, facilitator, library):
    plan = Plan.objects.create(owner=facilitator, title="Old plan", steps=[])
    client.force_login(facilitator)

    response = client.post(reverse("plan_delete", args=[plan.pk]))

    assert response.status_code == 302
    assert response.url == reverse("dashboard")
    assert not Plan.objects.filter(pk=plan.pk).exists()
    assert Plan.objects.filter(owner=None).count() == library.plans


@pytest.mark.parametrize("whose", ["library", "bob"])
def test_a_facilitator_cannot_delete_a_library_plan_or_another_facilitators_plan(
    client, facilitator, other_facilitator, library, whose
):
    plan = library_plan("drop-in") if whose == "library" else bobs_plan(other_facilitator)
    client.force_login(facilitator)

    response = client.post(reverse("plan_delete", args=[plan.pk]))

    assert response.status_code == 404
    assert Plan.objects.filter(pk=plan.pk).exists()


def test_deleting_a_plan_needs_a_post(client, facilitator, library):
    plan = Plan.objects.create(owner=facilitator, title="Old plan", steps=[])
    client.force_login(facilitator)

    response = client.get(reverse("plan_delete", args=[plan.pk]))

    assert response.status_code == 405
    assert Plan.objects.filter(pk=plan.pk).exists()


def test_the_emotional_intelligence_check_shows_the_group_profile_on_the_projector(
    client, facilitator, session, library
):
    check = exercise("emotional-intelligence-check")
    activities = session.add_steps(check.steps, source=check.label)
    session.start()
    people = [session.add_participant()[0] for _ in range(3)]
    scales = [activity for activity in activities if activity.kind == Activity.Kind.SCALE]
    assert len(scales) == 5
    for scale in scales:
        session.open_activity(scale)
        for person, value in zip(people, ["2", "3", "4"], strict=True):
            person.answer(scale.pk, {"value": value})
    session.open_activity(activities[-1])
    client.force_login(facilitator)
    projector = reverse("session_projector", args=[session.pk])

    html = page(client.get(projector))

    assert "Our group profile" in html
    for part in ["Self-awareness", "Self-regulation", "Social skills", "Empathy", "Motivation"]:
        assert f'<span class="bar-label">{part}</span>' in html
    assert html.count('<span class="bar-value">3.0</span>') == 5
    session.set_results_visible(False)  # "Hide results" hides the profile too
    assert 'class="profile"' not in page(client.get(projector))
    session.end()
    assert "Our group profile" in page(client.get(reverse("session_summary", args=[session.pk])))


def test_the_quick_self_check_shows_its_three_results_again_when_the_room_looks_back(
    client, facilitator, session, library
):
    check = exercise("quick-assessment")
    scale, barriers, talks, look_back = session.add_steps(check.steps, source=check.label)
    session.start()
    people = [session.add_participant()[0] for _ in range(3)]
    for activity, answers in [
        (scale, [{"value": "2"}, {"value": "3"}, {"value": "4"}]),
        (barriers, [{"choice": "0"}, {"choice": "0"}, {"choice": "4"}]),
        (talks, [{"choice": "1"}, {"choice": "1"}]),  # under the threshold of 3
    ]:
        session.open_activity(activity)
        for person, answer in zip(people, answers, strict=False):
            person.answer(activity.pk, answer)
    session.open_activity(look_back)
    client.force_login(facilitator)
    projector = reverse("session_projector", args=[session.pk])
    hidden = "Fewer than 3 people answered, so this result stays hidden."

    # The facilitator may have hidden a result while it was asked: the projector waits.
    html = page(client.get(projector))
    assert "recap-prompt" not in html
    assert "Results appear here when the facilitator shows them." in html
    control = page(client.get(reverse("session_control", args=[session.pk])))
    assert control.count('<h3 class="recap-prompt">') == 3
    assert hidden in control
    assert 'value="show_results"' in control

    session.set_results_visible(True)
    html = page(client.get(projector))

    assert look_back.prompt == "What did we notice?"
    for question in (scale, barriers, talks):
        assert f'<h2 class="recap-prompt">{escape(question.prompt)}</h2>' in html
    assert "1: Very uncomfortable · 5: Very comfortable" in html
    assert "Mean <strong>3.0</strong>" in html
    assert "Fear of being judged or turned away</span>" in html
    assert '<span class="bar-value">2 <span class="percent">(67%)</span></span>' in html
    assert hidden in html  # its question is closed: no more answers can come
    assert "Most days" not in html  # the hidden result shows none of its options


def test_the_kinder_story_step_shows_only_the_reframes_the_facilitator_shared(
    client, facilitator, session, library
):
    myths = exercise("myths-that-block-connection")
    _intro, stories, rewrite, kinder = session.add_steps(myths.steps, source=myths.label)
    session.start()
    people = [session.add_participant()[0] for _ in range(6)]  # open text shows from five
    session.open_activity(stories)
    for person in people:
        person.answer(stories.pk, {"choice": ["0"]})
    session.open_activity(rewrite)
    texts = [
        "I can be hard to know, and worth knowing",
        "Hidden by the facilitator",
        "Still waiting for approval",
        "I want to kill myself",  # flagged: for the facilitator only
        "Also waiting",
        "And one more",
    ]
    answers = [
        person.answer(rewrite.pk, {"text": text})
        for person, text in zip(people, texts, strict=True)
    ]
    session.moderate(answers[0].pk, Answer.Moderation.APPROVED)
    session.moderate(answers[1].pk, Answer.Moderation.HIDDEN)
    session.open_activity(kinder)
    session.set_results_visible(True)
    client.force_login(facilitator)

    html = page(client.get(reverse("session_projector", args=[session.pk])))

    assert escape(stories.prompt) in html
    assert escape(stories.options[0]) + "</span>" in html
    assert "I can be hard to know, and worth knowing" in html
    for text in texts[1:]:
        assert text not in html


def test_a_recap_leaves_out_private_questions_and_an_earlier_copy(session, library):
    check = exercise("quick-assessment")
    first_copy = session.add_steps(check.steps, source=check.label)
    second_copy = session.add_steps(check.steps, source=check.label)
    second_copy[1].private_results = True
    second_copy[1].save()

    assert second_copy[-1].recap_questions() == [second_copy[0], second_copy[2]]
    assert first_copy[-1].recap_questions() == first_copy[:3]
    assert first_copy[0].recap_questions() == []  # a question is never a recap
    first_copy[-1].delete()  # the first copy's recap gone, its questions stay
    assert second_copy[-1].recap_questions() == [second_copy[0], second_copy[2]]


def test_a_recap_says_a_question_skipped_in_the_session_was_not_asked(
    client, facilitator, session, library
):
    check = exercise("quick-assessment")
    steps = session.add_steps(check.steps, source=check.label)
    asked, skipped, recap = steps[0], steps[1], steps[-1]
    session.start()
    people = [session.add_participant()[0] for _ in range(3)]
    session.open_activity(asked)
    for person in people[:2]:  # too few for the result to show
        person.answer(asked.pk, {"value": "3"})
    session.open_activity(recap)
    session.set_results_visible(True)
    client.force_login(facilitator)

    html = page(client.get(reverse("session_projector", args=[session.pk])))

    questions = html.split('class="recap-question"')[1:]
    asked_html = next(q for q in questions if escape(asked.prompt) in q)
    skipped_html = next(q for q in questions if escape(skipped.prompt) in q)
    assert "Fewer than 3 people answered" in asked_html
    assert "Not asked in this session." in skipped_html
    assert "Fewer than" not in skipped_html


def test_phones_keep_the_support_details_once_shown_while_waiting_and_after_the_end(
    session, library
):
    support = exercise("more-support")
    session.add_steps(support.steps, source=support.label)
    add_activity(session, Activity.Kind.SCALE, "How connected do you feel?")
    (activity,) = session.activities.filter(kind=Activity.Kind.RESOURCES)
    activity.body = "RIGHT NOW\n- Crisis line, day and night: 116 123"
    activity.save()
    session.start()
    participant, _token = session.add_participant()

    def phone() -> str:
        return live.render_phone_stage(Participant.objects.get(pk=participant.pk))

    assert "116 123" not in phone()  # waiting before it was shown: not yet
    with time_machine.travel(timezone.now(), tick=False) as clock:
        session.open_activity(activity)
        clock.shift(90)  # a minute and a half on the wall
        session.close_activity()
    waiting = phone()
    assert "Waiting for the next activity" in waiting
    kept = waiting.split('<details class="support-kept">')[1]
    assert '<a href="tel:116123">116 123</a>' in kept
    assert "Where to find more support</summary>" in kept
    session.step(1)
    assert "support-kept" not in phone()  # a question: only the question
    session.end()
    ended = phone()
    assert "This session has ended" in ended and 'href="tel:116123"' in ended


def test_a_support_step_with_unfilled_gaps_is_pointed_out_in_the_agenda(
    client, facilitator, session, library
):
    support = exercise("more-support")
    session.add_steps(support.steps, source=support.label)
    client.force_login(facilitator)

    html = page(client.get(reverse("session_edit", args=[session.pk])))

    assert "Fill in the [bracketed] gaps before the session" in html
    activity = session.activities.get(kind=Activity.Kind.RESOURCES)
    activity.body = "Call 116 123, any time, free."
    activity.save()
    html = page(client.get(reverse("session_edit", args=[session.pk])))
    assert "bracketed" not in html


def test_a_session_with_gaps_left_starts_only_when_asked_again(
    client, facilitator, session, library
):
    support = exercise("more-support")
    session.add_steps(support.steps, source=support.label)
    add_activity(session, Activity.Kind.SCALE, "How connected do you feel?")
    client.force_login(facilitator)

    response = client.post(reverse("session_start", args=[session.pk]), follow=True)

    session.refresh_from_db()
    assert session.status == Session.Status.DRAFT
    assert response.redirect_chain[-1][0].endswith(f"/sessions/{session.pk}/#gaps")
    html = page(response)
    assert "Fill in the [bracketed] gaps first" in html
    gaps = html.split('id="gaps"')[1].split("</div>")[0]
    assert "1 step still has [bracketed] gaps to fill in" in gaps
    assert "Where to find more support" in gaps and "How connected" not in gaps
    assert 'name="start_anyway"' in gaps

    client.post(reverse("session_start", args=[session.pk]), {"start_anyway": "1"})

    session.refresh_from_db()
    assert session.status == Session.Status.LIVE


def test_a_session_without_gaps_starts_at_once_and_shows_no_list_of_gaps(
    client, facilitator, session
):
    add_activity(session, Activity.Kind.SCALE, "How connected do you feel?")
    client.force_login(facilitator)
    assert 'id="gaps"' not in page(client.get(reverse("session_edit", args=[session.pk])))

    client.post(reverse("session_start", args=[session.pk]))

    session.refresh_from_db()
    assert session.status == Session.Status.LIVE


def test_the_group_never_sees_a_support_line_whose_gap_is_not_filled_in(
    client, facilitator, session, library
):
    support = exercise("more-support")
    (activity,) = session.add_steps(support.steps, source=support.label)
    client.force_login(facilitator)

    response = client.post(
        reverse("session_start", args=[session.pk]), {"start_anyway": "1"}, follow=True
    )

    # Told at the start, on the control view, which names the step.
    assert "1 step still has [bracketed] gaps, “Where to find more support”" in page(response)
    session.refresh_from_db()
    participant, _token = session.add_participant()
    session.open_activity(activity)
    gaps = PLACEHOLDER.findall(activity.body)
    assert len(gaps) >= 5
    projector = page(client.get(reverse("session_projector", args=[session.pk])))
    phone = live.render_phone_stage(participant)
    for html in (projector, phone):
        assert not any(gap in html for gap in gaps)
        assert "RIGHT NOW" not in html  # a heading whose every line had a gap
        assert "Types of help you can ask about" in html  # a line without one
        assert "This is not medical advice" in html
    control = page(client.get(reverse("session_control", args=[session.pk])))
    assert "leave out every line of this step that still has a [bracketed] gap" in control
    assert "[Your local emergency number]" not in control.split("Your script")[0]

    activity.body = activity.body.replace("[Your local emergency number]", "112")
    activity.save()

    projector = page(client.get(reverse("session_projector", args=[session.pk])))
    assert 'RIGHT NOW<br>- Emergency services: <a href="tel:112">112</a>' in projector
    assert "Crisis line" not in projector  # still a gap


@pytest.mark.parametrize(
    ("line", "shown"),
    [
        ("Emergency: 112", 'Emergency: <a href="tel:112">112</a>'),
        (
            "Crisis line (call 116 123, day and night)",
            'Crisis line (call <a href="tel:116123">116 123</a>, day and night)',
        ),
        ("Free call or text 1737.", 'Free call or text <a href="tel:1737">1737</a>.'),
        (
            "From abroad: +44 (0)800 111 0111",
            'From abroad: <a href="tel:+448001110111">+44 (0)800 111 0111</a>',
        ),
        (
            "Write to help@example.org",
            'Write to <a href="mailto:help@example.org">help@example.org</a>',
        ),
        (
            "Directory: www.example.org/find.",
            'Directory: <a href="https://www.example.org/find" target="_blank"'
            ' rel="noopener noreferrer">www.example.org/find</a>.',
        ),
        # Not phone numbers: a date, a time, a room, "24/7", a score.
        ("Next: 12 March 2027, 18:30, room 4, 24/7", "Next: 12 March 2027, 18:30, room 4, 24/7"),
        ("Rated 4.5 of 10", "Rated 4.5 of 10"),
        ("<b>988</b>", '&lt;b&gt;<a href="tel:988">988</a>&lt;/b&gt;'),
        # The number only, never what follows it: a crisis line must dial what it says.
        ("Línea 024 (24 horas)", 'Línea <a href="tel:024">024</a> (24 horas)'),
        ("112 - day and night", '<a href="tel:112">112</a> - day and night'),
        (
            "0800 111 222 (10 to 22)",
            '<a href="tel:0800111222">0800 111 222</a> (10 to 22)',
        ),
        ("(555) 123-4567", '<a href="tel:5551234567">(555) 123-4567</a>'),
        ("call (116 123)", 'call (<a href="tel:116123">116 123</a>)'),
        ("Open 9-17, ages 18-25", "Open 9-17, ages 18-25"),
        # A number to text, not to call: the tap opens a message, with the word to send.
        ("Text SHOUT to 85258", 'Text SHOUT to <a href="sms:85258?&amp;body=SHOUT">85258</a>'),
        ("or text to 741741", 'or text to <a href="sms:741741">741741</a>'),
        ("Envía AYUDA al 717", 'Envía AYUDA al <a href="sms:717?&amp;body=AYUDA">717</a>'),
        (
            "Call 116 123 or text 07700 900456",
            'Call <a href="tel:116123">116 123</a> or text'
            ' <a href="sms:07700900456">07700 900456</a>',
        ),
        ("Call or text 0800 123 456", 'Call or text <a href="tel:0800123456">0800 123 456</a>'),
        ("Phone/text 988", 'Phone/text <a href="tel:988">988</a>'),
        ("Llama o envía un SMS al 024", 'Llama o envía un SMS al <a href="tel:024">024</a>'),
        ("Send a text message to 85258", 'Send a text message to <a href="sms:85258">85258</a>'),
        (
            "Text “SHOUT” to 85258",
            'Text “SHOUT” to <a href="sms:85258?&amp;body=SHOUT">85258</a>',
        ),
        ("SMS al 717", 'SMS al <a href="sms:717">717</a>'),
        ("1" * 40, "1" * 40),
        # An address in an address is still a web address; a script is only text.
        (
            "www.example.org/?from=https://x.org",
            '<a href="https://www.example.org/?from=https://x.org" target="_blank"'
            ' rel="noopener noreferrer">www.example.org/?from=https://x.org</a>',
        ),
        ('javascript:alert(1) "x" &', "javascript:alert(1) &quot;x&quot; &amp;"),
    ],
)
def test_a_support_line_s_numbers_and_addresses_can_be_tapped(line, shown):
    assert contact_links(line) == shown


def test_only_the_support_step_makes_numbers_into_links(session):
    """A question's "from 1 to 10" is no phone number; the support step's 116 123 is."""
    session.start()
    participant, _token = session.add_participant()
    for kind, body, link in [
        (Activity.Kind.RESOURCES, "Samaritans: 116 123", '<a href="tel:116123">116 123</a>'),
        (Activity.Kind.SCALE, "Answer from 1-10, call it 116 123", None),
    ]:
        activity = session.activities.create(kind=kind, prompt="Words", body=body)
        session.open_activity(activity)
        phone = live.render_phone_stage(participant)
        assert (link in phone) if link else ('href="tel:' not in phone)


def test_a_group_profile_leaves_out_private_scales_and_an_earlier_copy(
    client, facilitator, session, library
):
    check = exercise("emotional-intelligence-check")
    first_copy = session.add_steps(check.steps, source=check.label)
    second_copy = session.add_steps(check.steps, source=check.label)
    scales = [a for a in second_copy if a.kind == Activity.Kind.SCALE]
    scales[0].private_results = True
    scales[0].save()

    profile_scales = second_copy[-1].profile_scales()

    assert profile_scales == scales[1:]
    assert not set(profile_scales) & set(first_copy)
