"""Looking back in a real browser: a session's summary and a group's trend, with screenshots."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from playwright.sync_api import expect

from sessions.models import Activity, Group, Session
from tests.conftest import ARTIFACTS, add_activity, socket_frames, wait_for_a_frame
from tests.test_e2e import LAPTOP, PHONE
from tests.test_review import DAY0, circle

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def three_weeks(transactional_db, facilitator) -> list[Session]:
    """A group's three ended sessions, built before the browser starts (the ORM is not for
    Playwright's event loop)."""
    group = Group.objects.create(facilitator=facilitator, name="Tuesday evening circle")
    sessions = [circle(facilitator, start=DAY0 + timedelta(weeks=week))[0] for week in range(3)]
    for week, session in enumerate(sessions, start=1):
        session.title, session.group = f"Week {week}", group
        session.save()
    return sessions


def test_a_facilitator_reads_a_summary_writes_notes_and_follows_the_groups_trend(
    three_weeks, facilitator_cookie, browser, live_server_url
):
    sessions = three_weeks
    laptop = browser.new_context(**LAPTOP)
    laptop.add_cookies([{"name": "sessionid", "value": facilitator_cookie, "url": live_server_url}])
    page = laptop.new_page()

    page.goto(f"{live_server_url}/sessions/{sessions[0].pk}/summary/")
    expect(page.get_by_role("heading", name="Week 1")).to_be_visible()
    expect(page.locator(".comparison")).to_contain_text("Mean 2.4 → 3.8 (+1.4)")
    expect(page.locator(".summary-item").nth(1)).to_contain_text("My sister")
    page.get_by_label("Private notes").fill("Quiet start. Check in with the group about Tea.")
    expect(page.locator(".notes-status")).to_contain_text("Saved at")
    page.screenshot(path=ARTIFACTS / "summary.png", full_page=True)
    page.reload()
    expect(page.get_by_label("Private notes")).to_have_value(
        "Quiet start. Check in with the group about Tea."
    )
    # Printed, the page keeps the results and the notes, without buttons or forms.
    page.emulate_media(media="print")
    expect(page.locator(".print-only")).to_contain_text("Check in with the group about Tea.")
    expect(page.get_by_role("button", name="Save notes")).to_be_hidden()
    page.screenshot(path=ARTIFACTS / "summary-print.png", full_page=True)
    page.emulate_media(media="screen")

    page.get_by_role("link", name="Tuesday evening circle").click()
    expect(page.get_by_role("heading", name="Tuesday evening circle")).to_be_visible()
    for week in (1, 2, 3):
        expect(page.get_by_role("link", name=f"Week {week}")).to_be_visible()
    expect(page.locator("svg[role=img]").first).to_be_visible()
    page.screenshot(path=ARTIFACTS / "group-trend.png", full_page=True)


@pytest.fixture
def weekly_check_in(transactional_db, facilitator) -> Session:
    """A live session of a group that lets phones keep their nickname, its check-in open."""
    group = Group.objects.create(facilitator=facilitator, name="Tuesday", keep_pseudonyms=True)
    session = Session.objects.create(facilitator=facilitator, title="Week 4", group=group)
    session.start()
    check_in = add_activity(
        session, Activity.Kind.SCALE, "How connected do you feel?", scale_min=1, scale_max=5
    )
    session.open_activity(check_in)
    return session


