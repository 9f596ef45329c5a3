from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from channels.layers import get_channel_layer
from django.contrib.auth.models import User
from django.db import connections

from sessions.models import Activity, Participant, Session

if TYPE_CHECKING:
    from playwright.sync_api import Browser


@pytest.fixture(autouse=True)
def fast_password_hasher(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
async def empty_channel_layer():
    """Each test starts with no groups or queued messages (matters on the shared Redis layer)."""
    layer = get_channel_layer()
    await layer.flush()
    yield
    await layer.flush()


@pytest.fixture
def facilitator(db) -> User:
    return User.objects.create_user("alice", password="alice-password")


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


@pytest.fixture
def choice_activity(live_session) -> Activity:
    return add_activity(live_session, Activity.Kind.SINGLE_CHOICE, "Did you sleep well?")


@pytest.fixture
def participant(live_session) -> Participant:
    participant, _token = live_session.add_participant()
    return participant


# Browser tests -----------------------------------------------------------------------------

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
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
def live_server_url(transactional_db) -> Iterator[str]:
    """A real Daphne server (HTTP and WebSockets) in a forked process, on the test database."""
    from daphne.testing import DaphneProcess
    from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler

    # The child must open its own database connections, not share the parent's.
    connections.close_all()
    server = DaphneProcess("localhost", partial(_application, ASGIStaticFilesHandler))
    server.start()
    if not server.ready.wait(timeout=30):
        server.terminate()
        raise RuntimeError("Daphne did not start")
    try:
        yield f"http://localhost:{server.port.value}"
    finally:
        server.terminate()
        server.join(timeout=10)


def _application(static_wrapper):
    from channels.routing import get_default_application

    return static_wrapper(get_default_application())


@pytest.fixture
def browser(live_server_url) -> Iterator[Browser]:
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()
