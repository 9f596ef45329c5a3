"""The live loop over real WebSockets: phones, the control view and the projector, through the
whole ASGI application (origin check, auth, routing) and the configured channel layer."""

from __future__ import annotations

import asyncio
import functools
import json
import re
import threading
import time
from datetime import timedelta

import pytest
import time_machine
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.db import OperationalError, connection, transaction
from django.test import Client
from django.test.signals import template_rendered
from django.test.utils import CaptureQueriesContext
from django.utils import timezone, translation

from facilitation.asgi import application
from sessions import batches, live, presence
from sessions.aggregation import summarize
from sessions.consumers import CLOSE_NOT_ALLOWED, _acknowledge, _render_phone
from sessions.models import (
    Activity,
    Answer,
    AnswerBatch,
    AnswerRequest,
    Participant,
    ServerProcess,
    Session,
    participant_cookie,
)
from tests.conftest import add_activity

pytestmark = pytest.mark.django_db(transaction=True)

# The application is built at import, with the default ALLOWED_HOSTS (testserver is not one).
ORIGIN = (b"origin", b"http://localhost")


# Helpers -----------------------------------------------------------------------------------


async def open_socket(path: str, *headers: tuple[bytes, bytes]) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(application, path, headers=[ORIGIN, *headers])
    connected, _ = await communicator.connect()
    assert connected, f"{path} refused the handshake"
    return communicator


async def facilitator_cookie(user) -> tuple[bytes, bytes]:
    client = Client()
    await sync_to_async(client.force_login)(user)
    session_cookie = client.cookies[settings.SESSION_COOKIE_NAME].value
    return (b"cookie", f"{settings.SESSION_COOKIE_NAME}={session_cookie}".encode())


async def join(session: Session) -> tuple[WebsocketCommunicator, str]:
    """A phone that joined the session: its socket, and the first stage it was shown."""
    _participant, token = await database_sync_to_async(session.add_participant)()
    cookie = (b"cookie", f"{participant_cookie(session.join_code)}={token}".encode())
    phone = await open_socket(f"/ws/join/{session.join_code}/", cookie)
    return phone, await phone.receive_from()


async def control_view(session: Session, user) -> tuple[WebsocketCommunicator, str]:
    control = await open_socket(
        f"/ws/sessions/{session.pk}/control/", await facilitator_cookie(user)
    )
    return control, await control.receive_from()


async def projector_view(session: Session, user) -> tuple[WebsocketCommunicator, str]:
    projector = await open_socket(
        f"/ws/sessions/{session.pk}/projector/", await facilitator_cookie(user)
    )
    return projector, await projector.receive_from()


async def receive_until(socket: WebsocketCommunicator, text: str, timeout: float = 3) -> str:
    """Read frames until one contains `text` (earlier, older frames are skipped)."""
    deadline = asyncio.get_running_loop().time() + timeout
    seen = []
    while (left := deadline - asyncio.get_running_loop().time()) > 0:
        try:
            frame = await socket.receive_from(timeout=left)
        except TimeoutError:
            break
        if text in frame:
            return frame
        seen.append(frame)
    raise AssertionError(f"no frame with {text!r} within {timeout}s; got {seen!r}")


def count(html: str, name: str) -> int:
    match = re.search(rf'data-count="{name}">(\d+)<', html)
    assert match, f"no {name} count in {html!r}"
    return int(match.group(1))


async def send(socket: WebsocketCommunicator, **message) -> None:
    await socket.send_to(text_data=json.dumps(message))


async def open_activity(session: Session, activity: Activity) -> None:
    await database_sync_to_async(session.open_activity)(activity)


async def stored_answers(activity: Activity) -> list[Answer]:
    return await database_sync_to_async(lambda: list(activity.answers.all()))()


# Joining and presence ----------------------------------------------------------------------


async def test_a_phone_that_joins_sees_the_waiting_screen_and_the_control_view_counts_it(
    live_session, facilitator
):
    control, first = await control_view(live_session, facilitator)
    assert count(first, "present") == 0

    phone, stage = await join(live_session)
    assert 'id="phone-stage"' in stage
    assert "Waiting for the next activity" in stage
    update = await receive_until(control, 'data-count="present">1<')
    assert count(update, "joined") == 1

    await phone.disconnect()
    await receive_until(control, 'data-count="present">0<')
    await control.disconnect()


async def test_a_phone_on_a_process_the_database_forgot_still_counts(live_session):
    # A process whose row was dropped (after a stall long enough for the others to forget it,
    # or a database reset) beats again when a phone connects, rather than losing the phone.
    await database_sync_to_async(presence.beat)()
    await database_sync_to_async(ServerProcess.objects.all().delete)()

    phone, stage = await join(live_session)

    assert "Waiting for the next activity" in stage
    assert await database_sync_to_async(live_session.present_count)() == 1
    assert await database_sync_to_async(
        ServerProcess.objects.filter(pk=presence.SERVER_ID).exists
    )()
    await phone.disconnect()


async def test_the_projector_shows_the_joined_count_as_phones_join(live_session, facilitator):
    projector, first = await projector_view(live_session, facilitator)
    assert "<strong>0</strong> joined" in first
    phones = [(await join(live_session))[0] for _ in range(2)]
    await receive_until(projector, "<strong>2</strong> joined")
    for phone in phones:
        await phone.disconnect()
    await projector.disconnect()


def read_at(frame: str, region: str) -> int:
    """The database time a pushed region was read at (its data-as-of)."""
    return int(re.search(rf'id="{region}"[^>]*data-as-of="(\d+)"', frame).group(1))


async def test_counts_carry_the_time_they_were_read_at_later_pushes_a_later_one(
    live_session, facilitator
):
    # Screens compare these to keep the counts read last (static/attune/attune.js).
    projector, first = await projector_view(live_session, facilitator)
    control, first_control = await control_view(live_session, facilitator)
    phone, _ = await join(live_session)

    pushed = await receive_until(projector, "<strong>1</strong> joined")
    pushed_control = await receive_until(control, 'data-count="joined">1<')

    assert read_at(pushed, "projector-stage") > read_at(first, "projector-stage")
    assert read_at(pushed_control, "control-live") > read_at(first_control, "control-live")
    for socket in (phone, projector, control):
        await socket.disconnect()


