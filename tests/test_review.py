"""Looking back on a session: the summary, the private notes, retention, withdrawal, deletion."""

from __future__ import annotations

import io
import re
import time
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.contrib.auth.models import User
from django.contrib.sessions.models import Session as SignIn
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from sessions import live
from sessions.consumers import CLOSE_SESSION_DELETED
from sessions.forms import NotesForm, SessionForm
from sessions.models import (
    Activity,
    Answer,
    Connection,
    FacilitatorSettings,
    Group,
    Participant,
    Plan,
    Receipt,
    ServerProcess,
    Session,
    Tally,
)
from tests.conftest import add_activity, live_server
from tests.test_consumers import control_view, join, receive_until

DAY0 = datetime(2026, 3, 3, 18, 0, tzinfo=UTC)


@pytest.fixture
def signed_in(client, facilitator) -> Client:
    client.force_login(facilitator)
    return client


def text_of(response) -> str:
    """The page as a person reads it: tags gone, spaces collapsed."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.content.decode()))


def answer_all(session: Session, activity: Activity, values: list) -> list[Participant]:
    """Open `activity` and have one participant answer each value (joining as needed)."""
    session.open_activity(activity)
    people = list(session.participants.all())
    people += [session.add_participant()[0] for _ in range(len(values) - len(people))]
    for index, (person, value) in enumerate(zip(people, values, strict=False)):
        field = {Activity.Kind.OPEN_TEXT: "text", Activity.Kind.SINGLE_CHOICE: "choice"}.get(
            activity.kind, "value"
        )
        person.answer(
            activity.pk, {field: str(value), "client_id": f"answer-{activity.pk}-{index}"}
        )
    return people


def circle(
    facilitator, *, end: bool = True, start: datetime = DAY0
) -> tuple[Session, Activity, Activity, Activity]:
    """A session with a check-in, an open question and a check-out, answered by five people."""
    with time_machine.travel(start, tick=False) as clock:
        session = Session.objects.create(facilitator=facilitator, title="Thursday circle")
        session.start()
        scale = {"scale_min": 1, "scale_max": 5, "measure": "connectedness"}
        check_in = add_activity(
            session,
            Activity.Kind.SCALE,
            "How connected do you feel?",
            suggested_seconds=120,
            **scale,
        )
        question = add_activity(session, Activity.Kind.OPEN_TEXT, "What helps you reach out?")
        check_out = add_activity(
            session,
            Activity.Kind.SCALE,
            "How connected do you feel?",
            suggested_seconds=60,
            **scale,
        )
        answer_all(session, check_in, [1, 2, 2, 3, 4])
        clock.shift(timedelta(seconds=150))
        texts = ["A walk", "Tea", "=cmd", "My sister", "Group chats"]
        answer_all(session, question, texts)
        clock.shift(timedelta(seconds=200))
        answer_all(session, check_out, [3, 3, 4, 4, 5])
        clock.shift(timedelta(seconds=45))
        session.moderate(question.answers.get(value="Tea").pk, Answer.Moderation.APPROVED)
        session.moderate(question.answers.get(value="My sister").pk, Answer.Moderation.APPROVED)
        if end:
            session.end()
    return session, check_in, question, check_out


# The summary --------------------------------------------------------------------------------


def test_the_summary_shows_attendance_time_taken_and_before_and_after(signed_in, facilitator):
    session, *_ = circle(facilitator)
    # Three phones were connected at once at some point.
    ServerProcess.beat("server-a")
    for person in session.participants.all()[:3]:
        person.connected("server-a")
    live.live_context(session)  # as the control view's next push does
    Connection.objects.all().delete()

    page = text_of(signed_in.get(f"/sessions/{session.pk}/summary/"))

    assert "Joined 5" in page
    assert "Most at once 3" in page
    # Planned 2 min + 1 min; the check-in was open 150 s, the check-out 45 s.
    assert "planned 3 min" in page
    assert "open 2.5 min · 2 min planned" in page
    assert "open 45 s · 1 min planned" in page
    # Before and after, side by side, with the change: mean 2.4 -> 3.8, median 2 -> 4.
    assert "Before and after · connectedness" in page
    assert "Mean 2.4 → 3.8 (+1.4) · Median 2 → 4 (+2)" in page
    # Approved texts only.
    assert "Tea" in page and "My sister" in page
    assert "A walk" not in page and "=cmd" not in page


def test_a_live_sessions_summary_counts_the_phones_connected_now_at_most(signed_in, facilitator):
    session, *_ = circle(facilitator, end=False)
    ServerProcess.beat("server-a")
    for person in session.participants.all()[:3]:
        person.connected("server-a")  # no push yet has written the peak

    page = text_of(signed_in.get(f"/sessions/{session.pk}/summary/"))

    assert "Most at once 3" in page


def test_the_summary_hides_what_too_few_answered_and_says_why(signed_in, facilitator):
    session = Session.objects.create(facilitator=facilitator, title="Small group")
    session.start()
    scale = add_activity(session, Activity.Kind.SCALE, "How rested are you?")
    answer_all(session, scale, [2, 5])
    session.end()

    page = text_of(signed_in.get(f"/sessions/{session.pk}/summary/"))

    assert "Fewer than 3 people answered, so this result stays hidden" in page
    assert "Mean" not in page


def test_the_summary_says_a_step_was_not_opened_rather_than_hidden(signed_in, facilitator):
    session, *_ = circle(facilitator, end=False)
    add_activity(session, Activity.Kind.SINGLE_CHOICE, "What would you like more of?")
    session.end()

    page = text_of(signed_in.get(f"/sessions/{session.pk}/summary/"))

    assert page.count("Not opened in this session, so nobody answered it.") == 1
    assert "stays hidden" not in page
    assert page.count("answered · 0 passed") == 3  # the three steps that were opened


def test_while_live_the_question_open_now_is_not_called_not_opened(signed_in, live_session):
    question = add_activity(live_session, Activity.Kind.SINGLE_CHOICE, "What would you like?")
    live_session.open_activity(question)  # nobody has answered yet

    page = text_of(signed_in.get(f"/sessions/{live_session.pk}/summary/"))

    assert "Not opened in this session" not in page
    assert "0 answered · 0 passed" in page


def test_a_before_and_after_whose_after_was_never_asked_says_so(signed_in, facilitator):
    """Ended after the check-in: the check-out was not asked, which is not "too few answered",
    on the summary or in the group's trend."""
    group = Group.objects.create(facilitator=facilitator, name="Tuesdays")
    session = Session.objects.create(facilitator=facilitator, title="Short week", group=group)
    session.start()
    scale = {"scale_min": 1, "scale_max": 5, "measure": "connectedness"}
    check_in = add_activity(session, Activity.Kind.SCALE, "Connected at the start?", **scale)
    add_activity(session, Activity.Kind.SCALE, "Connected at the end?", **scale)
    answer_all(session, check_in, [2, 3, 4])
    session.end()

    summary = text_of(signed_in.get(f"/sessions/{session.pk}/summary/"))
    comparison = summary.split("Before and after", 1)[1].split("Connected at the end?", 1)[0]
    after = comparison.split("After", 1)[1]
    assert "Not opened in this session, so nobody answered it." in after
    assert "Fewer than" not in after and "0 answered" not in after
    trend = text_of(signed_in.get(f"/groups/{group.pk}/"))
    assert "not asked" in trend and "hidden" not in trend


