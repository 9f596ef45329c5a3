from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, TextIO
from urllib.parse import quote
from urllib.request import urlopen

import pytest
from asgiref.sync import sync_to_async
from channels.layers import channel_layers, get_channel_layer
from django.conf import settings as django_settings
from django.contrib.auth.models import User
from django.db import connections
from django.test import Client

from sessions import live
from sessions.models import Activity, Participant, Session

if TYPE_CHECKING:
    from playwright.sync_api import Browser


# Test runs sharing one Redis must not flush each other's groups: one key prefix per run, also
# given to the server processes the tests start.
TEST_CHANNEL_PREFIX = f"attune-test-{os.getpid()}"
if "CONFIG" in django_settings.CHANNEL_LAYERS["default"]:
    django_settings.CHANNEL_LAYERS["default"]["CONFIG"]["prefix"] = TEST_CHANNEL_PREFIX


# PostgreSQL and Redis, which the chaos and several-process tests need.
POSTGRESQL = django_settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"
REDIS_LAYER = django_settings.CHANNEL_LAYERS["default"]["BACKEND"].startswith("channels_redis.")
REAL_SERVICES = POSTGRESQL and REDIS_LAYER


@pytest.fixture(autouse=True)
def own_cache(settings):
    """Each test counts its throttles from zero, in a cache of its own.

    A fresh key prefix rather than cache.clear(): on Redis that would flush the whole database,
    which other test runs and the channel layer share. (Entries expire with their window.)
    """
    prefix = f"{TEST_CHANNEL_PREFIX}-{uuid.uuid4().hex[:12]}"
    backend = dict(settings.CACHES["default"], KEY_PREFIX=prefix)
    if backend["BACKEND"].endswith("LocMemCache"):
        backend["LOCATION"] = prefix
    settings.CACHES = {"default": backend}