async def test_a_room_connecting_at_once_shares_its_statements_and_every_phone_is_counted(
    live_session, facilitator
):
    """Sockets that open together are found with one query and counted as connected in one
    transaction (sessions/batches.py): ten phones waiting for the next activity cost the
    database what one does. (With a question open, each phone's stage looks up its own
    answer.)"""
    await database_sync_to_async(presence.beat)()

    async def statements(phones: int) -> tuple[list[str], list[tuple[bool, object]]]:
        people = [
            await database_sync_to_async(live_session.add_participant)() for _ in range(phones)
        ]

        def find_and_open() -> tuple[list[str], list[tuple[bool, object]]]:
            with CaptureQueriesContext(connection) as queries:
                found = batches._find_phones(
                    [(token, live_session.join_code) for _, token in people]
                )
                openings = [batches.Opening(participant, "en") for _ok, participant in found]
                outcomes = batches._open_sockets(openings)
            return [query["sql"] for query in queries.captured_queries], outcomes

        return await database_sync_to_async(find_and_open)()

    one, _ = await statements(1)
    ten, outcomes = await statements(10)

    assert len(ten) == len(one)
    assert [ok for ok, _ in outcomes] == [True] * 10
    assert all("Waiting for the next activity" in stage for _ok, (_, stage) in outcomes)
    assert len({connection_id for _ok, (connection_id, _) in outcomes}) == 10
    assert await database_sync_to_async(live_session.present_count)() == 11
    # And end to end: six sockets opened at once, however they fall into batches, are all
    # shown their stage and counted.
    control, _ = await control_view(live_session, facilitator)
    phones = await asyncio.gather(*(join(live_session) for _ in range(6)))
    assert all("Waiting for the next activity" in stage for _phone, stage in phones)
    await receive_until(control, 'data-count="present">17<')
    for phone, _ in phones:
        await phone.disconnect()
    await control.disconnect()


async def test_a_phone_whose_place_went_while_its_room_connected_costs_no_other_its_socket(
    live_session,
):
    """Removed between finding its place and being counted: that phone is told to join again,
    and the others of its batch are counted and shown their stage."""
    await database_sync_to_async(presence.beat)()
    people = [await database_sync_to_async(live_session.add_participant)() for _ in range(4)]
    openings = [
        batches.Opening(participant, "es" if index == 3 else "en")
        for index, (participant, _) in enumerate(people)
    ]
    await database_sync_to_async(live_session.participants.filter(pk=people[1][0].pk).delete)()

    outcomes = await database_sync_to_async(batches._open_sockets)(openings)

    assert [ok for ok, _ in outcomes] == [True, False, True, True]
    assert str(outcomes[1][1]) == str(batches.PLACE_NOT_FOUND)
    assert "Waiting for the next activity" in outcomes[0][1][1]
    assert "Esperando la siguiente actividad" in outcomes[3][1][1]
    assert await database_sync_to_async(live_session.present_count)() == 3


async def test_a_failure_while_one_phone_is_retried_alone_costs_the_others_nothing(
    live_session, monkeypatch
):
    await database_sync_to_async(presence.beat)()
    people = [await database_sync_to_async(live_session.add_participant)() for _ in range(3)]
    removed = people[1][0]
    await database_sync_to_async(live_session.participants.filter(pk=removed.pk).delete)()

    def unreachable(participant) -> bool:
        raise OperationalError("the database went away")

    monkeypatch.setattr(Participant, "is_still_here", unreachable)

    outcomes = await database_sync_to_async(batches._open_sockets)(
        [batches.Opening(participant, "en") for participant, _ in people]
    )

    assert [ok for ok, _ in outcomes] == [True, False, True]
    assert isinstance(outcomes[1][1], OperationalError)
    assert await database_sync_to_async(live_session.present_count)() == 2


async def test_phones_connecting_together_on_a_process_the_database_forgot_all_count(
    live_session,
):
    # The batch fails on the process's missing row: the process beats once, and every phone
    # of the batch is connected.
    await database_sync_to_async(presence.beat)()
    people = [await database_sync_to_async(live_session.add_participant)() for _ in range(3)]
    await database_sync_to_async(ServerProcess.objects.all().delete)()

    outcomes = await database_sync_to_async(batches._open_sockets)(
        [batches.Opening(participant, "en") for participant, _ in people]
    )

    assert [ok for ok, _ in outcomes] == [True, True, True]
    assert await database_sync_to_async(live_session.present_count)() == 3


async def test_a_session_deleted_while_its_phones_connected_costs_no_other_session_a_phone(
    live_session, other_facilitator
):
    await database_sync_to_async(presence.beat)()

    def two_sessions_phones() -> list[batches.Opening]:
        other = Session.objects.create(facilitator=other_facilitator, title="Elsewhere")
        other.start()
        phones = [live_session.add_participant()[0], other.add_participant()[0]]
        other.delete()
        return [batches.Opening(participant, "en") for participant in phones]

    openings = await database_sync_to_async(two_sessions_phones)()

    outcomes = await database_sync_to_async(batches._open_sockets)(openings)

    assert outcomes[0][0] and "Waiting for the next activity" in outcomes[0][1][1]
    assert not outcomes[1][0]
    assert str(outcomes[1][1]) == str(batches.PLACE_NOT_FOUND)


async def test_a_phone_without_a_valid_token_is_told_and_disconnected(live_session):
    cookie = (b"cookie", f"{participant_cookie(live_session.join_code)}=made-up-token".encode())
    phone = await open_socket(f"/ws/join/{live_session.join_code}/", cookie)
    notice = await phone.receive_from()
    assert "Join again with the session code" in notice
    assert (await phone.receive_output())["code"] == CLOSE_NOT_ALLOWED
    await phone.disconnect()  # the server closed it; let the consumer finish


# Answering ---------------------------------------------------------------------------------


