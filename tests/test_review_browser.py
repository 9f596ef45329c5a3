"""Looking back in a real browser: a session's summary and a group's trend, with screenshots."""

from __future__ import annotations

from datetime import timedelta

import pytest
from playwright.sync_api import expect

from sessions.models import Group, Session
from tests.conftest import ARTIFACTS
from tests.test_e2e import LAPTOP
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
    page.emulate_media(media="print")
    page.screenshot(path=ARTIFACTS / "summary-print.png", full_page=True)
    page.emulate_media(media="screen")
    page.reload()
    expect(page.get_by_label("Private notes")).to_have_value(
        "Quiet start. Check in with the group about Tea."
    )

    page.get_by_role("link", name="Tuesday evening circle").click()
    expect(page.get_by_role("heading", name="Tuesday evening circle")).to_be_visible()
    for week in (1, 2, 3):
        expect(page.get_by_role("link", name=f"Week {week}")).to_be_visible()
    expect(page.locator("svg[role=img]").first).to_be_visible()
    page.screenshot(path=ARTIFACTS / "group-trend.png", full_page=True)
