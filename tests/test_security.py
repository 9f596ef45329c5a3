"""Hardening: production settings, the Content Security Policy, and the guessing throttles."""

from __future__ import annotations

import gzip
import io
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.contrib.auth.models import User
from django.contrib.sessions.models import Session as LoginSession
from django.core.cache import caches
from django.core.management import call_command
from django.http import HttpResponse
from django.template import TemplateSyntaxError
from django.urls import reverse
from playwright.sync_api import expect
from whitenoise.middleware import WhiteNoiseMiddleware

from facilitation.asgi import prepare
from sessions import throttle
from sessions.models import Participant, Session
from tests.conftest import in_thread
from tests.test_e2e import LAPTOP, PHONE, join_on_phone, new_session

ROOT = Path(__file__).resolve().parent.parent
ADDRESS = "203.0.113.7"
OTHER_ADDRESS = "198.51.100.9"
TOO_MANY_CODES = "Too many tries with codes that do not exist. Wait a minute, then try again."
TOO_MANY_SIGN_INS = "Too many failed sign-ins. Wait 15 minutes, then try again."
# A multiple of both windows, so each test starts at the beginning of a window.
START = 1_800_000_000


def page(response) -> str:
    return response.content.decode()


def stored_cache_keys(*, raw: bool = True) -> list[str]:
    """The keys this test's cache holds: as stored (with the prefix), or as the app names them."""
    cache = caches["default"]
    if hasattr(cache, "_cache") and isinstance(cache._cache, dict):  # LocMemCache
        stored = list(cache._cache)
    else:  # RedisCache
        client = cache._cache.get_client()
        stored = [key.decode() for key in client.scan_iter(f"{cache.key_prefix}:*")]
    if raw:
        return stored
    # make_key() is "prefix:version:key".
    return [key.split(":", 2)[2] for key in stored]


@pytest.fixture
def clock(monkeypatch) -> list[float]:
    """The throttles' clock, stopped at START; tests move it with clock[0] += seconds."""
    now = [float(START)]
    monkeypatch.setattr(throttle, "now", lambda: now[0])
    return now


def everything_stored() -> str:
    """Every row in the database and every login session's data, as text."""
    dump = io.StringIO()
    call_command("dumpdata", stdout=dump)
    decoded = [str(login.get_decoded()) for login in LoginSession.objects.all()]
    return dump.getvalue() + "\n".join(decoded)


# Production settings -------------------------------------------------------------------------


def run_manage(*args: str, **environment: str) -> subprocess.CompletedProcess:
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in {"SECRET_KEY", "DEBUG", "ALLOWED_HOSTS", "ATTUNE_PRODUCTION"}
    }
    return subprocess.run(  # noqa: S603 (a fixed command line)
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**env, **environment},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_production_settings_pass_the_deploy_check_without_a_warning():
    result = run_manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        ATTUNE_PRODUCTION="1",
        SECRET_KEY=secrets.token_urlsafe(50),
        ALLOWED_HOSTS="example.org",
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout
    assert "WARNING" not in result.stdout + result.stderr


def test_collected_static_files_go_out_compressed_to_browsers_that_take_it(settings, tmp_path, rf):
    """In production (collectstatic, then WhiteNoise): a room of phones on one Wi-Fi loads
    htmx, the script and the styles compressed."""
    settings.STATIC_ROOT = tmp_path
    call_command("collectstatic", interactive=False, verbosity=0)
    for name in ("attune/attune.js", "attune/attune.css", "django_htmx/htmx-2.min.js"):
        plain, packed = tmp_path / name, tmp_path / f"{name}.gz"
        assert gzip.decompress(packed.read_bytes()) == plain.read_bytes()
        assert packed.stat().st_size < plain.stat().st_size / 2, name

    settings.WHITENOISE_USE_FINDERS = settings.WHITENOISE_AUTOREFRESH = False
    serve = WhiteNoiseMiddleware(lambda request: HttpResponse(status=404))
    response = serve(rf.get("/static/attune/attune.js", HTTP_ACCEPT_ENCODING="gzip"))

    assert response.status_code == 200
    assert response["Content-Encoding"] == "gzip"
    body = b"".join(response.streaming_content)
    response.close()
    assert gzip.decompress(body) == (tmp_path / "attune/attune.js").read_bytes()