async def test_an_answer_reaches_the_projector_and_the_control_view(
    live_session, choice_activity, facilitator
):
    live_session.anonymity_threshold = 2
    await database_sync_to_async(live_session.save)()
    await open_activity(live_session, choice_activity)
    control, _ = await control_view(live_session, facilitator)
    projector, _ = await projector_view(live_session, facilitator)
    (phone_a, _), (phone_b, _) = await join(live_session), await join(live_session)

    await send(phone_a, action="answer", activity=str(choice_activity.pk), choice="0")
    ack = await phone_a.receive_from()
    assert "Answer received" in ack
    hidden = await receive_until(projector, "1 answer<")
    assert "Results appear once 2 people have answered" in hidden

    await send(phone_b, action="answer", activity=str(choice_activity.pk), choice="2")
    await phone_b.receive_from()
    shown = await receive_until(projector, "2 answers")
    assert re.search(r"Yes</span>.*?1 <span class=\"percent\">\(50%\)", shown, re.S)
    assert re.search(r"Not sure</span>.*?1 <span class=\"percent\">\(50%\)", shown, re.S)
    assert count(await receive_until(control, 'data-count="answered">2<'), "passed") == 0

    for socket in (phone_a, phone_b, control, projector):
        await socket.disconnect()


async def test_a_changed_answer_replaces_the_first_one(live_session, choice_activity):
    await open_activity(live_session, choice_activity)
    phone, _ = await join(live_session)
    await send(phone, action="answer", activity=choice_activity.pk, choice="0")
    await phone.receive_from()
    await send(phone, action="answer", activity=choice_activity.pk, choice="1")
    assert "Answer received" in await phone.receive_from()
    answers = await stored_answers(choice_activity)
    assert [answer.value for answer in answers] == [[1]]
    await phone.disconnect()


async def test_a_pass_is_counted_as_a_pass_and_not_as_an_answer(
    live_session, choice_activity, facilitator
):
    await open_activity(live_session, choice_activity)
    control, _ = await control_view(live_session, facilitator)
    phone, _ = await join(live_session)
    await send(phone, action="pass", activity=choice_activity.pk, choice="0")
    assert "You passed on this one" in await phone.receive_from()
    update = await receive_until(control, 'data-count="passed">1<')
    assert count(update, "answered") == 0
    await phone.disconnect()
    await control.disconnect()


async def test_every_kind_takes_its_own_answer_shape(live_session):
    phone, _ = await join(live_session)
    cases = [
        (Activity.Kind.MULTIPLE_CHOICE, {"choice": ["0", "2"]}, [0, 2]),
        (Activity.Kind.SCALE, {"value": "7"}, 7),
        (Activity.Kind.OPEN_TEXT, {"text": "  Glad to be here  "}, "Glad to be here"),
        (Activity.Kind.WORD_CLOUD, {"word": ["Hope", " hope ", "Rest"]}, ["hope", "rest"]),
        (Activity.Kind.EMOTION, {"choice": "1"}, [1]),
    ]
    for kind, fields, stored in cases:
        activity = await database_sync_to_async(add_activity)(live_session, kind)
        await open_activity(live_session, activity)
        await send(phone, action="answer", activity=activity.pk, **fields)
        assert "Answer received" in await receive_until(phone, "phone-stage")
        assert [answer.value for answer in await stored_answers(activity)] == [stored]
    await phone.disconnect()


async def test_open_text_is_escaped_when_pushed(live_session, facilitator):
    activity = await database_sync_to_async(add_activity)(live_session, Activity.Kind.OPEN_TEXT)
    await open_activity(live_session, activity)
    projector, _ = await projector_view(live_session, facilitator)
    control, _ = await control_view(live_session, facilitator)
    hostile = ["<script>alert(1)</script>", '<b hx-get="/dashboard/">bold</b>']
    for text in [*hostile, "Rest", "Tea", "Quiet"]:
        phone, _ = await join(live_session)
        await send(phone, action="answer", activity=activity.pk, text=text)
        await phone.receive_from()
        await phone.disconnect()
    # The facilitator sees them escaped, waiting for approval ...
    html = await receive_until(control, "<strong>5</strong> waiting for your approval")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script>" not in html
    assert 'hx-get="/dashboard/"' not in html
    # ... and the projector, once they are approved.
    for text in hostile:
        answer = await database_sync_to_async(Answer.objects.get)(value=text)
        await send(control, action="approve_answer", answer=answer.pk)
    html = await receive_until(projector, "&lt;b hx-get")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script>" not in html
    assert 'hx-get="/dashboard/"' not in html
    await projector.disconnect()
    await control.disconnect()


async def cloud_without(socket: WebsocketCommunicator, word: str) -> str:
    """The next word cloud pushed without `word` in it."""
    while ">" + word + "<" in (frame := await receive_until(socket, 'class="cloud"')):
        pass
    return frame


async def test_the_facilitator_takes_a_word_off_the_projector_and_puts_it_back(
    live_session, facilitator
):
    activity = await database_sync_to_async(add_activity)(live_session, Activity.Kind.WORD_CLOUD)
    await open_activity(live_session, activity)
    projector, _ = await projector_view(live_session, facilitator)
    control, _ = await control_view(live_session, facilitator)
    for words in (["Hope", "Sam"], ["hope", "rest"], ["tea"]):
        phone, _ = await join(live_session)
        await send(phone, action="answer", activity=activity.pk, word=words)
        await phone.receive_from()
        await phone.disconnect()
    assert ">sam<" in await receive_until(projector, ">tea<")
    await receive_until(control, ">tea<")

    await send(control, action="hide_word", activity=activity.pk, word="sam")

    html = await cloud_without(projector, "sam")
    assert ">hope<" in html
    controls = await receive_until(control, "Hidden from the projector")
    assert 'value="show_word"' in controls
    # Out of the summary's chart too.
    stored = await database_sync_to_async(Activity.objects.get)(pk=activity.pk)
    result = await database_sync_to_async(summarize)(stored, live_session.anonymity_threshold)
    assert [word.text for word in result.words] == ["hope", "rest", "tea"]

    await send(control, action="show_word", activity=activity.pk, word="sam")
    await receive_until(projector, ">sam<")
    # A word of nothing, or of another kind of step: an error frame, and the socket stays open.
    for fields in ({"activity": activity.pk}, {"activity": "x", "word": "sam"}):
        await send(control, action="hide_word", **fields)
        await receive_until(control, "That word is not here any more")
    await send(control, action="hide_word", activity=activity.pk, word="rest")
    await cloud_without(projector, "rest")
    await projector.disconnect()
    await control.disconnect()


# Refused answers ---------------------------------------------------------------------------


