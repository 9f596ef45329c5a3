"""A whole session in a real browser: a facilitator on a laptop, a projector, three phones."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.conftest import ARTIFACTS

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 2, "is_mobile": True}
LAPTOP = {"viewport": {"width": 1280, "height": 800}}


def sign_up(page: Page, base_url: str, username: str, password: str) -> None:
    page.goto(f"{base_url}/accounts/login/")
    page.get_by_role("link", name="Create a facilitator account").click()
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_label("Password confirmation").fill(password)
    page.get_by_role("button", name="Create account").click()
    expect(page.get_by_role("heading", name="Your sessions")).to_be_visible()


def join_on_phone(page: Page, base_url: str, code: str) -> str:
    page.goto(f"{base_url}/")
    page.get_by_label("Session code").fill(code.lower())
    page.get_by_role("button", name="Join").click()
    expect(page.get_by_text("Your answers are anonymous")).to_be_visible()
    page.get_by_role("button", name="I understand, join").click()
    expect(page.get_by_role("heading", name="Waiting for the next activity")).to_be_visible()
    return page.locator(".you strong").inner_text()


def test_a_facilitator_runs_a_choice_question_with_three_phones(browser, live_server_url):
    laptop = browser.new_context(**LAPTOP)
    control = laptop.new_page()
    sign_up(control, live_server_url, "alice", "a-long-pass-phrase-for-alice")

    # Build the session: a title and one single-choice question.
    control.get_by_label("Title").fill("Tuesday circle")
    control.get_by_role("button", name="Create session").click()
    control.get_by_label("Question or prompt").fill("How did you arrive today?")
    control.get_by_label("Options, one per line").fill("Calm\nRushed\nTired")
    control.get_by_role("button", name="Add to agenda").click()
    expect(control.locator("#agenda-editor")).to_contain_text("How did you arrive today?")
    control.get_by_role("button", name="Start session").click()

    code = control.locator(".join-line .code").inner_text()
    assert re.fullmatch(r"[A-HJ-NP-Z2-9]{6}", code)

    projector = laptop.new_page()
    projector.goto(f"{live_server_url}/sessions/{control.url.split('/')[-3]}/projector/")
    expect(projector.locator(".join-code")).to_have_text(code)
    expect(projector.locator(".qr")).to_be_visible()

    phones = [browser.new_context(**PHONE).new_page() for _ in range(3)]
    pseudonyms = [join_on_phone(phone, live_server_url, code) for phone in phones]
    assert len(set(pseudonyms)) == 3
    expect(projector.locator(".projector-count")).to_contain_text("3 joined")
    expect(control.locator('[data-count="joined"]')).to_have_text("3")
    projector.screenshot(path=ARTIFACTS / "projector-lobby.png")

    # Open the question: every phone shows it at once.
    control.get_by_role("button", name="Next →").click()
    for phone in phones:
        expect(phone.get_by_role("heading", name="How did you arrive today?")).to_be_visible()
    expect(projector.locator(".projector-prompt")).to_have_text("How did you arrive today?")
    expect(projector.locator(".results-hidden")).to_be_visible()

    for phone, choice in zip(phones, ["Calm", "Calm", "Tired"], strict=True):
        phone.get_by_label(choice).check()
        phone.get_by_role("button", name="Send answer").click()
        expect(phone.get_by_text("Answer received")).to_be_visible()
    phones[0].screenshot(path=ARTIFACTS / "phone-answered.png")

    bars = projector.locator(".bar")
    expect(projector.locator(".projector-answered")).to_have_text("3 answers")
    expect(bars.filter(has_text="Calm")).to_contain_text("2 (67%)")
    expect(bars.filter(has_text="Tired")).to_contain_text("1 (33%)")
    expect(bars.filter(has_text="Rushed")).to_contain_text("0 (0%)")
    expect(control.locator('[data-count="answered"]')).to_have_text("3")
    projector.screenshot(path=ARTIFACTS / "projector-results.png")
    control.screenshot(path=ARTIFACTS / "control-view.png")

    # A phone changes its mind; the projector follows.
    phones[2].get_by_label("Calm").check()
    phones[2].get_by_role("button", name="Update answer").click()
    expect(bars.filter(has_text="Calm")).to_contain_text("3 (100%)")

    # A reload brings the same participant back with their answer.
    phones[1].reload()
    expect(phones[1].locator(".you strong")).to_have_text(pseudonyms[1])
    expect(phones[1].get_by_label("Calm")).to_be_checked()

    # Ending leads the facilitator to the summary and tells the phones.
    control.once("dialog", lambda dialog: dialog.accept())
    control.get_by_role("button", name="End session").click()
    expect(control.get_by_role("heading", name="Tuesday circle")).to_be_visible()
    expect(control.locator(".summary-item")).to_contain_text("3 answered")
    expect(phones[0].get_by_role("heading", name="This session has ended")).to_be_visible()
    control.screenshot(path=ARTIFACTS / "summary.png", full_page=True)
