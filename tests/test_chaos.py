"""Reliability under faults: Redis going away, a server process crashing, a server restarting.

Real server processes on the test database (PostgreSQL) and a real Redis channel layer, with
phones and a projector that behave like the pages do: they reconnect by themselves, and a phone
resends its unacknowledged answer with the same client id. What must hold: every answer the
server acknowledged is stored, once; the projector comes back to the stored count by itself.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from urllib.parse import urlsplit

import pytest
from channels.db import database_sync_to_async
from django.conf import settings
from django.db import connections
from django.test import override_settings

from sessions.models import (
    Activity,
    Answer,
    Connection,
    ServerProcess,
    Session,
    participant_cookie,
)
from tests.chaos_support import (
    PRESENCE_TIMEOUT,
    Clients,
    FaultProxy,
    PhoneClient,
    Server,
    ViewClient,
    eventually,
    free_port,
)
from tests.conftest import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, REAL_SERVICES, _database_url

pytestmark = [
    pytest.mark.chaos,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        not REAL_SERVICES,
        reason="chaos tests need real services: set DATABASE_URL=postgres://… and REDIS_URL",
    ),
]


# Fixtures and helpers ----------------------------------------------------------------------


@pytest.fixture
def servers(transactional_db) -> Iterator[Callable[..., Server]]:
    """Makes server processes on the test database; stops whichever still run at the end."""
    made: list[Server] = []

    def make(name: str, redis_url: str = settings.REDIS_URL) -> Server:
        server = Server(name, free_port(), _database_url(connections["default"]), redis_url)
        made.append(server)
        return server

    try:
        yield make
    finally:
        for server in made:
            server.stop(signal.SIGKILL)


@pytest.fixture
def redis_proxy() -> Iterator[FaultProxy]:
    """Redis behind a proxy that can cut it off. Ask for it before `servers`: the servers then
    stop before the proxy does."""
    redis = urlsplit(settings.REDIS_URL)
    with FaultProxy(redis.hostname or "127.0.0.1", redis.port or 6379) as proxy:
        yield proxy


@pytest.fixture
async def clients(request, servers) -> AsyncIterator[Clients]:
    """Closed before the servers stop; what each client saw is kept in test-artifacts/."""
    opened = Clients()
    try:
        yield opened
    finally:
        await opened.close()
        ARTIFACTS.mkdir(exist_ok=True)
        (ARTIFACTS / f"chaos-{request.node.name}-clients.log").write_text(opened.report())


def add_phones(session: Session, count: int) -> list[tuple[int, str]]:
    """`count` participants: each one's id and the token their phone's cookie holds."""
    return [
        (participant.pk, token)
        for participant, token in (session.add_participant() for _ in range(count))
    ]


def stored_answers(activity: Activity) -> dict[int, list[Answer]]:
    """The activity's answers, by participant."""
    by_participant: dict[int, list[Answer]] = {}
    for answer in Answer.objects.filter(activity=activity):
        by_participant.setdefault(answer.participant_id, []).append(answer)
    return by_participant


async def each_phone_counted_once(session: Session, phones: int, timeout: float = 8) -> None:
    """Wait until each phone counts as connected once, as "Connected now" and pairing see it:
    sockets that broke were counted out, those that came back in, and the sockets of a stopped
    process no longer count."""

    def present_sockets() -> list[int]:
        with override_settings(ATTUNE_PRESENCE_TIMEOUT=PRESENCE_TIMEOUT):
            alive = ServerProcess.objects.alive()
            rows = Connection.objects.filter(participant__session=session, server__in=alive)
            by_phone = Counter(rows.values_list("participant", flat=True))
        return sorted(by_phone[pk] for pk in session.participants.values_list("pk", flat=True))

    deadline = time.monotonic() + timeout
    counted = None
    while time.monotonic() < deadline:
        counted = await database_sync_to_async(present_sockets)()
        if counted == [1] * phones:
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"open sockets counted per phone: {counted}, expected 1 each")


def answered_count(activity: Activity) -> int:
    return Answer.objects.filter(activity=activity, passed=False).count()


def phone_url(server: Server, session: Session) -> str:
    return f"{server.ws_url}/ws/join/{session.join_code}/"


def view_url(server: Server, session: Session, view: str) -> str:
    return f"{server.ws_url}/ws/sessions/{session.pk}/{view}/"


def facilitator_views(
    clients: Clients, server: Server, session: Session, cookie: str
) -> tuple[ViewClient, ViewClient]:
    """The control view and the projector of `session`, both on `server`."""
    control, projector = (
        clients.view(view, [view_url(server, session, view)], cookie)
        for view in ("control", "projector")
    )
    return control, projector


