"""One session served by two server processes, as in production (docs/deploy.md).

Two real server processes on the test database (PostgreSQL) share the Redis channel layer. A
phone is on process A; the projector and the control view are on process B. What one process
does must reach the sockets of the other, and what each counts and times must agree.
"""

from __future__ import annotations

import asyncio
import re
import signal
import time
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from http.cookiejar import CookieJar
from urllib.parse import urlencode
from urllib.request import HTTPCookieProcessor, ProxyHandler, build_opener

import pytest
from django.conf import settings
from django.db import connections

from sessions.models import Activity, Session, participant_cookie
from tests.chaos_support import Clients, LiveClient, Server, eventually, free_port
from tests.conftest import ARTIFACTS, REAL_SERVICES, _database_url, add_activity

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        not REAL_SERVICES,
        reason="several server processes need a shared database and channel layer: "
        "set DATABASE_URL=postgres://… and REDIS_URL",
    ),
]

CSRF_FIELD = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
PROJECTOR_JOINED = re.compile(r'class="projector-count"><strong>(\d+)</strong> joined')
PROJECTOR_ANSWERED = re.compile(r'class="projector-answered">(\d+ answers?)\b')
CONTROL_PRESENT = re.compile(r'data-count="present">(\d+)<')
COUNTDOWN = re.compile(r'data-countdown="(\d+)"')


@pytest.fixture
def two_servers(transactional_db) -> Iterator[tuple[Server, Server]]:
    """Processes A and B on the test database and the same Redis, started side by side."""
    database_url = _database_url(connections["default"])
    pair = (
        Server("processes-a", free_port(), database_url, settings.REDIS_URL),
        Server("processes-b", free_port(), database_url, settings.REDIS_URL),
    )
    try:
        with ThreadPoolExecutor(max_workers=2) as pool:
            list(pool.map(Server.start, pair))
        yield pair
    finally:
        # Stopped as a deploy stops them (SIGTERM), side by side; one that hangs is killed.
        with ThreadPoolExecutor(max_workers=2) as pool:
            list(pool.map(lambda server: server.stop(signal.SIGTERM), pair))


@pytest.fixture
async def clients(request, two_servers) -> AsyncIterator[Clients]:
    """Closed before the servers stop; what each client saw is kept in test-artifacts/."""
    opened = Clients()
    try:
        yield opened
    finally:
        await opened.close()
        # A process told to stop while it still pushes the counts after the last disconnects
        # can hang on exit until it is killed (a push thread waits for the stopped event loop).
        # Let those pushes finish, so the processes stop idle, as after a session.
        await asyncio.sleep(0.5)
        ARTIFACTS.mkdir(exist_ok=True)
        (ARTIFACTS / f"{request.node.name}-clients.log").write_text(opened.report())


@pytest.fixture
def countdown_step(live_session) -> Activity:
    return add_activity(live_session, Activity.Kind.INSTRUCTION, "Breathe out", timer_seconds=60)


def join_through(server: Server, code: str) -> str:
    """Join as a phone does, on this server: the consent page, then "I understand, join".
    The token the phone's cookie now holds."""
    cookies = CookieJar()
    browser = build_opener(HTTPCookieProcessor(cookies), ProxyHandler({}))
    url = f"{server.http_url}/join/{code}/"
    with browser.open(url, timeout=5) as consent:
        csrf_token = CSRF_FIELD.search(consent.read().decode())
    assert csrf_token, "the consent page has no form"
    form = urlencode({"csrfmiddlewaretoken": csrf_token.group(1)}).encode()
    with browser.open(url, data=form, timeout=5) as phone_page:
        assert phone_page.status == 200
    return next(c.value for c in cookies if c.name == participant_cookie(code))


def last_seen(client: LiveClient, pattern: re.Pattern[str]) -> str | None:
    """What `pattern` finds in the last frame of the current connection that has it."""
    for frame in reversed(client.frames_on_current_connection()):
        if match := pattern.search(frame):
            return match.group(1)
    return None