async def test_answers_that_cannot_be_taken_get_a_clear_error_and_store_nothing(
    live_session, choice_activity, facilitator, other_facilitator
):
    other_session = await database_sync_to_async(Session.objects.create)(
        facilitator=other_facilitator, title="Elsewhere"
    )
    foreign = await database_sync_to_async(add_activity)(other_session, "single_choice")
    later = await database_sync_to_async(add_activity)(live_session, "single_choice")
    await open_activity(live_session, choice_activity)
    phone, _ = await join(live_session)

    refused = [
        ({"activity": later.pk, "choice": "0"}, "That activity is closed"),
        ({"activity": foreign.pk, "choice": "0"}, "not part of this session"),
        ({"activity": "nonsense", "choice": "0"}, "not part of this session"),
        ({"activity": choice_activity.pk, "choice": "7"}, "not one of the options"),
        ({"activity": choice_activity.pk, "choice": ["0", "1"]}, "Pick only one option"),
        ({"activity": choice_activity.pk}, "Pick an option, or pass"),
        ({"activity": choice_activity.pk, "choice": {"x": 1}}, "not in a form Attune"),
    ]
    for fields, error in refused:
        await send(phone, action="answer", **fields)
        frame = await phone.receive_from()
        assert 'id="notice"' in frame and error in frame, (fields, frame)
    for activity in (choice_activity, later, foreign):
        assert await stored_answers(activity) == []

    # The socket is still open and takes a good answer.
    await send(phone, action="answer", activity=choice_activity.pk, choice="0")
    assert "Answer received" in await phone.receive_from()
    await phone.disconnect()


async def test_a_room_answering_at_once_is_stored_together_and_one_bad_answer_costs_no_other(
    live_session, choice_activity
):
    """Answers that arrive together share one transaction (sessions/batches.py): a refused
    answer, or a phone whose place is gone (its answer fails only at the commit), is told so,
    and every other answer is stored and acknowledged."""
    await open_activity(live_session, choice_activity)
    phones = [(await join(live_session))[0] for _ in range(8)]
    removed = await database_sync_to_async(lambda: live_session.participants.last())()
    await database_sync_to_async(removed.delete)()
    choices = ["0", "1", "2", "0", "1", "7", "0", "2"]  # "7" is not an option; the last is gone

    async def answer(phone, index: int) -> str:
        await send(
            phone,
            action="answer",
            activity=choice_activity.pk,
            choice=choices[index],
            client_id=f"room-answer-{index}",
        )
        return await phone.receive_from(timeout=5)

    frames = await asyncio.gather(*(answer(phone, index) for index, phone in enumerate(phones)))

    for index in (0, 1, 2, 3, 4, 6):
        assert f'data-ack="room-answer-{index}"' in frames[index], frames[index]
    assert "not one of the options" in frames[5]
    assert "Your place in this session was not found" in frames[7]
    stored = await stored_answers(choice_activity)
    assert sorted(answer.value[0] for answer in stored) == [0, 0, 0, 1, 1, 2]
    for phone in phones:
        await phone.disconnect()


async def test_answers_stored_together_share_one_stage_for_each_different_answer(
    live_session, choice_activity
):
    """After an answer a phone's stage shows that answer. A room answering a choice gives a few
    different answers: each is rendered once per batch (and language) and shared, and each
    phone still sees its own."""
    await open_activity(live_session, choice_activity)
    people = [(await database_sync_to_async(live_session.add_participant)())[0] for _ in range(7)]
    choices = ["0", "1", "0", "1", "0", None, "0"]  # None: a pass
    languages = ["en"] * 6 + ["es"]
    writes = []
    for person, choice, language in zip(people, choices, languages, strict=True):
        message = {"action": "pass" if choice is None else "answer", "choice": choice}
        request = AnswerRequest(person, choice_activity.pk, message, passed=choice is None)
        after = functools.partial(_acknowledge, person, message)
        writes.append(batches.Write(request, language, after))
    rendered = []

    def record(sender, template, **kwargs):
        rendered.append(template.name)

    template_rendered.connect(record)
    try:
        outcomes = await database_sync_to_async(batches._store_batch)(writes)
    finally:
        template_rendered.disconnect(record)

    stages = [html for _ok, html in outcomes]
    for html, choice in zip(stages[:5], choices, strict=False):
        assert re.findall(r'value="(\d)" checked', html) == [choice]
        assert "Answer received" in html
    assert "checked" not in stages[5] and "You passed on this one" in stages[5]
    assert 'value="0" checked' in stages[6] and "Respuesta recibida" in stages[6]
    # "0" and "1" in English, the pass, and "0" in Spanish.
    assert rendered.count("sessions/partials/phone_stage.html") == 4


async def test_a_phone_whose_place_was_removed_is_told_and_nothing_is_stored(
    live_session, choice_activity
):
    await open_activity(live_session, choice_activity)
    phone, _ = await join(live_session)
    await database_sync_to_async(live_session.participants.all().delete)()

    await send(
        phone, action="answer", activity=choice_activity.pk, choice="0", client_id="phone-answer-1"
    )

    assert "Your place in this session was not found" in await phone.receive_from()
    assert await stored_answers(choice_activity) == []
    await phone.disconnect()


async def test_a_good_answer_clears_the_error_shown_before_it(live_session, choice_activity):
    await open_activity(live_session, choice_activity)
    phone, _ = await join(live_session)
    await send(phone, action="answer", activity=choice_activity.pk)
    assert "Pick an option, or pass" in await phone.receive_from()
    await send(phone, action="answer", activity=choice_activity.pk, choice="0")
    reply = await phone.receive_from()
    assert '<div id="notice" class="notice" role="alert" aria-live="assertive"></div>' in reply
    assert "Answer received" in reply
    await phone.disconnect()


async def test_a_phone_that_answered_is_told_its_answer_counts_when_answers_close(
    live_session, choice_activity, facilitator
):
    await open_activity(live_session, choice_activity)
    answered, _ = await join(live_session)
    passed, _ = await join(live_session)
    await send(answered, action="answer", activity=choice_activity.pk, choice="0")
    await receive_until(answered, "Answer received")
    await send(passed, action="pass", activity=choice_activity.pk)
    await receive_until(passed, "You passed")
    control, _ = await control_view(live_session, facilitator)

    await send(control, action="lock_answers")

    closed = "Answers are closed for this question."
    assert f"{closed} Yours was received and counts." in await receive_until(answered, closed)
    assert f"{closed} You passed on it." in await receive_until(passed, closed)
    for socket in (answered, passed, control):
        await socket.disconnect()