def test_the_summary_says_what_each_end_of_a_scale_means(signed_in, facilitator):
    session, check_in, _question, check_out = circle(facilitator)
    for scale in (check_in, check_out):
        scale.scale_min_label, scale.scale_max_label = "Cut off", "Close to people"
        scale.save()

    page = text_of(signed_in.get(f"/sessions/{session.pk}/summary/"))

    # Under the before-and-after comparison, and under each of the two scales.
    assert page.count("1: Cut off · 5: Close to people") == 3


def test_a_comparison_under_the_threshold_shows_no_change(signed_in, facilitator):
    session = Session.objects.create(facilitator=facilitator, title="Small group")
    session.start()
    before, after = (
        add_activity(session, Activity.Kind.SCALE, "Connected?", measure="connectedness")
        for _ in range(2)
    )
    answer_all(session, before, [1, 2, 3])
    answer_all(session, after, [5, 5])
    session.end()

    page = text_of(signed_in.get(f"/sessions/{session.pk}/summary/"))

    assert "Before and after · connectedness" in page
    assert "Mean 2.0 →" not in page and "(+" not in page


# Private notes ------------------------------------------------------------------------------


def test_notes_are_autosaved_from_the_control_view_and_shown_on_the_summary(
    signed_in, live_session
):
    control = signed_in.get(f"/sessions/{live_session.pk}/control/").content.decode()
    assert f'hx-post="/sessions/{live_session.pk}/notes/"' in control

    saved = signed_in.post(
        f"/sessions/{live_session.pk}/notes/",
        {"notes": "Quiet start; M. left early."},
        HTTP_HX_REQUEST="true",
    )

    assert saved.status_code == 200 and "Saved at" in saved.content.decode()
    summary = signed_in.get(f"/sessions/{live_session.pk}/summary/").content.decode()
    assert "Quiet start; M. left early." in summary
    projector = signed_in.get(f"/sessions/{live_session.pk}/projector/").content.decode()
    assert "Quiet start" not in projector