def phones_of(
    clients: Clients, participants: list[tuple[int, str]], urls: Callable[[int], list[str]]
) -> list[PhoneClient]:
    """A phone for each participant; `urls(index)`: the servers it tries, in order."""
    return [
        clients.phone(f"phone-{index}", urls(index), token)
        for index, (_participant_id, token) in enumerate(participants)
    ]


async def until(condition: Callable[[], bool], timeout: float, what: str, *clients_seen) -> None:
    if not await eventually(condition, timeout):
        stories = "\n".join(client.report() for client in clients_seen)
        raise AssertionError(f"not within {timeout}s: {what}\n{stories}")


async def open_for_everyone(
    control: ViewClient, activity: Activity, phones: list[PhoneClient]
) -> None:
    """The facilitator opens the activity from the control view; every phone shows it."""
    await until(lambda: control.connected.is_set(), 10, "the control view connects", control)
    assert await control.send_json({"action": "open", "activity": str(activity.pk)})
    await until(
        lambda: all(phone.open_activity() == str(activity.pk) for phone in phones),
        10,
        "every phone shows the opened question",
        *phones,
    )


async def converge(
    projector: ViewClient, phones: list[PhoneClient], activity: Activity, timeout: float
) -> tuple[bool, int]:
    """Wait until no phone waits for an acknowledgement and the projector shows the stored
    count, and still does half a second later (a late, older push would undo it); whether that
    happened within `timeout`, and the stored count."""
    started = time.monotonic()
    held_since = None
    while True:
        stored = await database_sync_to_async(answered_count)(activity)
        if all(phone.settled for phone in phones) and projector.total == stored:
            held_since = held_since or time.monotonic()
            if time.monotonic() - held_since >= 0.5:
                projector.log(f"converged {held_since - started:.1f}s after the fault ended")
                return True, stored
        else:
            held_since = None
        if time.monotonic() - started > timeout:
            return False, stored
        await asyncio.sleep(0.1)


def assert_last_acknowledged_answers_stored(
    phones: list[PhoneClient], participant_ids: list[int], stored: dict[int, list[Answer]]
) -> None:
    """Each phone's row is the one answer it last had acknowledged: nothing lost, no double."""
    for phone, participant_id in zip(phones, participant_ids, strict=True):
        rows = stored.get(participant_id, [])
        if not phone.acknowledged:
            assert rows == [], f"{phone.name} never had an answer acknowledged, yet {rows} stored"
            continue
        assert len(rows) == 1, f"{phone.name}: {len(rows)} answers stored for one activity"
        last = phone.acknowledged[-1]
        assert rows[0].client_id == last, (
            f"{phone.name}: stored answer {rows[0].client_id!r}, last acknowledged {last!r}\n"
            + phone.report()
        )
        assert rows[0].value == [int(phone.choice_sent_as(last))], phone.report()
        assert not rows[0].passed


def outage_story(server: Server, *seen) -> str:
    return "\n".join([*(client.report() for client in seen), server.log_text()[-6000:]])


# Redis goes away ---------------------------------------------------------------------------


async def test_answers_survive_a_redis_outage_and_the_projector_catches_up(
    live_session, choice_activity, facilitator_cookie, redis_proxy, servers, clients
):
    server = servers("redis-outage", redis_url=redis_proxy.url_for(settings.REDIS_URL))
    await asyncio.to_thread(server.start)
    participants = await database_sync_to_async(add_phones)(live_session, 10)
    control, projector = facilitator_views(clients, server, live_session, facilitator_cookie)
    phones = phones_of(clients, participants, lambda _index: [phone_url(server, live_session)])
    await open_for_everyone(control, choice_activity, phones)

    # Six phones answer while all is well.
    for phone in phones[:6]:
        await phone.answer("0")
    await until(lambda: all(phone.settled for phone in phones[:6]), 10, "six acks", *phones)
    await until(lambda: projector.total == 6, 5, "the projector shows 6 answers", projector)

    # Redis goes away for three seconds. Meanwhile three phones change their answer and four
    # answer for the first time, spread over the outage.
    assert redis_proxy.cut(), "the server had no connection to Redis through the proxy"
    cut_at = time.monotonic()
    during = [(0.2, 0, "1"), (0.5, 6, "2"), (0.9, 1, "1"), (1.3, 7, "2")]
    during += [(1.7, 2, "1"), (2.1, 8, "2"), (2.5, 9, "2"), (2.8, 0, "2")]
    for at, index, choice in during:
        await asyncio.sleep(max(0, cut_at + at - time.monotonic()))
        await phones[index].answer(choice)
    await asyncio.sleep(max(0, cut_at + 3 - time.monotonic()))
    redis_proxy.restore()

    # Within five seconds of Redis coming back, every phone has its answer acknowledged and
    # the projector shows what is stored.
    converged, stored_count = await converge(projector, phones, choice_activity, timeout=5)
    assert converged, (
        f"5 s after Redis came back: phones waiting {[p.name for p in phones if not p.settled]}, "
        f"projector shows {projector.total}, {stored_count} stored\n"
        + outage_story(server, projector, *phones)
    )
    stored = await database_sync_to_async(stored_answers)(choice_activity)
    assert_last_acknowledged_answers_stored(phones, [pk for pk, _ in participants], stored)
    assert stored_count == len(phones) == projector.total
    # The sockets that broke were counted out, and the ones that came back in: each phone is
    # connected once, as the control view's "Connected now" says.
    await each_phone_counted_once(live_session, len(phones))