async def test_locked_answers_are_refused_and_the_phone_says_so(
    live_session, choice_activity, facilitator
):
    await open_activity(live_session, choice_activity)
    phone, _ = await join(live_session)
    control, _ = await control_view(live_session, facilitator)
    await send(control, action="lock_answers")
    assert "Answers are closed for this question" in await receive_until(phone, "phone-stage")
    await send(phone, action="answer", activity=choice_activity.pk, choice="0")
    assert "Answers are locked" in await phone.receive_from()
    assert await stored_answers(choice_activity) == []
    await phone.disconnect()
    await control.disconnect()


async def test_answers_after_the_session_ended_are_refused(live_session, choice_activity):
    await open_activity(live_session, choice_activity)
    phone, _ = await join(live_session)
    await database_sync_to_async(live_session.end)()
    await send(phone, action="answer", activity=choice_activity.pk, choice="0")
    assert "session has ended" in await phone.receive_from()
    await phone.disconnect()


# Bad messages ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("frame", "error"),
    [
        ("not json at all", "could not be read"),
        ("[1, 2, 3]", "could not be read"),
        ('"just a string"', "could not be read"),
        (json.dumps({"action": "dance"}), "not available here"),
        (json.dumps({"no": "action"}), "not available here"),
        (json.dumps({"action": ["answer", "pass"]}), "not available here"),
        (json.dumps({"action": {"x": 1}}), "not available here"),
        (json.dumps({"action": "answer", "text": "x" * 5000}), "too large"),
    ],
)
async def test_a_bad_message_gets_an_error_frame_and_the_socket_stays_open(
    live_session, choice_activity, frame, error
):
    await open_activity(live_session, choice_activity)
    phone, _ = await join(live_session)
    await phone.send_to(text_data=frame)
    reply = await phone.receive_from()
    assert 'id="notice"' in reply and error in reply
    await send(phone, action="answer", activity=choice_activity.pk, choice="1")
    assert "Answer received" in await phone.receive_from()
    await phone.disconnect()


async def test_a_binary_frame_gets_an_error_frame(live_session):
    phone, _ = await join(live_session)
    await phone.send_to(bytes_data=b"\x00\x01")
    assert "only understands text" in await phone.receive_from()
    await phone.disconnect()


async def test_the_projector_takes_no_actions(live_session, choice_activity, facilitator):
    projector, _ = await projector_view(live_session, facilitator)
    await send(projector, action="open", activity=choice_activity.pk)
    assert "not available here" in await projector.receive_from()
    await database_sync_to_async(live_session.refresh_from_db)()
    assert live_session.current_activity_id is None
    await projector.disconnect()


# Facilitator actions -----------------------------------------------------------------------


async def test_opening_an_activity_changes_every_phone_and_the_projector(
    live_session, choice_activity, facilitator
):
    control, _ = await control_view(live_session, facilitator)
    projector, _ = await projector_view(live_session, facilitator)
    phones = [(await join(live_session))[0] for _ in range(3)]

    await send(control, action="next")
    for phone in phones:
        stage = await receive_until(phone, "phone-stage")
        assert "Did you sleep well?" in stage
        assert f'name="activity" value="{choice_activity.pk}"' in stage
    assert "Did you sleep well?" in await receive_until(projector, "projector-prompt")
    assert "Open now" in await receive_until(control, "control-agenda")

    await send(control, action="close")
    for phone in phones:
        assert "Waiting for the next activity" in await receive_until(phone, "phone-stage")
    for socket in (*phones, control, projector):
        await socket.disconnect()


async def test_hiding_results_hides_them_on_the_projector_only(
    live_session, choice_activity, facilitator
):
    await open_activity(live_session, choice_activity)
    projector, _ = await projector_view(live_session, facilitator)
    control, _ = await control_view(live_session, facilitator)
    phone, _ = await join(live_session)
    await send(control, action="hide_results")
    await receive_until(projector, "Results appear here when the facilitator shows them")
    await receive_until(control, ">Show results<")
    # Phones are not re-rendered for a projector-only change: it would wipe a half-typed answer.
    assert await phone.receive_nothing(timeout=0.5)
    for socket in (phone, control, projector):
        await socket.disconnect()


async def test_next_past_the_last_activity_is_refused_with_a_message(
    live_session, choice_activity, facilitator
):
    await open_activity(live_session, choice_activity)
    control, _ = await control_view(live_session, facilitator)
    await send(control, action="next")
    assert "This is the last activity" in await control.receive_from()
    await send(control, action="open", activity="999999")
    assert "not part of this session" in await control.receive_from()
    await control.disconnect()


async def test_a_double_press_on_next_moves_only_one_step(live_session, facilitator):
    first, second, _third = [
        await database_sync_to_async(add_activity)(live_session, "single_choice", f"Q{n}")
        for n in (1, 2, 3)
    ]
    await open_activity(live_session, first)
    control, _ = await control_view(live_session, facilitator)
    # Both presses were drawn while Q1 was open, as a double click or a replayed queue sends them.
    await send(control, action="next", **{"from": str(first.pk)})
    await send(control, action="next", **{"from": str(first.pk)})
    await receive_until(control, "already moved on")
    session = await database_sync_to_async(Session.objects.get)(pk=live_session.pk)
    assert session.current_activity_id == second.pk
    await control.disconnect()


async def test_next_from_the_lobby_opens_the_first_activity(live_session, facilitator):
    first = await database_sync_to_async(add_activity)(live_session, "single_choice", "Q1")
    control, _ = await control_view(live_session, facilitator)
    await send(control, action="next", **{"from": ""})
    await receive_until(control, "Open now")
    session = await database_sync_to_async(Session.objects.get)(pk=live_session.pk)
    assert session.current_activity_id == first.pk
    await control.disconnect()