def test_saving_notes_or_settings_keeps_what_the_session_did_meanwhile(live_session):
    """A notes autosave or a settings form reads the session, and the running session may
    move on before it saves: the question opened meanwhile stays open."""
    question = add_activity(live_session, "scale", "How rested are you?")
    read_by_the_notes_request = Session.objects.get(pk=live_session.pk)
    read_by_the_settings_request = Session.objects.get(pk=live_session.pk)
    live_session.open_activity(question)

    notes = NotesForm({"notes": "Quiet start."}, instance=read_by_the_notes_request)
    assert notes.is_valid()
    notes.save()
    settings = SessionForm(
        {
            "title": "Tuesday circle, renamed",
            "language": live_session.language,
            "anonymity_threshold": live_session.anonymity_threshold,
            "retention_days": live_session.retention_days,
        },
        instance=read_by_the_settings_request,
    )
    assert settings.is_valid(), settings.errors
    settings.save()

    live_session.refresh_from_db()
    assert live_session.current_activity == question
    assert (live_session.notes, live_session.title) == ("Quiet start.", "Tuesday circle, renamed")


def test_notes_can_be_edited_afterwards_without_scripts(signed_in, live_session):
    live_session.end()

    response = signed_in.post(f"/sessions/{live_session.pk}/notes/", {"notes": "Follow up."})

    assert response.status_code == 302
    live_session.refresh_from_db()
    assert live_session.notes == "Follow up."


def test_notes_too_long_are_refused_and_the_saved_ones_kept(signed_in, live_session):
    live_session.notes = "Kept."
    live_session.save()

    response = signed_in.post(f"/sessions/{live_session.pk}/notes/", {"notes": "x" * 20001})

    assert response.status_code == 400
    assert "at most 20000 characters" in text_of(response)
    live_session.refresh_from_db()
    assert live_session.notes == "Kept."


def test_another_facilitator_cannot_read_or_write_the_notes(client, other_facilitator, session):
    client.force_login(other_facilitator)

    assert client.get(f"/sessions/{session.pk}/summary/").status_code == 404
    assert client.post(f"/sessions/{session.pk}/notes/", {"notes": "x"}).status_code == 404