@pytest.fixture(autouse=True)
def fast_password_hasher(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
async def fresh_channel_layer():
    """Each test gets its own channel layer, emptied (on Redis, groups outlive a test).

    A layer holds asyncio locks and connection pools tied to the event loop that first used
    it, and every test runs on a new loop, so the cached layer must not carry over.
    """
    channel_layers.backends.clear()
    layer = get_channel_layer()
    await layer.flush()
    yield
    await live.pushes_settled()  # a coalesced push still waiting would open a layer of its own
    await layer.flush()
    channel_layers.backends.clear()
    # The thread that ran the consumers' queries may still hold a connection: an open one
    # would stop pytest-django from dropping the PostgreSQL test database at the end.
    await sync_to_async(connections.close_all)()


@pytest.fixture
def facilitator(db) -> User:
    return User.objects.create_user("alice", password="alice-password")


@pytest.fixture
def facilitator_cookie(facilitator) -> str:
    """The facilitator's signed-in Django session, for server processes' projector and control
    view."""
    client = Client()
    client.force_login(facilitator)
    return client.cookies[django_settings.SESSION_COOKIE_NAME].value


@pytest.fixture
def other_facilitator(db) -> User:
    return User.objects.create_user("bob", password="bob-password")


@pytest.fixture
def session(facilitator) -> Session:
    return Session.objects.create(facilitator=facilitator, title="Tuesday circle")


@pytest.fixture
def live_session(session) -> Session:
    session.start()
    return session


def add_activity(session: Session, kind: str, prompt: str = "How are you?", **fields) -> Activity:
    if kind in {Activity.Kind.SINGLE_CHOICE, Activity.Kind.MULTIPLE_CHOICE}:
        fields.setdefault("options", ["Yes", "No", "Not sure"])
    if kind == Activity.Kind.EMOTION:
        fields.setdefault("options", ["Calm", "Anxious", "Hopeful"])
    return Activity.objects.create(session=session, kind=kind, prompt=prompt, **fields)


def socket_frames(page) -> list:
    """The frames the page's sockets receive, collected from each socket's opening: waiting for
    a socket's first frame only once it is open could miss a frame that came at once."""
    frames: list = []
    page.on(
        "websocket", lambda socket: socket.on("framereceived", lambda frame: frames.append(frame))
    )
    return frames


def wait_for_a_frame(page, frames: list) -> None:
    for _ in range(200):
        if frames:
            return
        page.wait_for_timeout(50)
    raise AssertionError("the page's socket sent nothing")


def in_thread(function, *args):
    """Run ORM code while Playwright's event loop owns this thread. The thread's database
    connection goes back when it is done (on PostgreSQL, to the pool)."""

    def run():
        try:
            return function(*args)
        finally:
            connections.close_all()

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(run).result()


@pytest.fixture
def choice_activity(live_session) -> Activity:
    return add_activity(live_session, Activity.Kind.SINGLE_CHOICE, "Did you sleep well?")


@pytest.fixture
def participant(live_session) -> Participant:
    participant, _token = live_session.add_participant()
    return participant


# Browser tests -----------------------------------------------------------------------------

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
# As root in a sandbox, and with no network beyond this machine: see docs/development.md.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def live_server_log() -> Iterator[TextIO]:
    """What the live server prints, its access log included (in test-artifacts/daphne.log).

    A new file rather than the last one emptied: a test run started meanwhile gets a file of its
    own, and this handle still reads this run's server. Opened to append, so that reading it
    does not move where the server writes. At the end the log is printed: pytest shows it under
    a test that failed (the file holds only the last test's), and drops it otherwise.
    """
    path = ARTIFACTS / "daphne.log"
    ARTIFACTS.mkdir(exist_ok=True)
    path.unlink(missing_ok=True)
    with path.open("a+") as log:
        yield log
        log.seek(0)
        print("The live server's log:", log.read()[-20_000:], sep="\n")


@pytest.fixture
def live_server_url(transactional_db, live_server_log) -> Iterator[str]:
    """A real Daphne server (HTTP and WebSockets) on the test database, as `./start` runs it,
    but for the hourly retention rule, which would delete the answers of the tests' sessions
    that ended long ago (tests/test_review.py runs it)."""
    with live_server(live_server_log, ATTUNE_RETENTION_SWEEP_SECONDS="0") as url:
        yield url


@contextmanager
def live_server(log: TextIO, **environment: str) -> Iterator[str]:
    """A real server process on the test database, with `environment` added to its own.

    A separate interpreter rather than a fork: a forked child would inherit the event-loop and
    thread-pool state of the tests that ran before it.
    """
    port = _free_port()
    environment = {
        **os.environ,
        "DATABASE_URL": _database_url(connections["default"]),
        "CHANNEL_PREFIX": TEST_CHANNEL_PREFIX,
        **environment,
    }
    server = subprocess.Popen(  # noqa: S603 (a fixed command line)
        server_command(port),
        cwd=ROOT,
        env=environment,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://localhost:{port}"
    try:
        _wait_until_serving(url, server)
        yield url
    finally:
        stop_server(server)


def server_command(port: int) -> list[str]:
    """A server process as `./start` runs it: Daphne, with an access log without addresses."""
    return [
        *(sys.executable, "-m", "facilitation.serve", "--bind", "127.0.0.1", "--port", str(port)),
        *("--access-log", "-", "facilitation.asgi:application"),
    ]


def stop_server(server: subprocess.Popen) -> None:
    server.terminate()
    try:
        server.wait(timeout=10)
    except subprocess.TimeoutExpired:
        # Stuck closing sockets: it must not outlive the test and hold the test database.
        server.kill()
        server.wait(timeout=10)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _database_url(connection) -> str:
    settings = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{settings['NAME']}"
    credentials = quote(settings["USER"] or "") + (
        f":{quote(settings['PASSWORD'])}" if settings["PASSWORD"] else ""
    )
    return (
        f"postgres://{credentials}@{settings['HOST'] or 'localhost'}:{settings['PORT'] or 5432}"
        f"/{settings['NAME']}"
    )


def _wait_until_serving(url: str, server: subprocess.Popen) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"Daphne exited; see {ARTIFACTS / 'daphne.log'}")
        try:
            with urlopen(f"{url}/join/", timeout=1):  # noqa: S310 (our own local server)
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("Daphne did not start within 30 seconds")


@pytest.fixture
def browser(live_server_url) -> Iterator[Browser]:
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()