async def test_the_lobby_after_closing_an_activity_shows_the_one_after_it_next(
    live_session, facilitator
):
    first, second = [
        await database_sync_to_async(add_activity)(live_session, "single_choice", f"Q{n}")
        for n in (1, 2)
    ]
    await open_activity(live_session, first)
    control, _ = await control_view(live_session, facilitator)
    await send(control, action="close")
    lobby = await receive_until(control, "Lobby")
    assert re.search(r"Next up</span>\s*Q2", lobby)
    await send(control, action="next", **{"from": ""})
    await receive_until(control, "Now open")
    session = await database_sync_to_async(Session.objects.get)(pk=live_session.pk)
    assert session.current_activity_id == second.pk
    await send(control, action="close")
    assert "Nothing comes after “Q2” on the agenda" in await receive_until(control, "Lobby")
    await control.disconnect()


async def test_closing_joins_refuses_new_phones(live_session, facilitator):
    control, _ = await control_view(live_session, facilitator)
    await send(control, action="lock_joins")
    await receive_until(control, "Let people join")
    await database_sync_to_async(live_session.refresh_from_db)()
    assert live_session.joins_locked
    assert "not taking new participants" in live_session.join_refusal()
    await control.disconnect()


@pytest.mark.parametrize("action", ["next", "open", "close", "lock_answers", "lock_joins"])
async def test_a_phone_can_never_perform_a_facilitator_action(
    live_session, choice_activity, action
):
    phone, _ = await join(live_session)
    await send(phone, action=action, activity=choice_activity.pk)
    assert "not available here" in await phone.receive_from()
    session = await database_sync_to_async(Session.objects.get)(pk=live_session.pk)
    assert session.current_activity_id is None
    assert not session.answers_locked and not session.joins_locked
    await phone.disconnect()


async def test_another_facilitator_cannot_open_the_control_view_or_projector(
    live_session, other_facilitator
):
    cookie = await facilitator_cookie(other_facilitator)
    for view in ("control", "projector"):
        socket = await open_socket(f"/ws/sessions/{live_session.pk}/{view}/", cookie)
        assert "Sign in as this session" in await socket.receive_from()
        assert (await socket.receive_output())["code"] == CLOSE_NOT_ALLOWED
        await socket.disconnect()  # the server closed it; let the consumer finish


async def test_a_signed_out_visitor_cannot_open_the_control_view(live_session):
    socket = await open_socket(f"/ws/sessions/{live_session.pk}/control/")
    assert "Sign in as this session" in await socket.receive_from()
    assert (await socket.receive_output())["code"] == CLOSE_NOT_ALLOWED
    await socket.disconnect()  # the server closed it; let the consumer finish


async def test_permission_is_checked_again_on_every_message(
    live_session, choice_activity, facilitator, other_facilitator
):
    control, _ = await control_view(live_session, facilitator)
    # The session changes hands while the socket is open.
    await database_sync_to_async(Session.objects.filter(pk=live_session.pk).update)(
        facilitator=other_facilitator
    )
    await send(control, action="next")
    assert "not yours to run" in await control.receive_from()
    session = await database_sync_to_async(Session.objects.get)(pk=live_session.pk)
    assert session.current_activity_id is None
    await control.disconnect()


# Origins and commits -----------------------------------------------------------------------


@pytest.mark.parametrize("headers", [[(b"origin", b"http://evil.example")], []])
async def test_a_handshake_from_a_foreign_or_missing_origin_is_refused(live_session, headers):
    communicator = WebsocketCommunicator(
        application, f"/ws/join/{live_session.join_code}/", headers=headers
    )
    connected, _ = await communicator.connect()
    assert not connected


def test_nothing_is_pushed_for_a_change_that_rolls_back(
    live_session, choice_activity, participant, monkeypatch
):
    sent = []
    monkeypatch.setattr(live, "_send", lambda group, message: sent.append(group))
    live_session.open_activity(choice_activity)

    with pytest.raises(RuntimeError), transaction.atomic():
        participant.answer(choice_activity.pk, {"choice": "0"})
        live.after_commit(live.push_results, live_session.pk)
        assert sent == []
        raise RuntimeError("the write fails after the answer")
    assert sent == []
    assert not Answer.objects.exists()

    with transaction.atomic():
        participant.answer(choice_activity.pk, {"choice": "0"})
        live.after_commit(live.push_results, live_session.pk)
        assert sent == []
    assert sent == [live.projector_group(live_session.pk), live.control_group(live_session.pk)]


def test_a_change_phones_show_reaches_the_room_first_from_one_read_stamped_before_it(
    live_session, choice_activity, monkeypatch
):
    # Every phone, then the projector and the control view's live region, then the control
    # view's agenda: the facilitator's own list of steps can wait a moment for the room.
    sent = []
    monkeypatch.setattr(live, "_send", lambda group, message: sent.append(group))
    live_session.open_activity(choice_activity)
    clock = live._database_clock
    read_before_the_clock = []

    def database_clock() -> int:
        read_before_the_clock.append(len(queries.captured_queries))
        return clock()

    monkeypatch.setattr(live, "_database_clock", database_clock)

    with CaptureQueriesContext(connection) as queries:
        live.push_session(live_session.pk)

    assert sent == [
        live.participants_group(live_session.pk),
        live.projector_group(live_session.pk),
        live.control_group(live_session.pk),
        live.control_group(live_session.pk),
    ]
    session_reads = [q for q in queries.captured_queries if 'FROM "live_session"' in q["sql"]]
    assert len(session_reads) == 1
    # Stamped before anything is read: the frame shows at least what was committed by then.
    assert read_before_the_clock == [0]


# Coalesced pushes --------------------------------------------------------------------------


async def phones_and_a_quiet_projector(
    session: Session, activity: Activity, facilitator, phones: int
) -> tuple[list[WebsocketCommunicator], WebsocketCommunicator]:
    """`phones` phones on the open `activity`, and a projector that has had the joins' pushes:
    what it receives next is the answers'."""
    await open_activity(session, activity)
    sockets = [(await join(session))[0] for _ in range(phones)]
    projector, _ = await projector_view(session, facilitator)
    while not await projector.receive_nothing(timeout=settings.ATTUNE_PUSH_INTERVAL + 0.1):
        await projector.receive_from()
    return sockets, projector