# Retention ----------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_running_server_deletes_the_raw_answers_due_without_cron(facilitator, live_server_log):
    """The consent screen promises deletion some days after the session: a server applies the
    rule from its start, then hourly, so it holds where nobody set up `apply_retention`."""
    overdue, *_ = circle(facilitator)  # ended in March, kept 30 days
    recent, *_ = circle(facilitator, start=timezone.now() - timedelta(days=2))

    with live_server(live_server_log, ATTUNE_RETENTION_SWEEP_SECONDS="3600"):
        deadline = time.monotonic() + 20
        while not Session.objects.get(pk=overdue.pk).answers_deleted_at:
            assert time.monotonic() < deadline, "the server did not apply the retention rule"
            time.sleep(0.2)

    assert not Answer.objects.filter(activity__session=overdue).exists()
    assert Answer.objects.filter(activity__session=recent).count() == 15
    assert Session.objects.get(pk=recent.pk).answers_deleted_at is None


def test_after_retention_a_hidden_result_does_not_claim_nobody_answered(signed_in, facilitator):
    session = Session.objects.create(facilitator=facilitator, title="Small group")
    session.start()
    few = add_activity(session, Activity.Kind.SINGLE_CHOICE, "Asked, two answered")
    answer_all(session, few, [0, 1])
    session.end()
    Activity.objects.filter(pk=few.pk).update(actual_seconds=60)  # open a minute
    session.delete_raw_answers()

    page = text_of(signed_in.get(f"/sessions/{session.pk}/summary/"))

    step = page.split("Asked, two answered", 1)[1]
    assert step.startswith(" Too few answered for the result to show, so nothing of it was kept")
    assert "0 answered" not in page


def test_retention_deletes_raw_answers_after_the_days_and_keeps_counts_over_the_threshold(
    signed_in, facilitator
):
    session, *_ = circle(facilitator)
    under = add_activity(session, Activity.Kind.SINGLE_CHOICE, "Late question")
    Answer.objects.create(activity=under, participant=session.participants.first(), value=[0])
    Tally.objects.rebuild(under)  # answered after the end, as if it had been open then

    with time_machine.travel(DAY0 + timedelta(days=29, hours=23), tick=False):
        call_command("apply_retention", stdout=(out := io.StringIO()))
    assert "0 session(s) done" in out.getvalue()
    assert Answer.objects.filter(activity__session=session).count() == 16

    with time_machine.travel(DAY0 + timedelta(days=30, minutes=10), tick=False):
        call_command("apply_retention", stdout=out)
        call_command("apply_retention", stdout=out)  # again, as cron would: nothing more

    assert out.getvalue().count(f"Deleted raw answers of session {session.pk}") == 1
    assert not Answer.objects.filter(activity__session=session).exists()
    assert not Participant.objects.filter(session=session).exists()
    assert not Tally.objects.filter(activity=under).exists()  # hidden: nothing kept
    page = text_of(signed_in.get(f"/sessions/{session.pk}/summary/"))
    assert "The raw answers were deleted on 2 Apr 2026, 30 days after the session" in page
    assert "Joined 5" in page
    assert "Mean 2.4 → 3.8 (+1.4)" in page  # counts of shown results are kept
    assert "Tea" not in page  # the texts went with the answers


def test_a_new_session_takes_the_facilitators_retention_default(signed_in, facilitator):
    response = signed_in.post("/account/", {"retention_days": "7"})
    assert response.status_code == 302

    signed_in.post("/sessions/new/", {"title": "Next week"})

    assert Session.objects.get(title="Next week").retention_days == 7


def test_a_retention_of_zero_days_is_refused_next_to_its_field(signed_in, facilitator):
    response = signed_in.post("/account/", {"retention_days": "0"})

    assert response.status_code == 400
    assert 'id="id_retention_days_error"' in response.content.decode()
    assert FacilitatorSettings.of(facilitator).retention_days == 30


def test_the_summary_says_until_when_raw_answers_are_kept(signed_in, facilitator):
    session, *_ = circle(facilitator)

    page = text_of(signed_in.get(f"/sessions/{session.pk}/summary/"))

    assert "Raw answers are kept until 2 Apr 2026 (30 days after the session)" in page