# A server process crashes -------------------------------------------------------------------


async def test_phones_move_to_the_surviving_server_when_one_is_killed(
    live_session, choice_activity, facilitator_cookie, servers, clients
):
    doomed, survivor = servers("crash-doomed"), servers("crash-survivor")
    await asyncio.gather(asyncio.to_thread(doomed.start), asyncio.to_thread(survivor.start))
    participants = await database_sync_to_async(add_phones)(live_session, 10)
    both = [phone_url(doomed, live_session), phone_url(survivor, live_session)]
    # Half the phones start on each server; each moves to the other one when its server fails.
    phones = phones_of(clients, participants, lambda index: both if index % 2 == 0 else both[::-1])
    control, projector = facilitator_views(clients, survivor, live_session, facilitator_cookie)
    await open_for_everyone(control, choice_activity, phones)

    for phone in phones[:5]:
        await phone.answer("0")
    await until(lambda: all(phone.settled for phone in phones[:5]), 10, "five acks", *phones)

    # Every phone sends an answer, and the doomed server dies with some of them in flight.
    for index, phone in enumerate(phones):
        await phone.answer("2" if index < 5 else "1")
    await asyncio.sleep(0.02)
    await asyncio.to_thread(doomed.stop, signal.SIGKILL)
    # For the story: which answers were stored but never acknowledged (their resend is a replay).
    at_crash = await database_sync_to_async(stored_answers)(choice_activity)
    stored_ids = {rows[0].client_id for rows in at_crash.values()}
    for phone in phones:
        if phone.pending is not None and phone.pending.client_id in stored_ids:
            phone.log(f"{phone.pending.client_id} was stored before the crash, not acknowledged")

    converged, stored_count = await converge(projector, phones, choice_activity, timeout=10)
    assert converged, (
        f"10 s after the crash: phones waiting {[p.name for p in phones if not p.settled]}, "
        f"projector shows {projector.total}, {stored_count} stored\n"
        + outage_story(survivor, projector, *phones)
    )
    stored = await database_sync_to_async(stored_answers)(choice_activity)
    assert_last_acknowledged_answers_stored(phones, [pk for pk, _ in participants], stored)
    acknowledged_phones = sum(bool(phone.acknowledged) for phone in phones)
    assert projector.total == stored_count == acknowledged_phones == len(phones)
    for phone in phones[::2]:
        assert phone.url == both[1], f"{phone.name} did not move on\n{phone.report()}"
    # The killed process's sockets no longer count as connected phones.
    await each_phone_counted_once(live_session, len(phones))


# A server restarts --------------------------------------------------------------------------