async def test_a_burst_of_answers_is_pushed_coalesced_and_ends_on_the_final_count(
    live_session, choice_activity, facilitator, settings
):
    settings.ATTUNE_PUSH_INTERVAL = 0.5
    phones, projector = await phones_and_a_quiet_projector(
        live_session, choice_activity, facilitator, phones=30
    )

    started = asyncio.get_running_loop().time()
    for phone in phones:
        await send(phone, action="answer", activity=choice_activity.pk, choice="1")
    for phone in phones:
        await receive_until(phone, "data-ack")
    frames = []
    while not await projector.receive_nothing(timeout=0.8):
        frames.append(await projector.receive_from())
    took = asyncio.get_running_loop().time() - started

    # One push per half second at most (and one at the start), not one per answer ...
    assert len(frames) <= 2 + took / 0.5, f"{len(frames)} pushes in {took:.1f}s"
    assert len(frames) < len(phones)
    # ... and the last one shows every answer.
    assert "30 answers" in frames[-1]
    for socket in [*phones, projector]:
        await socket.disconnect()


async def test_two_processes_together_push_a_session_at_most_once_per_interval(
    live_session, choice_activity, facilitator, settings
):
    # A session's phones on two server processes: both ask for pushes at the same pace, and
    # the projector still gets one push per interval, the last one with every answer.
    settings.ATTUNE_PUSH_INTERVAL = 0.5
    phones, projector = await phones_and_a_quiet_projector(
        live_session, choice_activity, facilitator, phones=20
    )
    loop = asyncio.get_running_loop()
    other_process = live.ResultsPushes(loop)  # this process's own is live.results_changed's

    started = loop.time()
    for phone in phones:
        await send(phone, action="answer", activity=choice_activity.pk, choice="1")
        await receive_until(phone, "data-ack")
        other_process.request(live_session.pk)
        await asyncio.sleep(0.1)
    frames, last_frame_at = [], started
    while not await projector.receive_nothing(timeout=1.2):
        frames.append(await projector.receive_from())
        last_frame_at = loop.time()
    took = last_frame_at - started

    # One push per half-second slice of the clock at most, from both processes together.
    assert len(frames) <= 2 + took / 0.5, f"{len(frames)} pushes in {took:.1f}s"
    assert "20 answers" in frames[-1]
    for socket in [*phones, projector]:
        await socket.disconnect()


async def test_a_change_while_another_process_has_the_push_is_pushed_after_it(
    live_session, choice_activity, facilitator, settings
):
    # Another process claimed this moment's push and may have read the session before this
    # process's answer: this process pushes again in the next slice, with the answer.
    settings.ATTUNE_PUSH_INTERVAL = 0.5
    (phone,), projector = await phones_and_a_quiet_projector(
        live_session, choice_activity, facilitator, phones=1
    )

    await asyncio.sleep(0.51 - time.time() % 0.5)  # early in a slice: it lasts while we answer
    assert await database_sync_to_async(live.claim_push)(live_session.pk) is None  # theirs
    await send(phone, action="answer", activity=choice_activity.pk, choice="1")
    await receive_until(phone, "data-ack")

    assert "1 answer" in await projector.receive_from(timeout=2)
    await phone.disconnect()
    await projector.disconnect()


async def test_with_the_clock_stopped_the_last_state_is_still_pushed(
    live_session, choice_activity, facilitator, settings
):
    # Slices follow the wall clock. A clock that stands still (or is set back) must not keep a
    # change waiting for a slice that never comes.
    settings.ATTUNE_PUSH_INTERVAL = 0.2
    phones, projector = await phones_and_a_quiet_projector(
        live_session, choice_activity, facilitator, phones=2
    )

    with time_machine.travel(timezone.now() + timedelta(hours=1), tick=False):
        for phone in phones:
            await send(phone, action="answer", activity=choice_activity.pk, choice="1")
            await receive_until(phone, "data-ack")
        await receive_until(projector, "2 answers", timeout=2)
    for socket in [*phones, projector]:
        await socket.disconnect()


async def test_phones_share_one_rendered_stage_but_one_that_answered_sees_its_own(
    live_session, choice_activity
):
    other = await database_sync_to_async(add_activity)(live_session, "scale", "How tired?")
    await open_activity(live_session, choice_activity)
    answered, _ = await join(live_session)
    silent, _ = await join(live_session)
    await send(answered, action="answer", activity=choice_activity.pk, choice="2")
    await receive_until(answered, "data-ack")

    await database_sync_to_async(live.push_session)(live_session.pk)  # nothing changed: same stage
    mine = await receive_until(answered, "phone-stage")
    theirs = await receive_until(silent, "phone-stage")
    assert 'value="2" checked' in mine
    assert "checked" not in theirs

    await open_activity(live_session, other)
    await database_sync_to_async(live.push_session)(live_session.pk)
    assert "How tired?" in await receive_until(answered, "phone-stage")
    assert "How tired?" in await receive_until(silent, "phone-stage")
    await answered.disconnect()
    await silent.disconnect()


async def test_closing_answers_renders_each_different_answer_once_not_each_phone(
    live_session, choice_activity, facilitator
):
    """Once a room has answered, a change every phone shows (answers closed, a paused timer)
    reaches each phone with its own answer, from one render for each different answer in each
    language rather than one render, and one database trip, for each phone."""
    await open_activity(live_session, choice_activity)
    control, _ = await control_view(live_session, facilitator)
    answers = ["0"] * 6 + ["1"] * 4 + ["pass"] * 2
    phones = [(await join(live_session))[0] for _ in answers]
    silent, _ = await join(live_session)
    for number, (phone, answer) in enumerate(zip(phones, answers, strict=True)):
        action = "pass" if answer == "pass" else "answer"
        client_id = f"phone-answer-{number}"
        await send(
            phone, action=action, activity=choice_activity.pk, choice=answer, client_id=client_id
        )
        await receive_until(phone, client_id)
    rendered = []

    def record(sender, template, **kwargs):
        rendered.append(template.name)

    template_rendered.connect(record)
    try:
        await send(control, action="lock_answers")
        stages = [await receive_until(phone, "Answers are closed") for phone in [*phones, silent]]
    finally:
        template_rendered.disconnect(record)

    shown = [re.findall(r'value="(\d)" checked', stage) for stage in stages]
    assert shown == [["0"]] * 6 + [["1"]] * 4 + [[]] * 2 + [[]]
    # No answer, "0", "1" and the pass, in each language: not one for each of the 13 phones.
    assert rendered.count("sessions/partials/phone_stage.html") == 4 * len(settings.LANGUAGES)
    for socket in (*phones, silent, control):
        await socket.disconnect()