# Withdrawal ---------------------------------------------------------------------------------


def live_scale(facilitator) -> tuple[Session, Activity]:
    """A live session with a scale open."""
    session = Session.objects.create(facilitator=facilitator, title="Circle")
    session.start()
    activity = add_activity(session, Activity.Kind.SCALE, "Rested?")
    session.open_activity(activity)
    return session, activity


@pytest.mark.django_db(transaction=True)
async def test_a_phone_withdraws_its_answers_and_the_counts_drop_at_once(facilitator):
    session, activity = await database_sync_to_async(live_scale)(facilitator)
    control, _ = await control_view(session, facilitator)
    phone, _ = await join(session)

    await phone.send_json_to({"action": "answer", "activity": activity.pk, "value": "4"})
    await receive_until(control, 'data-count="answered">1<')
    await phone.send_json_to({"action": "withdraw"})

    assert "1 answer deleted" in await receive_until(phone, "deleted")
    await receive_until(control, 'data-count="answered">0<')
    assert not await database_sync_to_async(Answer.objects.exists)()
    assert not await database_sync_to_async(Receipt.objects.exists)()
    await phone.send_json_to({"action": "withdraw"})
    assert "nothing to delete" in await receive_until(phone, "nothing to delete")
    await phone.disconnect()
    await control.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_a_phone_can_still_withdraw_its_answers_after_the_session_ends(facilitator):
    """As the consent screen says: "during the session and in the hours after it"."""
    session, activity = await database_sync_to_async(live_scale)(facilitator)
    phone, _ = await join(session)
    await phone.send_json_to({"action": "answer", "activity": activity.pk, "value": "4"})
    await receive_until(phone, "Answer received")
    await database_sync_to_async(session.end)()

    await phone.send_json_to({"action": "withdraw"})

    assert "1 answer deleted" in await receive_until(phone, "deleted")
    assert not await database_sync_to_async(Answer.objects.exists)()
    await phone.disconnect()


# Deletion -----------------------------------------------------------------------------------


async def group_size(group: str) -> int:
    """How many sockets the channel layer holds in `group` (in-memory or Redis core layer)."""
    layer = get_channel_layer()
    if hasattr(layer, "groups"):
        return len(layer.groups.get(group, {}))
    async with layer.connection(layer.consistent_hash(group)) as redis:
        return await redis.zcard(layer._group_key(group))


@pytest.mark.django_db(transaction=True)
async def test_deleting_a_live_session_leaves_nothing_in_the_database_or_the_layer(facilitator):
    session, *_ = await database_sync_to_async(circle)(facilitator, end=False)
    control, _ = await control_view(session, facilitator)
    phone, _ = await join(session)
    assert await group_size(live.participants_group(session.pk)) == 1

    client = Client()
    await database_sync_to_async(client.force_login)(facilitator)
    response = await database_sync_to_async(client.post)(f"/sessions/{session.pk}/delete/")

    assert response.status_code == 302
    for socket in (phone, control):
        assert "deleted by its facilitator" in await receive_until(socket, "deleted")
        assert (await socket.receive_output(timeout=2))["code"] == CLOSE_SESSION_DELETED
        await socket.disconnect()  # the browser answers the close, as browsers do
    for model in (Session, Activity, Participant, Answer, Tally, Receipt, Connection):
        assert not await database_sync_to_async(model.objects.exists)(), model
    for group in (live.participants_group(session.pk), live.control_group(session.pk)):
        assert await group_size(group) == 0