@pytest.mark.parametrize(
    "secret_key",
    [None, "", "too-short", "a" * 60, "django-insecure-" + secrets.token_urlsafe(50)],
    ids=["missing", "empty", "short", "one-character", "django-insecure"],
)
def test_production_refuses_to_start_without_a_strong_secret_key(secret_key):
    environment = {"ATTUNE_PRODUCTION": "1", "ALLOWED_HOSTS": "example.org"}
    if secret_key is not None:
        environment["SECRET_KEY"] = secret_key

    result = run_manage("check", **environment)

    assert result.returncode != 0
    assert "ImproperlyConfigured: ATTUNE_PRODUCTION=1 needs SECRET_KEY set to a long random" in (
        result.stderr
    )


# Content Security Policy ---------------------------------------------------------------------

EXPECTED_POLICY = {
    "default-src": "'self'",
    "script-src": "'self'",
    "style-src": "'self'",
    "img-src": "'self' data:",
    "connect-src": "'self'",
    "font-src": "'self'",
    "object-src": "'none'",
    "base-uri": "'none'",
    "form-action": "'self'",
    "frame-ancestors": "'none'",
}


def policy_of(response) -> dict[str, str]:
    header = response.headers["Content-Security-Policy"]
    directives = [part.strip().split(" ", 1) for part in header.split(";")]
    return {name: value for name, value in directives}


@pytest.fixture
def every_page(client, facilitator, live_session, choice_activity) -> dict[str, object]:
    """One response of each page a facilitator or a phone meets, by name."""
    ended = Session.objects.create(facilitator=facilitator, title="Last week")
    ended.start()
    ended.end()
    entry = reverse("participant_entry", args=[live_session.join_code])
    responses = {
        "join": client.get(reverse("join")),
        "consent": client.get(entry),
        "unknown code": client.get(reverse("participant_entry", args=["ZZZZZZ"])),
        "login": client.get(reverse("login")),
        "signup": client.get(reverse("signup")),
    }
    client.post(entry)
    responses["phone"] = client.get(entry)
    client.force_login(facilitator)
    for name, url in [
        ("dashboard", reverse("dashboard")),
        ("session edit", reverse("session_edit", args=[live_session.pk])),
        ("control", reverse("session_control", args=[live_session.pk])),
        ("projector", reverse("session_projector", args=[live_session.pk])),
        ("summary", reverse("session_summary", args=[ended.pk])),
        ("library", reverse("library")),
    ]:
        responses[name] = client.get(url)
    return responses


def test_every_page_carries_the_content_security_policy(every_page):
    assert set(every_page) >= {
        "login",
        "signup",
        "dashboard",
        "session edit",
        "control",
        "projector",
        "join",
        "consent",
        "phone",
        "summary",
        "library",
    }
    for name, response in every_page.items():
        assert response.status_code in {200, 404}, name
        header = response.headers["Content-Security-Policy"]
        assert "unsafe-inline" not in header, name
        assert "unsafe-eval" not in header, name
        assert policy_of(response) == EXPECTED_POLICY, name
    # The pages really are the ones named: the phone joined, the summary is a summary.
    assert "I understand, join" in page(every_page["consent"])
    assert "You are <strong>" in page(every_page["phone"])
    assert every_page["unknown code"].status_code == 404


def test_no_template_has_inline_script_style_or_handlers():
    inline = re.compile(
        r"<script(?![^>]*\bsrc=)[^>]*>|<style\b|\sstyle=|\son[a-z]+=|\shx-on|javascript:|js:",
        re.IGNORECASE,
    )
    found = [
        f"{path.relative_to(ROOT)}: {match.group(0)}"
        for path in (ROOT / "templates").rglob("*.html")
        for match in inline.finditer(path.read_text())
    ]

    assert found == []


def test_a_template_that_does_not_compile_stops_the_server_before_it_serves(settings, tmp_path):
    # Every one of Attune's templates compiles: the server starts.
    prepare()

    (tmp_path / "broken.html").write_text("{% if %}<p>Welcome</p>{% endif %}")
    settings.TEMPLATES = [{**settings.TEMPLATES[0], "DIRS": [tmp_path]}]
    with pytest.raises(TemplateSyntaxError):
        prepare()


def test_the_public_address_is_allowed_as_a_websocket_source_for_older_safari():
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "from django.conf import settings; "
            "print(settings.CONTENT_SECURITY_POLICY['DIRECTIVES']['connect-src'])",
        ],
        cwd=ROOT,
        env={
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "facilitation.settings",
            "ATTUNE_PUBLIC_URL": "http://192.168.1.20:8000",
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )

    assert result.stdout.strip() == "[\"'self'\", 'ws://192.168.1.20:8000']"