def last_number(client: LiveClient, pattern: re.Pattern[str]) -> int | None:
    seen = last_seen(client, pattern)
    return None if seen is None else int(seen)


async def until(condition, what: str, *seen: LiveClient, timeout: float = 5) -> None:
    if not await eventually(condition, timeout):
        stories = "\n".join(client.report() for client in seen)
        raise AssertionError(f"not within {timeout}s: {what}\n{stories}")


async def countdown_ends_in(client: LiveClient) -> float:
    """When the countdown this client shows will reach zero, by this test's clock."""
    await until(lambda: last_number(client, COUNTDOWN) is not None, "a countdown", client)
    return time.monotonic() + (last_number(client, COUNTDOWN) or 0)


async def test_two_processes_serve_one_session_together(
    live_session: Session, choice_activity, countdown_step, facilitator_cookie, two_servers, clients
):
    process_a, process_b = two_servers
    code = live_session.join_code

    token = await asyncio.to_thread(join_through, process_a, code)
    phone = clients.phone("phone on A", [f"{process_a.ws_url}/ws/join/{code}/"], token)
    views = f"{process_b.ws_url}/ws/sessions/{live_session.pk}"
    control = clients.view("control on B", [f"{views}/control/"], facilitator_cookie)
    projector = clients.view("projector on B", [f"{views}/projector/"], facilitator_cookie)
    await until(
        lambda: last_number(projector, PROJECTOR_JOINED) == 1,
        "the projector on B shows the phone on A as joined",
        projector,
    )

    # (a) The facilitator opens the question on B; the phone on A shows it.
    assert await control.send_json({"action": "open", "activity": str(choice_activity.pk)})
    await until(
        lambda: phone.open_activity() == str(choice_activity.pk),
        "the phone shows it",
        phone,
        control,
    )

    # (b) The phone answers on A; once acknowledged, the projector on B counts it.
    client_id = await phone.answer("0")
    await until(lambda: client_id in phone.acknowledged, "the answer is acknowledged", phone)
    await until(
        lambda: last_seen(projector, PROJECTOR_ANSWERED) == "1 answer",
        "the projector shows 1 answer",
        projector,
    )

    # (d) A second phone joins and connects on B: both processes' phones count, on the
    # projector as joined and on the control view as connected now.
    second_token = await asyncio.to_thread(join_through, process_b, code)
    clients.phone("phone on B", [f"{process_b.ws_url}/ws/join/{code}/"], second_token)
    await until(
        lambda: last_number(projector, PROJECTOR_JOINED) == 2,
        "the projector shows 2 joined",
        projector,
    )
    await until(
        lambda: last_number(control, CONTROL_PRESENT) == 2, "the control view: 2 connected", control
    )

    # (c) A step with a countdown, opened on B: the phone on A, the projector on B and the same
    # phone reloading its page on A (a countdown A works out itself) all end it together.
    assert await control.send_json({"action": "open", "activity": str(countdown_step.pk)})
    ends = [await countdown_ends_in(phone), await countdown_ends_in(projector)]
    reloaded = clients.phone("phone on A, reloaded", [f"{process_a.ws_url}/ws/join/{code}/"], token)
    ends.append(await countdown_ends_in(reloaded))
    assert max(ends) - min(ends) <= 2, f"countdowns end {[round(e - min(ends), 1) for e in ends]}"
    assert 55 <= (last_number(projector, COUNTDOWN) or 0) <= 60

    # Idle sockets stay open: a room listening to the facilitator sends nothing for minutes.
    # (redis-py's default 5 s read timeout once dropped every idle socket with 1011.)
    await asyncio.sleep(7)
    assert await control.send_json({"action": "open", "activity": str(choice_activity.pk)})
    await until(lambda: phone.open_activity() == str(choice_activity.pk), "after 7 s idle", phone)
    for client in (phone, control, projector):
        assert client.connections == 1, f"{client.name} reconnected\n{client.report()}"