def test_deleting_an_account_removes_all_its_data_and_sign_ins(
    signed_in, facilitator, other_facilitator
):
    circle(facilitator)
    Group.objects.create(facilitator=facilitator, name="Tuesday")
    Plan.objects.create(owner=facilitator, title="Mine")
    FacilitatorSettings.of(facilitator)
    Client().force_login(facilitator)  # signed in on a second device too
    kept = Session.objects.create(facilitator=other_facilitator, title="Bob's")

    assert signed_in.get("/account/delete/").status_code == 200
    response = signed_in.post("/account/delete/")

    assert response.status_code == 302
    assert not User.objects.filter(username="alice").exists()
    for model in (Session, Activity, Participant, Answer, Tally, Group, FacilitatorSettings):
        assert not model.objects.exclude(pk=kept.pk if model is Session else None).exists(), model
    assert not Plan.objects.filter(owner__isnull=False).exists()
    assert not any(
        sign_in.get_decoded().get("_auth_user_id") == str(facilitator.pk)
        for sign_in in SignIn.objects.all()
    )
    assert Session.objects.filter(pk=kept.pk).exists()


# Keeping a nickname across a group's sessions -----------------------------------------------


def test_a_phone_may_keep_its_nickname_across_a_groups_sessions_and_see_its_own_trend(
    facilitator,
):
    group = Group.objects.create(facilitator=facilitator, name="Tuesday", keep_pseudonyms=True)
    phone = Client()
    first = Session.objects.create(facilitator=facilitator, title="Week 1", group=group)
    first.start()
    check_in = add_activity(first, Activity.Kind.SCALE, "Connected?", measure="connectedness")
    first.open_activity(check_in)

    consent = text_of(phone.get(f"/join/{first.join_code}/"))
    assert "Keep my nickname for the next sessions of Tuesday" in consent
    phone.post(f"/join/{first.join_code}/", {"keep_nickname": "on"})
    me = Participant.objects.get(session=first)
    me.answer(check_in.pk, {"value": "2", "client_id": "first-check-in"})
    first.end()

    second = Session.objects.create(facilitator=facilitator, title="Week 2", group=group)
    second.start()
    consent = text_of(phone.get(f"/join/{second.join_code}/"))
    assert f"Go on as {me.pseudonym} in Tuesday" in consent
    phone.post(f"/join/{second.join_code}/", {"keep_nickname": "on"})

    assert Participant.objects.get(session=second).pseudonym == me.pseudonym
    page = text_of(phone.get(f"/join/{second.join_code}/"))
    assert "Your check-ins in Tuesday" in page
    assert f"{first.started_at:%-d %b} 2 (of 10)" in page
    # Another phone in the same session gets a nickname of its own, and no trend.
    other = Client()
    other.post(f"/join/{second.join_code}/")
    assert "Your check-ins" not in text_of(other.get(f"/join/{second.join_code}/"))


def test_keeping_a_nickname_with_htmx_shows_the_own_trend_on_the_page_the_form_answers_with(
    facilitator,
):
    group = Group.objects.create(facilitator=facilitator, name="Tuesday", keep_pseudonyms=True)
    session = Session.objects.create(facilitator=facilitator, title="Week 1", group=group)
    session.start()
    phone = Client()

    page = phone.post(
        f"/join/{session.join_code}/", {"keep_nickname": "on"}, HTTP_HX_REQUEST="true"
    )

    assert page.status_code == 200
    assert "Your check-ins in Tuesday" in text_of(page)
    assert group.members.get().pseudonym == Participant.objects.get().pseudonym
    assert any(name.startswith("attune_member") for name in page.cookies)


def test_without_the_groups_consent_no_nickname_is_kept(facilitator):
    group = Group.objects.create(facilitator=facilitator, name="Tuesday")
    session = Session.objects.create(facilitator=facilitator, title="Week 1", group=group)
    session.start()
    phone = Client()

    assert "Keep my nickname" not in text_of(phone.get(f"/join/{session.join_code}/"))
    phone.post(f"/join/{session.join_code}/", {"keep_nickname": "on"})

    assert not group.members.exists()
    assert not any(name.startswith("attune_member") for name in phone.cookies)


# Answers flagged as possibly needing care ------------------------------------------------------

CARE_NOTE = "+1 answer that may need care, for your attention only and not counted in the results."