@pytest.mark.parametrize(
    ("kind", "data"),
    [
        (Activity.Kind.SINGLE_CHOICE, {"choice": "2"}),
        (Activity.Kind.MULTIPLE_CHOICE, {"choice": ["0", "2"]}),
        (Activity.Kind.SCALE, {"value": "3"}),
        (Activity.Kind.WORD_CLOUD, {"word": ["hope", "tea"]}),
        (Activity.Kind.OPEN_TEXT, {"text": "A walk"}),
    ],
)
@pytest.mark.parametrize("locked", [False, True])
def test_a_shared_stage_is_the_very_stage_each_phone_would_render_itself(
    live_session, kind, data, locked
):
    activity = add_activity(live_session, kind, "How was it?")
    live_session.open_activity(activity)
    answering, passing, silent = (
        [live_session.add_participant()[0] for _ in range(count)] for count in (2, 2, 1)
    )
    for person in answering:
        person.answer(activity.pk, data)
    for person in passing:
        AnswerBatch.store_one(AnswerRequest(person, activity.pk, {}, passed=True))
    live_session.set_answers_locked(locked)

    refresh = live._shared_phone_stage(live.read_for_render(live_session.pk))

    for person in [*answering, *passing, *silent]:
        for language, _name in settings.LANGUAGES:
            shared = live.stage_from_refresh(refresh, person.pk, language)
            with translation.override(language):
                assert shared == _render_phone(person.pk)


async def test_a_phone_that_changed_its_answer_after_a_push_was_read_shows_its_new_answer(
    live_session, choice_activity
):
    """A push lists which phones gave which answer as it read them; a phone that changed its
    answer since (its acknowledgement came first) must not be shown the old one."""
    await open_activity(live_session, choice_activity)
    changing, _ = await join(live_session)
    steady, _ = await join(live_session)
    for number, phone in enumerate((changing, steady)):
        await send(
            phone,
            action="answer",
            activity=choice_activity.pk,
            choice="0",
            client_id=f"phone-answer-a{number}",
        )
        await receive_until(phone, f"phone-answer-a{number}")
    read_before = await database_sync_to_async(
        lambda: live._shared_phone_stage(live.read_for_render(live_session.pk))
    )()
    await send(
        changing,
        action="answer",
        activity=choice_activity.pk,
        choice="1",
        client_id="phone-answer-b0",
    )
    await receive_until(changing, "phone-answer-b0")

    await get_channel_layer().group_send(
        live.participants_group(live_session.pk), {"type": "phone.refresh", **read_before}
    )

    assert re.findall(r'value="(\d)" checked', await receive_until(changing, "phone-stage")) == [
        "1"
    ]
    assert re.findall(r'value="(\d)" checked', await receive_until(steady, "phone-stage")) == ["0"]
    await send(changing, action="withdraw")
    await receive_until(changing, "answer deleted")
    await get_channel_layer().group_send(
        live.participants_group(live_session.pk), {"type": "phone.refresh", **read_before}
    )
    assert "checked" not in await receive_until(changing, "phone-stage")
    await changing.disconnect()
    await steady.disconnect()


@pytest.mark.skipif(
    "CONFIG" not in settings.CHANNEL_LAYERS["default"], reason="the pitfall is Redis's own"
)
async def test_a_room_of_phones_connecting_at_once_all_get_their_stage(live_session):
    """Each socket joins a group as it connects, and on the Redis layer each join holds one of
    the layer's Redis connections meanwhile: the pool must not run out (MaxConnectionsError)
    when a room connects together. (With a pool of 20 this test fails.)"""
    tokens = [(await database_sync_to_async(live_session.add_participant)())[1] for _ in range(150)]

    async def phone(token: str) -> str:
        cookie = (b"cookie", f"{participant_cookie(live_session.join_code)}={token}".encode())
        socket = await open_socket(f"/ws/join/{live_session.join_code}/", cookie)
        try:
            return await socket.receive_from(timeout=30)
        finally:
            # Time to leave: 150 phones leaving at once queue for the database.
            await socket.disconnect(timeout=30)

    stages = await asyncio.gather(*(phone(token) for token in tokens))

    assert all('id="phone-stage"' in stage for stage in stages)


async def test_pushes_and_new_phones_never_wait_behind_database_work(
    live_session, choice_activity, facilitator
):
    """Every database call runs on one thread, which a batch of answers keeps busy for tens of
    milliseconds and a room joining at once for seconds. Meanwhile what is already rendered
    still reaches the projector and the phones, and a new phone's handshake is still accepted
    (Daphne drops one that is not accepted within 5 s)."""
    await open_activity(live_session, choice_activity)
    projector, first_stage = await projector_view(live_session, facilitator)
    phone, first_phone_stage = await join(live_session)
    assert "Did you sleep well?" in first_stage
    assert "Did you sleep well?" in first_phone_stage

    def render() -> tuple[str, dict]:
        session = live.read_for_render(live_session.pk)
        projector_html = live.render_projector_stage(live.live_context(session))
        return projector_html, live._shared_phone_stage(session)

    projector_html, phone_stage = await database_sync_to_async(render)()
    _participant, token = await database_sync_to_async(live_session.add_participant)()
    cookie = (b"cookie", f"{participant_cookie(live_session.join_code)}={token}".encode())
    newcomer = WebsocketCommunicator(
        application, f"/ws/join/{live_session.join_code}/", headers=[ORIGIN, cookie]
    )
    layer = get_channel_layer()

    release = threading.Event()
    database_busy = asyncio.ensure_future(database_sync_to_async(release.wait)(10))
    try:
        await layer.group_send(
            live.projector_group(live_session.pk), {"type": "html.push", "html": projector_html}
        )
        await layer.group_send(
            live.participants_group(live_session.pk), {"type": "phone.refresh", **phone_stage}
        )
        assert "Did you sleep well?" in await projector.receive_from(timeout=1)
        assert "Did you sleep well?" in await phone.receive_from(timeout=1)
        connected, _ = await newcomer.connect(timeout=1)
        assert connected
        assert not database_busy.done()
    finally:
        release.set()
        await database_busy
    assert "Did you sleep well?" in await newcomer.receive_from()
    for socket in (projector, phone, newcomer):
        await socket.disconnect()
