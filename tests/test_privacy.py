"""No client address, user agent or participant token in the database or the server's log."""

from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TextIO

import pytest
from django.conf import settings
from django.db import connection, connections
from playwright.sync_api import expect

from sessions.models import hash_token
from tests.test_e2e import LAPTOP, PHONE, join_on_phone, new_session

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

# Phones and laptop connect to the live server over loopback, so this is their address.
CLIENT_ADDRESS = "127.0.0.1"
USER_AGENT = "AttunePrivacyProbe/1.0"
# When it starts, Daphne names the address it listens on: the server's own, not a client's.
LISTENING = re.compile(r"Starting server at |Configuring endpoint |Listening on TCP address ")


def every_stored_value() -> str:
    """Every row of every table in the test database, one line a row.

    Run in a thread of its own (the ORM refuses to run beside Playwright's event loop), whose
    connection is closed at the end so that it cannot hold up the test database's teardown.
    """
    rows = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            # Table names come from the database's own schema, not from input.
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")  # noqa: S608
            rows += [" | ".join(str(value) for value in row) for row in cursor.fetchall()]
    connections.close_all()
    return "\n".join(rows)


def server_log_after_sockets_closed(server_log: TextIO) -> str:
    """The server's log once every WebSocket it accepted has been logged as closed."""
    deadline = time.monotonic() + 10
    while True:
        server_log.seek(0)
        log = server_log.read()
        closed = log.count('"WSDISCONNECT ') >= log.count('"WSCONNECT ')
        if closed or time.monotonic() > deadline:
            return log
        time.sleep(0.1)


def test_no_address_user_agent_or_token_is_stored_or_logged(
    browser, live_server_url, live_server_log
):
    laptop = browser.new_context(**LAPTOP, user_agent=f"{USER_AGENT} laptop")
    control = laptop.new_page()
    new_session(control, live_server_url, "alice", "Privacy check")
    editor = control.locator("#agenda-editor")
    control.get_by_label("Question or prompt").fill("How did you arrive today?")
    control.get_by_label("Options, one per line").fill("Calm\nRushed")
    control.get_by_role("button", name="Add to agenda").click()
    expect(editor).to_contain_text("How did you arrive today?")
    expect(control.locator(".htmx-settling, .htmx-added, .htmx-request")).to_have_count(0)
    kind = control.get_by_label("Kind").select_option(label="Open text")[0]
    expect(control.locator("#activity-new-form")).to_have_attribute("data-kind", kind)
    control.get_by_label("Question or prompt").fill("What helps you open up?")
    control.get_by_role("button", name="Add to agenda").click()
    expect(editor).to_contain_text("What helps you open up?")
    control.get_by_role("button", name="Start session").click()
    code = control.locator(".join-line .code").inner_text()
    projector = laptop.new_page()
    projector.goto(control.url.replace("/control/", "/projector/"))

    phones = [
        browser.new_context(**PHONE, user_agent=f"{USER_AGENT} phone-{number}").new_page()
        for number in (1, 2)
    ]
    # A mistyped code first: Django logs the 404, and that line must not carry the request.
    phones[0].goto(f"{live_server_url}/join/ZZZZZZ/")
    pseudonyms = [join_on_phone(phone, live_server_url, code) for phone in phones]

    control.get_by_role("button", name="Next →").click()
    for phone, choice in zip(phones, ["Calm", "Rushed"], strict=True):
        phone.get_by_label(choice).check()
        phone.get_by_role("button", name="Send answer").click()
        expect(phone.get_by_text("Answer received")).to_be_visible()
    control.get_by_role("button", name="Next →").click()
    texts = ["Being listened to", "Time and tea"]
    for phone, text in zip(phones, texts, strict=True):
        phone.get_by_label("Your answer").fill(text)
        phone.get_by_role("button", name="Send answer").click()
        expect(phone.get_by_text("Answer received")).to_be_visible()

    tokens = []
    for phone in phones:
        cookie = next(
            cookie
            for cookie in phone.context.cookies()
            if cookie["name"].startswith(settings.ATTUNE_PARTICIPANT_COOKIE)
        )
        # HttpOnly: the page's scripts, and anything injected into them, cannot read it.
        assert cookie["httpOnly"]
        assert cookie["value"] not in phone.evaluate("document.cookie")
        tokens.append(cookie["value"])
    for context in [laptop, *(phone.context for phone in phones)]:
        context.close()
    private = [CLIENT_ADDRESS, USER_AGENT, *tokens]

    with ThreadPoolExecutor(max_workers=1) as thread:
        stored = thread.submit(every_stored_value).result()
    # The dump holds the session and each token's hash, so the absences are not an empty read.
    for expected in [*pseudonyms, *texts, "alice", *map(hash_token, tokens)]:
        assert expected in stored
    for secret in private:
        assert secret not in stored

    log = server_log_after_sockets_closed(live_server_log)
    logged = "\n".join(line for line in log.splitlines() if not LISTENING.search(line))
    for secret in private:
        assert secret not in logged
    # The log was on: access lines for pages and sockets, and Django's line for the 404.
    assert '"GET /join/' in logged
    assert f'"WSCONNECT /ws/join/{code}/' in logged
    assert "Not Found: /join/ZZZZZZ/" in logged