def five_answers_one_flagged(facilitator, *, end: bool) -> Session:
    """An open question (shown from 5 answers) answered by five people, one with words that
    may signal distress: four answers count toward the result, so it stays hidden."""
    session = Session.objects.create(facilitator=facilitator, title="Small group")
    session.start()
    question = add_activity(session, Activity.Kind.OPEN_TEXT, "What weighs on you?")
    answer_all(session, question, ["Work", "Sleep", "Rain", "My dog", "some days I want to die"])
    if end:
        session.end()
    return session


def test_while_hidden_the_flagged_answer_is_not_counted_and_only_the_facilitator_hears_of_it(
    signed_in, facilitator
):
    session = five_answers_one_flagged(facilitator, end=False)

    control = text_of(signed_in.get(f"/sessions/{session.pk}/control/"))
    projector = text_of(signed_in.get(f"/sessions/{session.pk}/projector/"))

    assert "Results appear once 5 people have answered (4 so far)." in control
    assert "(5 so far)" not in control
    assert CARE_NOTE in control
    # Its "Answered" counts all five, and says why the projector shows one fewer.
    assert "1 of them for you only, so the projector counts one fewer" in control
    # The room sees the same count, and nothing of the flagged answer.
    assert "4 answers" in projector
    assert "Results appear once 5 people have answered." in projector
    for words in ("may need care", "not counted", "flagged", "+1", "want to die", "for you"):
        assert words not in projector


def test_the_summary_does_not_say_five_answered_next_to_fewer_than_five_answered(
    signed_in, facilitator
):
    session = five_answers_one_flagged(facilitator, end=True)

    page = text_of(signed_in.get(f"/sessions/{session.pk}/summary/"))

    assert "4 answered · 0 passed" in page
    assert "5 answered" not in page
    assert "Fewer than 5 people answered, so this result stays hidden." in page
    assert CARE_NOTE in page
    assert "some days I want to die" in page  # under "Answers that may need care"


def test_the_summary_opens_with_the_notes_and_the_words_that_may_need_care_folded(
    signed_in, facilitator
):
    """It opens right after "End session", maybe with the laptop still on the projector."""
    session = five_answers_one_flagged(facilitator, end=True)
    session.notes = "R. arrived late, seemed low."
    session.save(update_fields=["notes"])

    page = signed_in.get(f"/sessions/{session.pk}/summary/").content.decode()

    notes = re.search(r"<details class=\"private-notes\"([^>]*)>(.*?)</details>", page, re.S)
    assert notes and "R. arrived late" in notes[2] and "open" not in notes[1]
    care = re.search(r"<details class=\"care-alert\"([^>]*)>(.*?)</details>", page, re.S)
    assert care and "some days I want to die" in care[2] and "open" not in care[1]
    assert page.count("some days I want to die") == 1
    # No notes yet: the box is open, to write them.
    session.notes = ""
    session.save(update_fields=["notes"])
    page = signed_in.get(f"/sessions/{session.pk}/summary/").content.decode()
    assert '<details class="private-notes" open>' in page


def test_a_shown_result_tells_the_facilitator_but_not_the_room_of_a_flagged_answer_left_out(
    signed_in, facilitator
):
    session = Session.objects.create(facilitator=facilitator, title="Small group")
    session.start()
    cloud = add_activity(session, Activity.Kind.WORD_CLOUD, "One word for today")
    session.open_activity(cloud)
    for words in (["hope"], ["calm"], ["hope"], ["suicidal"]):
        session.add_participant()[0].answer(cloud.pk, {"word": words})

    control = text_of(signed_in.get(f"/sessions/{session.pk}/control/"))
    projector = text_of(signed_in.get(f"/sessions/{session.pk}/projector/"))

    assert "hope" in control and "calm" in control
    assert CARE_NOTE in control
    assert "3 answers" in projector
    assert "hope" in projector
    for words in ("may need care", "not counted", "+1", "suicidal"):
        assert words not in projector
