"""Trust over the live sockets: moderation, passes, exactly-once answers, rate limits, sign-out."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
from datetime import timedelta
from socket import gethostname

import pytest
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from django.contrib.sessions.models import Session as LoginSession
from django.core.exceptions import ImproperlyConfigured
from django.db import DatabaseError
from django.test import Client
from django.utils import timezone

from sessions import presence
from sessions.consumers import CLOSE_SIGNED_OUT, CLOSE_TOO_MANY_MESSAGES
from sessions.models import Activity, Answer, AnswerBatch, Connection, ServerProcess
from sessions.text import MAX_COMBINING_MARKS, clean_text
from tests.conftest import add_activity
from tests.test_consumers import (
    control_view,
    join,
    open_activity,
    open_socket,
    projector_view,
    receive_until,
    send,
)
from tests.test_runner import frames_until_quiet

pytestmark = pytest.mark.django_db(transaction=True)


async def answered_by(session, activity, texts: list[str]) -> None:
    for text in texts:
        phone, _ = await join(session)
        await send(phone, action="answer", activity=activity.pk, text=text)
        await receive_until(phone, "data-ack")
        await phone.disconnect()


async def answer_id(text: str) -> int:
    return (await database_sync_to_async(Answer.objects.get)(value=text)).pk


# Moderation --------------------------------------------------------------------------------


async def test_open_text_reaches_the_projector_only_once_approved_and_leaves_when_hidden(
    live_session, facilitator
):
    activity = await database_sync_to_async(add_activity)(live_session, Activity.Kind.OPEN_TEXT)
    await open_activity(live_session, activity)
    projector, _ = await projector_view(live_session, facilitator)
    control, _ = await control_view(live_session, facilitator)
    texts = ["My garden", "A long walk", "Calling my brother", "Music", "Sleep"]
    await answered_by(live_session, activity, texts)

    projected = await frames_until_quiet(projector)
    assert "5 answers" in projected[-1]
    assert "once the facilitator shares them" in projected[-1]
    assert not any(text in frame for frame in projected for text in texts)

    await send(control, action="approve_answer", answer=await answer_id("Music"))
    shown = await receive_until(projector, "Music", timeout=1)
    assert not any(text in shown for text in texts if text != "Music")

    # "Hide" takes it off the projector within a second.
    await send(control, action="hide_answer", answer=await answer_id("Music"))
    frame = await projector.receive_from(timeout=1)
    assert "Music" not in frame
    assert "once the facilitator shares them" in frame
    await projector.disconnect()
    await control.disconnect()


async def test_a_phone_cannot_approve_answers(live_session, facilitator):
    activity = await database_sync_to_async(add_activity)(live_session, Activity.Kind.OPEN_TEXT)
    await open_activity(live_session, activity)
    await answered_by(live_session, activity, ["one", "two", "three", "four", "five"])
    phone, _ = await join(live_session)

    await send(phone, action="approve_answer", answer=await answer_id("one"))

    assert "not available here" in await phone.receive_from()
    moderation = await database_sync_to_async(Answer.objects.get)(value="one")
    assert moderation.moderation == Answer.Moderation.PENDING
    await phone.disconnect()


async def test_answers_of_another_session_cannot_be_moderated(
    live_session, facilitator, other_facilitator
):
    from sessions.models import Session

    elsewhere = await database_sync_to_async(Session.objects.create)(
        facilitator=other_facilitator, title="Elsewhere"
    )
    await database_sync_to_async(elsewhere.start)()
    theirs = await database_sync_to_async(add_activity)(elsewhere, Activity.Kind.OPEN_TEXT)
    await open_activity(elsewhere, theirs)
    await answered_by(elsewhere, theirs, ["their secret"])
    control, _ = await control_view(live_session, facilitator)

    await send(control, action="approve_answer", answer=await answer_id("their secret"))

    assert "not here any more" in await receive_until(control, "notice")
    stored = await database_sync_to_async(Answer.objects.get)(value="their secret")
    assert stored.moderation == Answer.Moderation.PENDING
    await control.disconnect()


async def test_with_auto_approve_texts_go_to_the_projector_at_once(live_session, facilitator):
    live_session.auto_approve = True
    await database_sync_to_async(live_session.save)()
    activity = await database_sync_to_async(add_activity)(live_session, Activity.Kind.OPEN_TEXT)
    await open_activity(live_session, activity)
    projector, _ = await projector_view(live_session, facilitator)

    await answered_by(live_session, activity, ["one", "two", "three", "four", "five"])

    frame = await receive_until(projector, "5 answers")
    assert all(text in frame for text in ["one", "two", "three", "four", "five"])
    await projector.disconnect()


# Passing -----------------------------------------------------------------------------------


def unstamped(frame: str) -> str:
    """What a screen shows of a frame: without the time its counts were read at."""
    return re.sub(r' data-as-of="\d+"', "", frame)


async def test_a_pass_changes_nothing_the_room_sees_but_the_facilitator_counts_it(
    live_session, choice_activity, facilitator
):
    await open_activity(live_session, choice_activity)
    phones = [(await join(live_session))[0] for _ in range(4)]
    projector, _ = await projector_view(live_session, facilitator)
    control, _ = await control_view(live_session, facilitator)
    for phone in phones[:3]:
        await send(phone, action="answer", activity=choice_activity.pk, choice="0")
        await receive_until(phone, "data-ack")
    before = (await frames_until_quiet(projector))[-1]
    await frames_until_quiet(control)

    await send(phones[3], action="pass", activity=choice_activity.pk)
    await receive_until(phones[3], "data-ack")

    after = await frames_until_quiet(projector)
    # Pushed again, it may be; read at a later time, it is; changed, it must not be.
    assert all(unstamped(frame) == unstamped(before) for frame in after), (
        "a pass must not show on the projector"
    )
    assert "pass" not in before.casefold()
    assert 'data-count="passed">1<' in (await frames_until_quiet(control))[-1]
    for socket in [*phones, projector, control]:
        await socket.disconnect()


# Exactly once ------------------------------------------------------------------------------


async def test_a_replayed_answer_is_stored_once_and_acknowledged_each_time(
    live_session, choice_activity, facilitator
):
    await open_activity(live_session, choice_activity)
    phone, _ = await join(live_session)
    control, _ = await control_view(live_session, facilitator)
    message = {
        "action": "answer",
        "activity": choice_activity.pk,
        "choice": "1",
        "client_id": "phone-made-id-0001",
    }

    for _ in range(3):
        await send(phone, **message)
        assert 'data-ack="phone-made-id-0001"' in await receive_until(phone, "data-ack")
    # A change made in between (a new id) is not undone by a late copy of the first message.
    await send(phone, **{**message, "choice": "2", "client_id": "phone-made-id-0002"})
    await receive_until(phone, 'data-ack="phone-made-id-0002"')
    await send(phone, **message)
    await receive_until(phone, 'data-ack="phone-made-id-0001"')

    answers = await database_sync_to_async(list)(Answer.objects.all())
    assert [(answer.value, answer.client_id) for answer in answers] == [([2], "phone-made-id-0002")]
    assert 'data-count="answered">1<' in (await frames_until_quiet(control))[-1]
    await phone.disconnect()
    await control.disconnect()


async def test_a_malformed_client_id_is_refused_and_stores_nothing(live_session, choice_activity):
    await open_activity(live_session, choice_activity)
    phone, _ = await join(live_session)

    for bad in ["short", "x" * 65, "<script>12345", 12345678, ["abcdefgh"]]:
        await send(phone, action="answer", activity=choice_activity.pk, choice="0", client_id=bad)
        frame = await phone.receive_from()
        assert "could not be read" in frame
        assert "data-ack" not in frame

    assert await database_sync_to_async(Answer.objects.count)() == 0
    await phone.disconnect()


async def test_no_acknowledgement_when_the_answer_could_not_be_stored(
    live_session, choice_activity, monkeypatch
):
    await open_activity(live_session, choice_activity)
    phone, _ = await join(live_session)

    def fail(*args, **kwargs):
        raise DatabaseError("the disk is full")

    monkeypatch.setattr(AnswerBatch, "save", fail)
    await send(phone, action="answer", activity=choice_activity.pk, choice="0", client_id="a" * 16)
    frame = await phone.receive_from()
    assert "did not go through" in frame
    assert "data-ack" not in frame

    # The phone sends it again later, with the same id: now it is stored and acknowledged.
    monkeypatch.undo()
    await send(phone, action="answer", activity=choice_activity.pk, choice="0", client_id="a" * 16)
    assert f'data-ack="{"a" * 16}"' in await receive_until(phone, "data-ack")
    assert await database_sync_to_async(Answer.objects.count)() == 1
    await phone.disconnect()


# Rate limits -------------------------------------------------------------------------------


async def test_a_flood_of_messages_is_slowed_then_closed(live_session, choice_activity, settings):
    settings.ATTUNE_MESSAGE_RATE = (30, 10.0)
    await open_activity(live_session, choice_activity)
    phone, _ = await join(live_session)

    frames = []
    for number in range(30):
        await send(phone, action="answer", activity=choice_activity.pk, choice=str(number % 3))
        frames.append(await phone.receive_from())
    assert all("Too many" not in frame for frame in frames)

    await send(phone, action="answer", activity=choice_activity.pk, choice="0")
    assert "Too many messages at once" in await phone.receive_from()
    # Slowed, not closed: a message still gets a reply.
    await send(phone, action="nonsense")
    assert "Too many messages at once" in await phone.receive_from()

    # Sixty messages in the window: the sixty-first closes the socket.
    for _ in range(28):
        await send(phone, action="answer", activity=choice_activity.pk, choice="0")
        assert "Too many messages at once" in await phone.receive_from()
    await send(phone, action="answer", activity=choice_activity.pk, choice="0")
    assert "this connection was closed" in await phone.receive_from()
    assert (await phone.receive_output())["code"] == CLOSE_TOO_MANY_MESSAGES
    await phone.disconnect()  # the server closed it; let the consumer finish


async def test_the_rate_limit_forgets_messages_older_than_its_window(
    live_session, choice_activity, settings
):
    settings.ATTUNE_MESSAGE_RATE = (3, 0.5)
    await open_activity(live_session, choice_activity)
    phone, _ = await join(live_session)
    for _ in range(3):
        await send(phone, action="answer", activity=choice_activity.pk, choice="0")
        assert "Too many" not in await phone.receive_from()
    await send(phone, action="answer", activity=choice_activity.pk, choice="0")
    assert "Too many" in await phone.receive_from()

    await asyncio.sleep(0.6)
    await send(phone, action="answer", activity=choice_activity.pk, choice="1")
    assert "Answer received" in await receive_until(phone, "phone-stage")
    await phone.disconnect()


# Signing out -------------------------------------------------------------------------------


async def test_signing_out_closes_the_control_view_and_projector_of_that_sign_in(
    live_session, facilitator
):
    client = Client()
    await sync_to_async(client.force_login)(facilitator)
    key = client.cookies["sessionid"].value
    cookie = (b"cookie", f"sessionid={key}".encode())
    control = await open_socket(f"/ws/sessions/{live_session.pk}/control/", cookie)
    projector = await open_socket(f"/ws/sessions/{live_session.pk}/projector/", cookie)
    await control.receive_from()
    await projector.receive_from()
    # Another sign-in of the same facilitator (another laptop) is not affected.
    elsewhere, _ = await control_view(live_session, facilitator)

    await sync_to_async(client.post)("/accounts/logout/")

    for socket in [control, projector]:
        assert "You signed out" in await socket.receive_from()
        assert (await socket.receive_output())["code"] == CLOSE_SIGNED_OUT
        await socket.disconnect()  # the server closed it; let the consumer finish
    await send(elsewhere, action="lock_joins")
    assert "Close joining" not in await receive_until(elsewhere, "Let people join")
    await elsewhere.disconnect()


async def test_a_control_message_after_the_sign_in_ended_is_refused(live_session, facilitator):
    control, _ = await control_view(live_session, facilitator)
    # The sign-in ended without the close reaching this socket (an expired or deleted
    # login session, or a lost message): the next message is checked and refused.
    await database_sync_to_async(LoginSession.objects.all().delete)()

    await send(control, action="lock_joins")

    assert "You signed out" in await control.receive_from()
    assert (await control.receive_output())["code"] == CLOSE_SIGNED_OUT
    await control.disconnect()  # the server closed it; let the consumer finish
    await database_sync_to_async(live_session.refresh_from_db)()
    assert not live_session.joins_locked


# Text typed by participants ----------------------------------------------------------------


def test_stacked_combining_marks_are_capped_but_real_accents_are_kept():
    zalgo = "Z" + "\u0336" * 60 + "ero"
    cleaned = clean_text(zalgo, max_length=100)
    assert cleaned.startswith("Z")
    marks = re.match(r"Z(\u0336*)", cleaned).group(1)
    assert len(marks) == MAX_COMBINING_MARKS
    assert cleaned.endswith("ero")
    # Vietnamese stacks two marks on one letter; they stay.
    assert clean_text("Vie\u0302\u0323t", max_length=100) == "Vi\u1ec7t"


async def test_hostile_text_never_becomes_markup_on_any_view(live_session, facilitator):
    live_session.auto_approve = True
    await database_sync_to_async(live_session.save)()
    activity = await database_sync_to_async(add_activity)(live_session, Activity.Kind.WORD_CLOUD)
    await open_activity(live_session, activity)
    projector, _ = await projector_view(live_session, facilitator)
    control, _ = await control_view(live_session, facilitator)
    hostile = ['<b hx-get="/x">', "<script>", "\u202eevil", "zero\u200bwidth"]
    for word in hostile:
        phone, _ = await join(live_session)
        await send(phone, action="answer", activity=activity.pk, word=word)
        frame = await receive_until(phone, "data-ack")
        assert "<script>" not in frame
        await phone.disconnect()

    projected = await frames_until_quiet(projector)
    controlled = await frames_until_quiet(control)
    for last in [projected[-1], controlled[-1]]:
        assert "&lt;b hx-get=&quot;/x&quot;&gt;" in last
        assert "&lt;script&gt;" in last
        assert "evil" in last and "zerowidth" in last
    for frame in projected + controlled:
        assert "<script>" not in frame
        assert 'hx-get="/x"' not in frame
        assert "\u202e" not in frame
        assert "\u200b" not in frame
    await projector.disconnect()
    await control.disconnect()


# Presence ----------------------------------------------------------------------------------


def test_phones_on_a_server_process_that_stopped_beating_no_longer_count(live_session, settings):
    settings.ATTUNE_PRESENCE_TIMEOUT = 30
    here, _ = live_session.add_participant()
    there, _ = live_session.add_participant()
    ServerProcess.beat("alive-process")  # each process beats from its start
    ServerProcess.beat("killed-process")
    here.connected("alive-process")
    there.connected("killed-process")
    assert live_session.present_count() == 2

    # The killed process never said goodbye; it just stopped beating.
    ServerProcess.objects.filter(pk="killed-process").update(
        beat_at=timezone.now() - timedelta(seconds=31)
    )
    assert live_session.present_count() == 1
    assert here.is_present and not there.is_present

    # Long after, a live process's beat forgets it, and its connections with it.
    ServerProcess.objects.filter(pk="killed-process").update(
        beat_at=timezone.now() - timedelta(seconds=301)
    )
    ServerProcess.beat("alive-process")
    assert list(ServerProcess.objects.values_list("pk", flat=True)) == ["alive-process"]
    assert list(Connection.objects.values_list("participant", flat=True)) == [here.pk]


def test_a_second_process_is_refused_beside_one_on_the_in_memory_layer(settings):
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    alive = {"beat_at": timezone.now(), "host": gethostname(), "in_memory_layer": True}
    ServerProcess.objects.create(pk="other-process", pid=os.getppid(), **alive)

    with pytest.raises(ImproperlyConfigured, match="set REDIS_URL for every process"):
        presence.refuse_to_share_in_memory_layer()

    # A process that was stopped a moment ago still looks alive, but is not running any more.
    gone = subprocess.Popen(["true"])  # noqa: S607 (a fixed command)
    gone.wait()
    ServerProcess.objects.filter(pk="other-process").update(pid=gone.pid)
    presence.refuse_to_share_in_memory_layer()
    assert ServerProcess.objects.filter(pk=presence.SERVER_ID).exists()


def test_processes_on_a_shared_channel_layer_run_side_by_side(settings):
    settings.CHANNEL_LAYERS = {
        "default": {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {}}
    }
    ServerProcess.objects.create(
        pk="other-process",
        beat_at=timezone.now(),
        host="another-machine",
        pid=1234,
        in_memory_layer=False,
    )
    presence.refuse_to_share_in_memory_layer()
    assert ServerProcess.objects.alive().count() == 2