CSP_VIOLATION_RECORDER = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  const violation = {
    page: location.pathname,
    directive: event.violatedDirective,
    blocked: event.blockedURI,
    sample: event.sample,
  };
  window.__cspViolations.push(violation);
  window.reportCspViolation(violation);
});
"""


def watch_for_csp_violations(context, found: list) -> None:
    """Record violations on every page of the context, across navigations.

    window.__cspViolations holds a page's own; reportCspViolation also hands each one to the
    test, so those of pages navigated away from are kept.
    """
    context.expose_function("reportCspViolation", lambda violation: found.append(violation))
    context.add_init_script(CSP_VIOLATION_RECORDER)
    context.on(
        "console",
        lambda message: "Content Security Policy" in message.text and found.append(message.text),
    )


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_a_live_session_runs_without_a_single_csp_violation(browser, live_server_url):
    found: list = []
    laptop = browser.new_context(**LAPTOP)
    phone_context = browser.new_context(**PHONE)
    for context in (laptop, phone_context):
        watch_for_csp_violations(context, found)

    # Sign-in and sign-up pages, the dashboard and the agenda editor (with an htmx swap).
    control = laptop.new_page()
    control.goto(f"{live_server_url}/accounts/login/")
    expect(control.get_by_role("heading", name="Facilitator sign in")).to_be_visible()
    new_session(control, live_server_url, "alice", "Tuesday circle")
    control.get_by_label("Question or prompt").fill("How did you arrive today?")
    control.get_by_label("Options, one per line").fill("Calm\nRushed")
    control.get_by_role("button", name="Add to agenda").click()
    expect(control.locator("#agenda-editor")).to_contain_text("How did you arrive today?")
    control.get_by_role("button", name="Start session").click()
    code = control.locator(".join-line .code").inner_text()

    projector = laptop.new_page()
    projector.goto(control.url.replace("/control/", "/projector/"))
    expect(projector.locator(".qr")).to_be_visible()
    assert projector.locator(".qr").evaluate("image => image.naturalWidth") > 0

    # Join page, consent screen and phone view; then the socket carries the question and answer.
    phone = phone_context.new_page()
    join_on_phone(phone, live_server_url, code)
    expect(projector.locator(".projector-count")).to_contain_text("1 joined")
    control.get_by_role("button", name="Next →").click()
    expect(phone.get_by_role("heading", name="How did you arrive today?")).to_be_visible()
    phone.get_by_label("Calm").check()
    phone.get_by_role("button", name="Send answer").click()
    expect(phone.get_by_text("Answer received")).to_be_visible()
    expect(projector.locator(".projector-answered")).to_have_text("1 answer")
    expect(control.locator('[data-count="answered"]')).to_have_text("1")

    library = laptop.new_page()
    library.goto(f"{live_server_url}/library/")
    expect(library.get_by_role("heading", name="Exercise library")).to_be_visible()
    control.once("dialog", lambda dialog: dialog.accept())
    control.get_by_role("button", name="End session").click()
    expect(control.locator(".summary-item")).to_contain_text("1 answered")
    expect(phone.get_by_role("heading", name="This session has ended")).to_be_visible()

    for open_page in (control, projector, phone, library):
        found.extend(open_page.evaluate("window.__cspViolations"))
    assert found == []

    # The watch itself works: an inline style set by a script is blocked, logged and reported.
    with phone.expect_console_message(lambda message: "Content Security Policy" in message.text):
        phone.evaluate("document.body.setAttribute('style', 'color: red')")
    phone.wait_for_function("window.__cspViolations.length > 0")
    assert phone.evaluate("window.__cspViolations[0].directive").startswith("style-src")
    assert phone.evaluate("getComputedStyle(document.body).color") != "rgb(255, 0, 0)"
    laptop.close()
    phone_context.close()


# The join-code throttle ----------------------------------------------------------------------


def try_codes(client, count: int, address: str = ADDRESS) -> list[int]:
    return [
        client.post(reverse("join"), {"code": f"ZZZZ{n:02d}"}, REMOTE_ADDR=address).status_code
        for n in range(count)
    ]


def test_ten_unknown_codes_in_a_minute_slow_the_client_down(client, live_session, clock):
    assert try_codes(client, 10) == [400] * 10

    # Even the right code is not checked now: nothing tells a guesser it found one.
    response = client.post(reverse("join"), {"code": live_session.join_code}, REMOTE_ADDR=ADDRESS)

    assert response.status_code == 429
    assert TOO_MANY_CODES in page(response)
    assert not Participant.objects.exists()


def test_the_qr_route_counts_and_refuses_like_the_join_form(client, live_session, clock):
    for n in range(10):
        unknown = client.get(
            reverse("participant_entry", args=[f"ZZZZ{n:02d}"]), REMOTE_ADDR=ADDRESS
        )
        assert unknown.status_code == 404

    opened = client.get(
        reverse("participant_entry", args=[live_session.join_code]), REMOTE_ADDR=ADDRESS
    )
    consented = client.post(
        reverse("participant_entry", args=[live_session.join_code]), REMOTE_ADDR=ADDRESS
    )

    for response in (opened, consented):
        assert response.status_code == 429
        assert TOO_MANY_CODES in page(response)
        assert not any(
            name.startswith(django_settings.ATTUNE_PARTICIPANT_COOKIE) for name in response.cookies
        )
    assert not Participant.objects.exists()


def test_a_phone_already_in_the_session_is_not_slowed(client, live_session, clock):
    entry = reverse("participant_entry", args=[live_session.join_code])
    client.post(entry, REMOTE_ADDR=ADDRESS)
    pseudonym = Participant.objects.get().pseudonym
    # Someone else behind the same address guesses.
    try_codes(client, 10)

    phone = client.get(entry, REMOTE_ADDR=ADDRESS)

    assert phone.status_code == 200
    assert pseudonym in page(phone)


def test_other_clients_are_not_slowed(client, live_session, clock):
    try_codes(client, 11)

    response = client.post(
        reverse("join"), {"code": live_session.join_code}, REMOTE_ADDR=OTHER_ADDRESS
    )

    assert response.status_code == 302


def test_nine_unknown_codes_are_forgiven_and_the_tenth_still_gets_an_answer(
    client, live_session, clock
):
    assert try_codes(client, 9) == [400] * 9

    response = client.post(reverse("join"), {"code": live_session.join_code}, REMOTE_ADDR=ADDRESS)

    assert response.status_code == 302


def test_the_slowdown_ends_with_the_minute(client, live_session, clock):
    try_codes(client, 10)
    clock[0] += 59
    assert try_codes(client, 1) == [429]

    clock[0] += 1
    response = client.post(reverse("join"), {"code": live_session.join_code}, REMOTE_ADDR=ADDRESS)

    assert response.status_code == 302


def test_codes_of_real_sessions_do_not_count_as_guesses(client, live_session, clock):
    live_session.set_joins_locked(True)

    statuses = [
        client.post(
            reverse("join"), {"code": live_session.join_code}, REMOTE_ADDR=ADDRESS
        ).status_code
        for _ in range(15)
    ]

    assert statuses == [400] * 15
    live_session.set_joins_locked(False)
    response = client.post(reverse("join"), {"code": live_session.join_code}, REMOTE_ADDR=ADDRESS)
    assert response.status_code == 302


def test_the_throttle_stores_no_address_and_nothing_in_the_database(client, live_session, clock):
    try_codes(client, 12)

    keys = stored_cache_keys()
    assert len(keys) == 1
    assert ADDRESS not in keys[0]
    assert caches["default"].get(stored_cache_keys(raw=False)[0]) == 10
    assert ADDRESS not in everything_stored()
    assert live_session.join_code in everything_stored()  # the dump is not empty


def test_the_count_expires_from_the_cache_with_its_window(client, live_session):
    try_codes(client, 3)
    cache = caches["default"]
    (key,) = stored_cache_keys(raw=False)

    if hasattr(cache, "_expire_info"):  # LocMemCache
        assert cache._expire_info[cache.make_key(key)] <= throttle.now() + 60
    else:
        assert 0 < cache._cache.get_client().ttl(cache.make_key(key)) <= 60


@pytest.mark.skipif(
    "LOCATION" not in django_settings.CACHES["default"]
    or not django_settings.CACHES["default"]["LOCATION"].startswith("redis"),
    reason="Redis's own",
)
def test_the_redis_cache_keeps_one_client_for_the_whole_process(client, live_session):
    # Every join reads the join-code throttle twice, and every results push, in a context of
    # its own, claims its slice: building Django's Redis client (and, in a new context, its
    # pool and connection) again for each call cost more than the call (facilitation/cache.py).
    kept = caches["default"]._cache.get_client(write=True)
    try_codes(client, 3)

    assert caches["default"]._cache.get_client(write=True) is kept
    # Django makes another cache object in another thread: it still uses the same client.
    assert in_thread(lambda: caches["default"]._cache.get_client(write=True)) is kept
    assert in_thread(lambda: caches["default"].get(stored_cache_keys(raw=False)[0])) == 3


# Joining a closed or ended session -----------------------------------------------------------


@pytest.mark.parametrize("closing", ["locked", "ended"])
def test_a_closed_or_ended_session_takes_no_new_phone_by_any_route(client, live_session, closing):
    if closing == "locked":
        live_session.set_joins_locked(True)
    else:
        live_session.end()
    entry = reverse("participant_entry", args=[live_session.join_code])

    typed = client.post(reverse("join"), {"code": live_session.join_code})
    opened = client.get(entry)
    consented = client.post(entry)

    assert typed.status_code == 400
    assert opened.status_code == 404
    assert consented.status_code == 404
    for response in (typed, opened, consented):
        assert not any(
            name.startswith(django_settings.ATTUNE_PARTICIPANT_COOKIE) for name in response.cookies
        )
    assert not Participant.objects.exists()


# The sign-in throttle ------------------------------------------------------------------------


@pytest.fixture
def carol(db) -> User:
    return User.objects.create_user("carol", password="carol-password")


def sign_in(client, username: str, password: str, address: str = ADDRESS):
    return client.post(
        reverse("login"), {"username": username, "password": password}, REMOTE_ADDR=address
    )


def is_signed_in(client) -> bool:
    return "_auth_user_id" in client.session


def test_five_failures_for_one_username_lock_it_even_with_the_right_password(
    client, facilitator, clock
):
    for _ in range(5):
        assert sign_in(client, "alice", "wrong").status_code == 200

    response = sign_in(client, "alice", "alice-password")

    assert response.status_code == 429
    assert TOO_MANY_SIGN_INS in page(response)
    assert not is_signed_in(client)


def test_the_username_lock_holds_from_any_address(client, facilitator, clock):
    for number in range(5):
        sign_in(client, "alice", "wrong", address=f"192.0.2.{number}")

    response = sign_in(client, "alice", "alice-password", address=OTHER_ADDRESS)

    assert response.status_code == 429


def test_a_locked_username_leaves_other_people_alone(client, facilitator, other_facilitator, clock):
    for _ in range(6):
        sign_in(client, "alice", "wrong")

    response = sign_in(client, "bob", "bob-password")

    assert response.status_code == 302
    assert is_signed_in(client)


def test_twenty_failures_from_one_address_lock_it_for_every_username(
    client, other_facilitator, clock
):
    # Four tries at each of five names: under the per-name limit, at the per-address one.
    for name in ["alice", "dave", "erin", "frank", "grace"]:
        for _ in range(4):
            assert sign_in(client, name, "guess").status_code == 200

    refused = sign_in(client, "bob", "bob-password")
    elsewhere = sign_in(client, "bob", "bob-password", address=OTHER_ADDRESS)

    assert refused.status_code == 429
    assert TOO_MANY_SIGN_INS in page(refused)
    assert elsewhere.status_code == 302


def test_signing_in_to_ones_own_account_buys_no_more_guesses(client, carol, clock):
    for name in ["alice", "dave", "erin", "frank"]:
        for _ in range(4):
            sign_in(client, name, "guess")
    for _ in range(3):
        sign_in(client, "grace", "guess")
    assert sign_in(client, "carol", "carol-password").status_code == 302
    client.post(reverse("logout"))

    assert sign_in(client, "heidi", "guess").status_code == 200  # the twentieth failure
    assert sign_in(client, "carol", "carol-password").status_code == 429


def test_the_sign_in_lock_ends_after_fifteen_minutes(client, facilitator, clock):
    for _ in range(5):
        sign_in(client, "alice", "wrong")
    clock[0] += 15 * 60 - 1
    assert sign_in(client, "alice", "alice-password").status_code == 429

    clock[0] += 1
    response = sign_in(client, "alice", "alice-password")

    assert response.status_code == 302
    assert is_signed_in(client)


def test_the_admin_sign_in_is_no_way_around_the_lock(client, facilitator, clock):
    facilitator.is_staff = True
    facilitator.save(update_fields=["is_staff"])
    for _ in range(5):
        sign_in(client, "alice", "wrong")

    response = client.post(
        reverse("admin:login"),
        {"username": "alice", "password": "alice-password"},
        REMOTE_ADDR=ADDRESS,
    )

    assert TOO_MANY_SIGN_INS in page(response)
    assert not is_signed_in(client)


def test_the_sign_in_throttle_stores_no_address_or_username(client, facilitator, clock):
    for _ in range(6):
        sign_in(client, "alice", "wrong")

    keys = stored_cache_keys()
    assert len(keys) == 2
    for key in keys:
        assert ADDRESS not in key
        assert "alice" not in key
    stored = everything_stored()
    assert ADDRESS not in stored
    assert "alice" in stored  # the dump is not empty: the user is there