async def test_phones_and_the_projector_resync_after_a_server_restart(
    live_session, choice_activity, facilitator_cookie, servers, clients
):
    server = servers("restart")
    await asyncio.to_thread(server.start)
    participants = await database_sync_to_async(add_phones)(live_session, 6)
    control, projector = facilitator_views(clients, server, live_session, facilitator_cookie)
    phones = phones_of(clients, participants, lambda _index: [phone_url(server, live_session)])
    await open_for_everyone(control, choice_activity, phones)
    for index, phone in enumerate(phones[:5]):
        await phone.answer(str(index % 3))
    await until(lambda: all(phone.settled for phone in phones[:5]), 10, "five acks", *phones)
    await until(lambda: projector.total == 5, 5, "the projector shows 5 answers", projector)
    before = await database_sync_to_async(stored_answers)(choice_activity)

    # A deploy: the process is told to stop, and a new one starts on the same port. One phone
    # answers while no server is there.
    await asyncio.to_thread(server.stop, signal.SIGTERM)
    await phones[5].answer("1")
    await asyncio.to_thread(server.start)

    converged, stored_count = await converge(projector, phones, choice_activity, timeout=10)
    assert converged, (
        f"10 s after the restart: phones waiting {[p.name for p in phones if not p.settled]}, "
        f"projector shows {projector.total}, {stored_count} stored\n"
        + outage_story(server, projector, *phones)
    )
    stored = await database_sync_to_async(stored_answers)(choice_activity)
    assert_last_acknowledged_answers_stored(phones, [pk for pk, _ in participants], stored)
    assert {pk: rows[0].client_id for pk, rows in before.items()} == {
        pk: rows[0].client_id for pk, rows in stored.items() if pk in before
    }
    assert projector.total == stored_count == 6
    assert projector.connections >= 2, projector.report()
    await each_phone_counted_once(live_session, len(phones))
    # Each phone shows the open question again, with its own choice ticked.
    for phone in phones:
        assert phone.connections >= 2, phone.report()
        assert phone.open_activity() == str(choice_activity.pk), phone.report()
        assert phone.checked_choices() == [phone.sent[-1].message["choice"]], phone.report()


PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True}
# Which close codes the pages saw, to tell how they came back.
RECORD_CLOSES = """window.attuneCloses = [];
document.addEventListener("htmx:wsClose", (event) => {
  window.attuneCloses.push(event.detail.event.code);
});"""


@pytest.mark.e2e
def test_browser_pages_show_reconnecting_and_recover_by_themselves_after_a_restart(
    live_session, choice_activity, facilitator_cookie, servers
):
    from playwright.sync_api import expect, sync_playwright

    live_session.open_activity(choice_activity)
    _participant, token = live_session.add_participant()
    server = servers("restart-browser")
    server.start()
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            phone_context = chromium.new_context(**PHONE)
            phone_context.add_cookies(
                [
                    {
                        "name": participant_cookie(live_session.join_code),
                        "value": token,
                        "url": server.http_url,
                    }
                ]
            )
            phone_context.add_init_script(RECORD_CLOSES)
            phone = phone_context.new_page()
            phone.goto(f"{server.http_url}/join/{live_session.join_code}/")
            laptop = chromium.new_context(viewport={"width": 1280, "height": 800})
            laptop.add_cookies(
                [
                    {
                        "name": settings.SESSION_COOKIE_NAME,
                        "value": facilitator_cookie,
                        "url": server.http_url,
                    }
                ]
            )
            laptop.add_init_script(RECORD_CLOSES)
            projector = laptop.new_page()
            projector.goto(f"{server.http_url}/sessions/{live_session.pk}/projector/")
            answered = projector.locator(".projector-answered")
            expect(answered).to_have_text("0 answers")

            phone.get_by_label("Yes").check()
            phone.get_by_role("button", name="Send answer").click()
            expect(phone.get_by_text("Answer received")).to_be_visible()
            expect(answered).to_have_text("1 answer")

            # The server goes away: both pages say so.
            server.stop(signal.SIGTERM)
            for page in (phone, projector):
                status = page.locator("[data-connection-status]")
                expect(status).to_be_visible(timeout=5_000)
                expect(status).to_have_text("Reconnecting…")

            # A new process on the same port: both pages come back by themselves.
            server.start()
            back_at = time.monotonic()
            for page in (phone, projector):
                expect(page.locator("[data-connection-status]")).to_be_hidden(timeout=10_000)
            recovered_in = time.monotonic() - back_at
            expect(phone.get_by_label("Yes")).to_be_checked()

            # And they work: a pass, then a new answer, reach the projector.
            phone.get_by_role("button", name="Pass").click()
            expect(phone.get_by_text("You passed on this one")).to_be_visible()
            expect(answered).to_have_text("0 answers")
            phone.get_by_label("No", exact=True).check()
            phone.get_by_role("button", name="Send answer").click()
            expect(phone.get_by_text("Answer received")).to_be_visible()
            expect(answered).to_have_text("1 answer")
            (ARTIFACTS / "chaos-browser-restart.txt").write_text(
                f"recovered {recovered_in:.1f}s after the new process served; close codes: "
                f"phone {phone.evaluate('window.attuneCloses')}, "
                f"projector {projector.evaluate('window.attuneCloses')}\n"
            )
        finally:
            chromium.close()