def test_a_participant_keeps_a_nickname_then_withdraws_their_answers(
    weekly_check_in, browser, live_server_url
):
    phone = browser.new_context(**PHONE).new_page()
    phone.goto(f"{live_server_url}/join/{weekly_check_in.join_code}/")
    phone.get_by_label("Keep my nickname for the next sessions of Tuesday").check()
    phone.screenshot(path=ARTIFACTS / "phone-consent-keep-nickname.png", full_page=True)
    frames = socket_frames(phone)
    phone.get_by_role("button", name="I understand, join").click()
    # The socket's first frame renders the stage afresh: answer after it, as a person would.
    wait_for_a_frame(phone, frames)
    phone.get_by_label("4").check()
    phone.get_by_role("button", name="Send answer").click()
    expect(phone.get_by_text("Answer received")).to_be_visible()

    phone.get_by_text("Withdraw my answers").click()
    # Asked first: "Cancel" deletes nothing.
    phone.once("dialog", lambda dialog: dialog.dismiss())
    phone.get_by_role("button", name="Delete all my answers").click()
    phone.wait_for_timeout(500)
    expect(phone.get_by_text("Answer received")).to_be_visible()
    phone.once("dialog", lambda dialog: dialog.accept())
    phone.get_by_role("button", name="Delete all my answers").click()

    expect(phone.get_by_role("alert")).to_contain_text("1 answer deleted")
    expect(phone.get_by_text("Answer received")).to_be_hidden()
    expect(phone.get_by_text("Your check-ins in Tuesday")).to_be_visible()
    phone.screenshot(path=ARTIFACTS / "phone-withdrawn.png", full_page=True)


def test_an_option_tapped_before_the_socket_connects_is_kept(
    weekly_check_in, browser, live_server_url
):
    """On a slow connection the page shows the question before its socket is open. The
    socket's first frame repeats the same question: it must not clear what was tapped."""
    phone = browser.new_context(**PHONE).new_page()
    held: list = []
    released: list = []  # the page's socket, once the server's frames may reach it

    def slow_connection(socket) -> None:
        server = socket.connect_to_server()

        def from_server(message) -> None:
            if released:
                socket.send(message)
            else:
                held.append((socket, message))

        server.on_message(from_server)

    phone.route_web_socket(re.compile(r"/ws/join/"), slow_connection)
    phone.goto(f"{live_server_url}/join/{weekly_check_in.join_code}/")
    phone.get_by_role("button", name="I understand, join").click()
    phone.wait_for_load_state()
    phone.get_by_label("4").check()
    for _ in range(100):
        if held:
            break
        phone.wait_for_timeout(50)
    assert held, "the server sent the phone nothing"

    phone.evaluate(
        """() => { window.framesSeen = 0;
            document.addEventListener("htmx:wsAfterMessage", () => window.framesSeen++); }"""
    )
    released.append(True)
    for socket, message in held:
        socket.send(message)
    phone.wait_for_function(f"() => window.framesSeen >= {len(held)}")

    expect(phone.get_by_label("4")).to_be_checked()
    phone.get_by_role("button", name="Send answer").click()
    expect(phone.get_by_text("Answer received")).to_be_visible()


@pytest.fixture
def open_question(transactional_db, facilitator) -> Session:
    session = Session.objects.create(facilitator=facilitator, title="Week 5")
    session.start()
    session.open_activity(add_activity(session, Activity.Kind.OPEN_TEXT, "What helped?"))
    return session


def test_withdrawn_words_leave_the_phones_field_too(open_question, browser, live_server_url):
    """A typed answer is kept across pushes as it is being written; once deleted, it goes."""
    phone = browser.new_context(**PHONE).new_page()
    phone.goto(f"{live_server_url}/join/{open_question.join_code}/")
    frames = socket_frames(phone)
    phone.get_by_role("button", name="I understand, join").click()
    wait_for_a_frame(phone, frames)
    answer = phone.get_by_label(re.compile("^Your answer"))
    answer.fill("Talking to my sister")
    phone.get_by_role("button", name="Send answer").click()
    expect(phone.get_by_text("Answer received")).to_be_visible()
    answer.fill("Talking to my sister, and a walk")  # changed, not sent: kept as a draft

    phone.get_by_text("Withdraw my answers").click()
    phone.once("dialog", lambda dialog: dialog.accept())
    phone.get_by_role("button", name="Delete all my answers").click()

    expect(phone.get_by_role("alert")).to_contain_text("1 answer deleted")
    expect(answer).to_have_value("")
