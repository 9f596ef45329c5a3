"""A whole session in a real browser: a facilitator on a laptop, a projector, three phones."""

from __future__ import annotations

import io
import re

import pytest
from playwright.sync_api import Page, expect

from sessions.models import Participant, Session
from tests.conftest import ARTIFACTS, add_activity, in_thread, socket_frames, wait_for_a_frame

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 2, "is_mobile": True}
LAPTOP = {"viewport": {"width": 1280, "height": 800}}
# Going offline does not close an open WebSocket in Chromium; this does, as a lost network would.
DROP_CONNECTION = """() => document.querySelector('[ws-connect]')['htmx-internal-data']
    .webSocket.socket.close()"""


def sign_up(page: Page, base_url: str, username: str, password: str) -> None:
    page.goto(f"{base_url}/accounts/login/")
    page.get_by_role("link", name="Create a facilitator account").click()
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_label("Password confirmation").fill(password)
    page.get_by_role("button", name="Create account").click()
    expect(page.get_by_role("heading", name="Your sessions")).to_be_visible()


def new_session(page: Page, base_url: str, username: str, title: str) -> None:
    """A new facilitator signs up and creates a session: the page is its agenda editor."""
    sign_up(page, base_url, username, f"a-long-pass-phrase-for-{username}")
    page.get_by_label("Title").fill(title)
    page.get_by_role("button", name="Create session").click()


def join_on_phone(page: Page, base_url: str, code: str) -> str:
    frames = socket_frames(page)
    page.goto(f"{base_url}/")
    page.get_by_label("Session code").fill(code.lower())
    page.get_by_role("button", name="Join").click()
    expect(page.get_by_text("Your answers are anonymous")).to_be_visible()
    page.get_by_role("button", name="I understand, join").click()
    expect(page.locator(".you strong")).to_be_visible()
    # Answer once the page is live, as a person would: before its deferred scripts run, a form
    # is sent as a plain page request; and the socket's first frame renders the stage afresh.
    page.wait_for_load_state()
    wait_for_a_frame(page, frames)
    return page.locator(".you strong").inner_text()


def test_a_facilitator_runs_a_choice_question_with_three_phones(browser, live_server_url):
    laptop = browser.new_context(**LAPTOP)
    control = laptop.new_page()
    # Build the session: a title and one single-choice question.
    new_session(control, live_server_url, "alice", "Tuesday circle")
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
    for phone in phones:
        expect(phone.get_by_role("heading", name="Waiting for the next activity")).to_be_visible()
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

    # Passing is one tap and looks like any other response on the projector.
    phones[1].get_by_role("button", name="Pass").click()
    expect(phones[1].get_by_text("You passed on this one")).to_be_visible()
    expect(control.locator('[data-count="passed"]')).to_have_text("1")
    expect(projector.locator(".projector-answered")).to_have_text("2 answers")
    phones[1].get_by_label("Calm").check()
    phones[1].get_by_role("button", name="Send answer").click()
    expect(projector.locator(".projector-answered")).to_have_text("3 answers")

    # A phone changes its mind; the projector follows.
    phones[2].get_by_label("Calm").check()
    phones[2].get_by_role("button", name="Update answer").click()
    expect(bars.filter(has_text="Calm")).to_contain_text("3 (100%)")

    # A reload brings the same participant back with their answer.
    phones[1].reload()
    expect(phones[1].locator(".you strong")).to_have_text(pseudonyms[1])
    expect(phones[1].get_by_label("Calm")).to_be_checked()

    # Closing joining takes the code off the wall (it would only lead to a refusal).
    control.get_by_role("button", name="Close joining").click()
    expect(projector.locator(".join-panel")).to_be_hidden()
    control.get_by_role("button", name="Let people join").click()
    expect(projector.locator(".qr")).to_be_visible()

    # Ending leads the facilitator to the summary and tells the phones.
    control.once("dialog", lambda dialog: dialog.accept())
    control.get_by_role("button", name="End session").click()
    expect(control.get_by_role("heading", name="Tuesday circle")).to_be_visible()
    expect(control.locator(".summary-item")).to_contain_text("3 answered")
    expect(phones[0].get_by_role("heading", name="This session has ended")).to_be_visible()
    expect(projector.get_by_role("heading", name="Thank you")).to_be_visible()
    expect(projector.locator(".join-panel")).to_be_hidden()
    control.screenshot(path=ARTIFACTS / "summary.png", full_page=True)


def test_a_facilitator_builds_an_agenda_of_every_kind_and_phones_answer_each(
    browser, live_server_url
):
    laptop = browser.new_context(**LAPTOP)
    builder = laptop.new_page()
    new_session(builder, live_server_url, "bea", "Every kind")
    builder.get_by_label("Show results after this many answers").fill("2")
    builder.get_by_role("button", name="Save settings").click()
    editor = builder.locator("#agenda-editor")

    def settled() -> None:
        # A change made before htmx has processed freshly swapped content would be lost.
        expect(builder.locator(".htmx-settling, .htmx-added, .htmx-request")).to_have_count(0)

    def add(kind: str, prompt: str, **fields: str) -> None:
        settled()
        value = builder.get_by_label("Kind").select_option(label=kind)[0]
        expect(builder.locator("#activity-new-form")).to_have_attribute("data-kind", value)
        builder.get_by_label(re.compile("^(Question or prompt|Step title)$")).fill(prompt)
        for label, value in fields.items():
            builder.get_by_label(label, exact=True).fill(value)
        builder.get_by_role("button", name="Add to agenda").click()
        expect(editor).to_contain_text(prompt)

    # A choice with one option is refused with the reason next to the field.
    builder.get_by_label("Question or prompt").fill("Tea or coffee?")
    builder.get_by_label("Options, one per line").fill("Tea")
    builder.get_by_role("button", name="Add to agenda").click()
    expect(builder.locator(".field-error")).to_have_text("Give at least two options, one per line.")

    add(
        "Scale",
        "How connected do you feel right now?",
        **{"Label for the lowest value": "Alone", "Label for the highest value": "Close"},
    )
    add("Word cloud", "One word for this evening")
    add("Open text", "What helps you open up?")
    add(
        "Instruction or exercise step",
        "Breathe together",
        **{
            "Text shown to everyone": "In for four, out for six.",
            "Countdown in seconds (optional)": "90",
        },
    )

    # Reorder and edit with htmx, without leaving the page.
    settled()
    builder.get_by_role("button", name="Move up: Breathe together").click()
    expect(editor.locator("li").nth(2)).to_contain_text("Breathe together")
    settled()
    editor.locator("li").nth(1).get_by_role("button", name="Edit").click()
    edit_form = editor.locator("li.editing")
    edit_form.get_by_label("Question or prompt").fill("One word for tonight")
    edit_form.get_by_role("button", name="Save", exact=True).click()
    expect(editor).to_contain_text("One word for tonight")
    builder.screenshot(path=ARTIFACTS / "agenda-editor.png", full_page=True)

    builder.get_by_role("button", name="Start session").click()
    control = builder
    code = control.locator(".join-line .code").inner_text()
    projector = laptop.new_page()
    projector.goto(control.url.replace("/control/", "/projector/"))
    phones = [browser.new_context(**PHONE).new_page() for _ in range(2)]
    pseudonyms = [join_on_phone(phone, live_server_url, code) for phone in phones]

    # Scale: distribution, mean and median.
    control.get_by_role("button", name="Open: How connected do you feel right now?").click()
    for phone, point in zip(phones, ["3", "8"], strict=True):
        phone.get_by_label(point, exact=True).check()
        phone.get_by_role("button", name="Send answer").click()
        expect(phone.get_by_text("Answer received")).to_be_visible()
    phones[0].screenshot(path=ARTIFACTS / "phone-scale.png")
    expect(projector.locator(".stats")).to_have_text("Mean 5.5 · Median 5.5")

    # Word cloud: case and spacing folded, the shared word biggest.
    control.get_by_role("button", name="Open: One word for tonight").click()
    for phone, words in zip(phones, [["Hope", "tired"], [" hope ", "Warm"]], strict=True):
        for index, word in enumerate(words, start=1):
            phone.get_by_label(f"Word {index}").fill(word)
        phone.get_by_label("Word 2").press("Enter")  # the phone keyboard's Go key sends too
        expect(phone.get_by_text("Answer received")).to_be_visible()
    expect(projector.locator(".word.size-5")).to_have_text("hope (2)")
    projector.screenshot(path=ARTIFACTS / "projector-word-cloud.png")

    # Instruction with a countdown on every screen; no answer form.
    control.get_by_role("button", name="Open: Breathe together").click()
    expect(phones[0].locator("[role=timer]")).to_have_text(re.compile(r"^1:(2\d|30)$"))
    expect(projector.locator("[role=timer]")).to_have_text(re.compile(r"^1:(2\d|30)$"))
    expect(phones[0].get_by_role("button", name="Pass")).to_have_count(0)

    # Open text; one phone loses its connection while typing and keeps what it typed.
    control.get_by_role("button", name="Open: What helps you open up?").click()
    phones[1].get_by_label("Your answer").fill("<b>Time</b> & tea")
    phones[1].context.set_offline(True)
    phones[1].evaluate(DROP_CONNECTION)
    expect(phones[1].get_by_text("Reconnecting…")).to_be_visible()
    phones[1].context.set_offline(False)
    expect(phones[1].get_by_text("Reconnecting…")).to_be_hidden(timeout=15_000)
    expect(phones[1].get_by_label("Your answer")).to_have_value("<b>Time</b> & tea")
    phones[0].get_by_label("Your answer").fill("Being listened to")
    for phone in phones:
        phone.get_by_role("button", name="Send answer").click()
        expect(phone.get_by_text("Answer received")).to_be_visible()
    # Open text shows nothing until five people have written ...
    expect(projector.get_by_text("Results appear once 5 people have answered")).to_be_visible()
    late = [browser.new_context(**PHONE).new_page() for _ in range(3)]
    for phone, text in zip(late, ["Quiet", "Tea", "Walks"], strict=True):
        pseudonyms.append(join_on_phone(phone, live_server_url, code))
        phone.get_by_label("Your answer").fill(text)
        phone.get_by_role("button", name="Send answer").click()
        expect(phone.get_by_text("Answer received")).to_be_visible()
    # ... and then only what the facilitator approves, escaped.
    expect(control.locator(".moderation-summary")).to_contain_text("5 waiting for your approval")
    expect(
        projector.get_by_text("Answers appear here once the facilitator shares them")
    ).to_be_visible()
    control.locator(".moderation-item", has_text="<b>Time</b> & tea").get_by_role(
        "button", name="Show on projector"
    ).click()
    control.locator(".moderation-item", has_text="Quiet").get_by_role(
        "button", name="Show on projector"
    ).click()
    expect(projector.locator(".texts li")).to_have_count(2)
    expect(projector.locator(".texts")).to_contain_text("<b>Time</b> & tea")
    expect(projector.locator(".texts b")).to_have_count(0)
    control.screenshot(path=ARTIFACTS / "control-moderation.png", full_page=True)
    control.locator(".moderation-item", has_text="Quiet").get_by_role("button", name="Hide").click()
    expect(projector.locator(".texts li")).to_have_count(1)
    expect(control.locator(".moderation-item")).to_have_count(5)
    # Nobody's nickname stands next to their words, on the projector or the control view.
    for screen in (projector, control):
        for nickname in pseudonyms:
            expect(screen.locator(".texts, .moderation-list")).not_to_contain_text(nickname)


@pytest.fixture
def library(transactional_db) -> dict[str, list[dict]]:
    """The exercise library, loaded into the test database; each plan's steps."""
    from django.core.management import call_command

    from sessions.models import Plan

    call_command("load_library", stdout=io.StringIO())
    return {plan.slug: plan.steps for plan in Plan.objects.filter(owner=None)}


def answer_on(phone: Page, kind: str) -> None:
    """Answer the open question the way a person would: the first option, a word, a sentence."""
    if kind in {"single_choice", "multiple_choice", "emotion"}:
        phone.locator(".choice input").first.check()
    elif kind == "scale":
        points = phone.locator(".scale-point input")
        points.nth(points.count() // 2).check()
    elif kind == "open_text":
        phone.get_by_label("Your answer").fill("A small step")
    elif kind == "word_cloud":
        phone.get_by_label("Word 1").fill("lighter")
    phone.get_by_role("button", name="Send answer").click()
    expect(phone.get_by_text("Answer received")).to_be_visible()


def test_a_drop_in_plan_runs_from_check_in_to_check_out(library, browser, live_server_url):
    steps = library["drop-in"]
    kinds = {step["kind"] for step in steps}
    assert {"breathing", "pair_round", "scale"} <= kinds

    laptop = browser.new_context(**LAPTOP)
    control = laptop.new_page()
    sign_up(control, live_server_url, "cleo", "a-long-pass-phrase-for-cleo")
    control.get_by_role("button", name=re.compile("^Create a session from Drop-in")).click()
    expect(control.locator("#agenda-editor .agenda-list li")).to_have_count(len(steps))
    # Its support step still has gaps for local numbers: Start asks first, beside the list.
    control.get_by_role("button", name="Start session").click()
    gaps = control.locator("#gaps")
    expect(gaps).to_contain_text("1 step still has [bracketed] gaps")
    expect(gaps).to_be_in_viewport()
    control.screenshot(path=ARTIFACTS / "agenda-gaps-before-start.png")
    gaps.get_by_role("button", name="Start anyway").click()
    code = control.locator(".join-line .code").inner_text()
    projector = laptop.new_page()
    projector.goto(control.url.replace("/control/", "/projector/"))
    phones = [browser.new_context(**PHONE).new_page() for _ in range(3)]
    for phone in phones:
        join_on_phone(phone, live_server_url, code)

    current = control.locator("#control-live")
    for number, step in enumerate(steps, start=1):
        kind, prompt = step["kind"], step["prompt"]
        expect(current.locator(".current:not(.empty) .next-up, .current.empty")).to_have_count(1)
        control.get_by_role("button", name="Next →").click()
        expect(current.locator("h2")).to_have_text(prompt)
        expect(current.locator(".step-number")).to_have_text(f"step {number} of {len(steps)}")
        for phone in phones:
            expect(phone.locator("#phone-stage h1")).to_have_text(prompt)
        expect(projector.locator(".projector-prompt")).to_have_text(prompt)
        # The facilitator's script is on the control view only.
        expect(current.locator(".script")).to_be_visible()
        expect(projector.locator(".script")).to_have_count(0)
        expect(phones[0].locator(".script")).to_have_count(0)

        if kind == "breathing":
            for screen in (projector, phones[0]):
                expect(screen.locator(".pacer-phase")).to_have_text(
                    re.compile(r"^Breathe (in|out) · \d+$")
                )
            projector.screenshot(path=ARTIFACTS / "plan-projector-breathing.png")
            phones[0].screenshot(path=ARTIFACTS / "plan-phone-breathing.png")
            control.get_by_role("button", name="Pause timer").click()
            expect(projector.locator(".timer")).to_contain_text("paused")
            control.get_by_role("button", name="Resume timer").click()
            expect(projector.locator(".timer")).not_to_contain_text("paused")
        elif kind == "pair_round":
            control.get_by_role("button", name="Draw pairs").click()
            for phone in phones:
                expect(phone.locator(".group li.me")).to_be_visible()
            # Three phones: one triad, so every phone lists two others.
            expect(phones[0].locator(".group li")).to_have_count(3)
            phones[0].screenshot(path=ARTIFACTS / "plan-phone-pair-round.png")

            def leads(first_role: str = step["roles"][0]) -> list[int]:
                """Which phones hold the first role (the one that moves each round)."""
                roles = [phone.locator(".group li.me").inner_text() for phone in phones]
                return [index for index, role in enumerate(roles) if role.endswith(first_role)]

            first_round = leads()
            assert len(first_round) == 1
            if current.get_by_role("button", name="Next round: swap roles").count():
                current.get_by_role("button", name="Next round: swap roles").click()
                for phone in phones:
                    expect(phone.locator(".round")).to_contain_text("Round 2")
                second_round = leads()
                assert len(second_round) == 1 and second_round != first_round
        elif kind == "resources":
            expect(phones[0].locator("#phone-stage .notice")).to_contain_text("not medical advice")
        elif kind not in {"instruction", "question_cards"}:
            for phone in phones:
                answer_on(phone, kind)
            if number == 1:
                control.screenshot(path=ARTIFACTS / "plan-control-view.png", full_page=True)

    expect(current.locator(".next-up")).to_have_text("This is the last activity on the agenda.")
    control.once("dialog", lambda dialog: dialog.accept())
    control.get_by_role("button", name="End session").click()
    expect(control.locator(".summary-item")).to_have_count(len(steps))
    control.screenshot(path=ARTIFACTS / "plan-summary.png", full_page=True)


def test_joining_is_one_page_and_one_form_and_a_reload_keeps_the_nickname(
    choice_activity, live_session, browser, live_server_url
):
    in_thread(live_session.open_activity, choice_activity)
    phone = browser.new_context(**PHONE).new_page()
    requests: list[str] = []
    phone.on(
        "request",
        lambda request: (
            requests.append(f"{request.method} {request.resource_type}")
            if "/join/" in request.url
            else None
        ),
    )
    url = f"{live_server_url}/join/{live_session.join_code}/"

    phone.goto(url)
    history = phone.evaluate("history.length")
    phone.get_by_role("button", name="I understand, join").click()

    # The form's answer is the live phone page itself: the question, and a socket that opens.
    expect(phone.get_by_role("heading", name="Did you sleep well?")).to_be_visible()
    assert phone.evaluate("history.length") == history  # Back leaves; no consent form again
    for storage in ("localStorage", "sessionStorage"):  # nor a copy of it kept on the phone
        assert phone.evaluate(f"{storage}.getItem('htmx-history-cache')") is None
    nickname = phone.locator(".you strong").inner_text()
    phone.get_by_label("Yes").check()
    phone.get_by_role("button", name="Send answer").click()
    expect(phone.get_by_text("Answer received")).to_be_visible()
    assert phone.url == url
    assert phone.title() == "Tuesday circle · Attune"
    assert requests == ["GET document", "POST xhr"]

    phone.reload()  # as a phone on bad Wi-Fi does: no form posted again, the same nickname

    expect(phone.locator(".you strong")).to_have_text(nickname)
    expect(phone.get_by_label("Yes")).to_be_checked()
    assert requests[2:] == ["GET document"]
    assert in_thread(Participant.objects.count) == 1
    # A step back within the page (as a link to #somewhere makes) has htmx restore it: it keeps
    # no copy of the phone page, with its nickname and answers, either.
    phone.evaluate("history.pushState(null, '', '#withdraw'); history.back()")
    expect(phone.get_by_label("Yes")).to_be_checked()
    phone.wait_for_timeout(300)
    for storage in ("localStorage", "sessionStorage"):
        assert phone.evaluate(f"{storage}.getItem('htmx-history-cache')") is None


def test_a_consent_that_cannot_reach_the_server_is_sent_again_the_usual_way(
    choice_activity, live_session, browser, live_server_url
):
    in_thread(live_session.open_activity, choice_activity)
    phone = browser.new_context(**PHONE).new_page()
    dropped: list[str] = []

    def bad_wifi(route) -> None:
        if route.request.resource_type == "xhr" and not dropped:
            dropped.append(route.request.method)
            route.abort()  # htmx gets a network error, not an answer
        else:
            route.continue_()

    phone.route(re.compile(r"/join/"), bad_wifi)
    phone.goto(f"{live_server_url}/join/{live_session.join_code}/")
    phone.get_by_role("button", name="I understand, join").click()

    # The browser posts the form itself, follows the redirect, and the phone is in.
    expect(phone.get_by_role("heading", name="Did you sleep well?")).to_be_visible()
    expect(phone.locator(".you strong")).to_be_visible()
    assert dropped == ["POST"]
    assert in_thread(Participant.objects.count) == 1


def test_a_consent_sent_offline_stays_on_its_page_and_goes_through_once_back_online(
    choice_activity, live_session, browser, live_server_url
):
    in_thread(live_session.open_activity, choice_activity)
    phone = browser.new_context(**PHONE).new_page()
    phone.goto(f"{live_server_url}/join/{live_session.join_code}/")
    phone.context.set_offline(True)

    phone.get_by_role("button", name="I understand, join").click()

    expect(phone.get_by_role("alert")).to_have_text(
        "This phone is offline. Check its Wi-Fi or mobile data, then tap the button again."
    )
    expect(phone.get_by_role("alert")).to_be_in_viewport(ratio=1)
    expect(phone.get_by_role("heading", name="Before you start")).to_be_visible()
    phone.screenshot(path=ARTIFACTS / "consent-offline.png")
    assert in_thread(Participant.objects.count) == 0
    phone.context.set_offline(False)
    phone.get_by_role("button", name="I understand, join").click()
    expect(phone.get_by_role("heading", name="Did you sleep well?")).to_be_visible()
    assert in_thread(Participant.objects.count) == 1


def test_a_phone_refused_after_it_opened_the_consent_page_is_told_why(
    live_session, browser, live_server_url
):
    phone = browser.new_context(**PHONE).new_page()

    def as_in_production(route) -> None:
        # With DEBUG on, django-htmx shows an error response in place of the page by itself;
        # in production only attune.js does, which is what this test is about.
        response = route.fetch()
        body = response.text().replace('data-debug="True"', 'data-debug="False"')
        route.fulfill(response=response, body=body)

    phone.route(re.compile(r"/join/"), as_in_production)
    phone.goto(f"{live_server_url}/join/{live_session.join_code}/")
    in_thread(live_session.set_joins_locked, True)  # the facilitator closes the door meanwhile

    phone.get_by_role("button", name="I understand, join").click()

    expect(phone.get_by_text("not taking new participants right now")).to_be_visible()
    phone.screenshot(path=ARTIFACTS / "phone-join-refused.png")
    assert not in_thread(Participant.objects.exists)


def test_counts_read_earlier_never_replace_counts_read_later_on_the_projector(
    live_session, facilitator_cookie, browser, live_server_url
):
    """Two server processes may push one session's counts moments apart, and the frame read
    first may arrive last. The projector keeps the one read last (data-as-of), unless it is
    so much older that the clock must have been set back."""
    in_thread(live_session.add_participant)
    context = browser.new_context(**LAPTOP)
    context.add_cookies(
        [{"name": "sessionid", "value": facilitator_cookie, "url": live_server_url}]
    )
    projector = context.new_page()
    page_socket: list = []
    frames: list[str] = []

    def passing_through(socket) -> None:
        page_socket.append(socket)
        server = socket.connect_to_server()
        server.on_message(lambda message: (frames.append(message), socket.send(message)))

    projector.route_web_socket(re.compile(r"/projector/$"), passing_through)
    projector.goto(f"{live_server_url}/sessions/{live_session.pk}/projector/")
    for _ in range(100):  # the socket's first frame: the stage as the server reads it now
        if frames:
            break
        projector.wait_for_timeout(50)
    latest = frames[0]
    assert "1</strong> joined" in latest
    read_at = int(re.search(r'data-as-of="(\d+)"', latest).group(1))

    def with_count(count: int, as_of: int) -> str:
        frame = latest.replace("1</strong> joined", f"{count}</strong> joined")
        return frame.replace(f'data-as-of="{read_at}"', f'data-as-of="{as_of}"')

    page_socket[0].send(with_count(0, read_at - 1000))  # read earlier, arriving later
    projector.wait_for_timeout(300)
    expect(projector.locator(".projector-count")).to_contain_text("1 joined")

    page_socket[0].send(with_count(2, read_at + 1000))  # read later
    expect(projector.locator(".projector-count")).to_contain_text("2 joined")

    # Read a minute "earlier": the database's clock was set back, and the frame is new.
    page_socket[0].send(with_count(3, read_at - 60_000_000))
    expect(projector.locator(".projector-count")).to_contain_text("3 joined")
    context.close()


def test_the_control_view_stops_offering_pause_once_the_countdown_runs_out(
    live_session, facilitator_cookie, browser, live_server_url
):
    def open_a_countdown_about_to_run_out() -> None:
        step = add_activity(live_session, "instruction", "Sit quietly", body="Breathe")
        live_session.open_activity(step)
        live_session.restart_timer(5)

    in_thread(open_a_countdown_about_to_run_out)
    context = browser.new_context(**LAPTOP)
    context.add_cookies(
        [{"name": "sessionid", "value": facilitator_cookie, "url": live_server_url}]
    )
    control = context.new_page()
    control.goto(f"{live_server_url}/sessions/{live_session.pk}/control/")
    pause = control.get_by_role("button", name="Pause timer")
    expect(pause).to_be_visible()
    expect(control.locator(".timer")).to_contain_text("0:00", timeout=10_000)
    expect(pause).to_be_hidden()
    control.screenshot(path=ARTIFACTS / "control-countdown-run-out.png")
    # T, which paused it before, now gives more time; the new countdown can be paused again.
    control.keyboard.press("t")
    expect(control.locator(".timer")).to_contain_text(re.compile(r"1:00|0:5\d"))
    expect(pause).to_be_visible()
    context.close()


def test_the_projector_shows_the_quick_self_check_results_side_by_side_to_look_back(
    library, live_session, facilitator_cookie, browser, live_server_url
):
    def answer_the_three_questions_and_look_back() -> None:
        from sessions.models import Exercise

        check = Exercise.objects.filter(slug="quick-assessment").latest("version")
        *questions, look_back = live_session.add_steps(check.steps, source=check.label)
        people = [live_session.add_participant()[0] for _ in range(4)]
        answers = {"scale": ["2", "3", "4", "3"], "single_choice": ["0", "0", "4", "1"]}
        for question in questions:
            live_session.open_activity(question)
            field = "choice" if question.is_choice else "value"
            for person, value in zip(people, answers[question.kind], strict=True):
                person.answer(question.pk, {field: value})
        live_session.open_activity(look_back)

    in_thread(answer_the_three_questions_and_look_back)
    context = browser.new_context(viewport={"width": 1280, "height": 720})
    context.add_cookies(
        [{"name": "sessionid", "value": facilitator_cookie, "url": live_server_url}]
    )
    projector, control = context.new_page(), context.new_page()
    projector.goto(f"{live_server_url}/sessions/{live_session.pk}/projector/")
    control.goto(f"{live_server_url}/sessions/{live_session.pk}/control/")

    recap = projector.locator(".recap-question")
    # Some results may have been hidden while they were asked: the projector waits.
    expect(
        projector.get_by_text("Results appear here when the facilitator shows them.")
    ).to_be_visible()
    expect(recap).to_have_count(0)
    control.get_by_role("button", name="Show results").click()
    expect(recap).to_have_count(3)
    expect(recap.nth(0)).to_contain_text("Mean 3.0")
    expect(recap.nth(1)).to_contain_text("Fear of being judged or turned away")
    expect(recap.nth(2)).to_contain_text("Most days")
    # The three fit on the screen beside the step's own text: the results are made only as
    # small as needed (they reach down the screen), never the step's words or the join code,
    # and nobody scrolls.
    assert projector.evaluate("document.documentElement.scrollHeight <= innerHeight")
    assert projector.locator(".projector-root").evaluate("root => root.style.zoom") == ""
    fill = "e => e.getBoundingClientRect().bottom / innerHeight"
    assert projector.locator(".recap").evaluate(fill) > 0.85
    projector.screenshot(path=ARTIFACTS / "projector-recap.png")
    expect(control.locator(".recap-question")).to_have_count(3)
    control.screenshot(path=ARTIFACTS / "control-recap.png", full_page=True)
    control.get_by_role("button", name="Hide results").click()
    expect(recap).to_have_count(0)
    expect(
        projector.get_by_text("Results appear here when the facilitator shows them.")
    ).to_be_visible()
    context.close()


def test_adding_a_library_exercise_says_so_beside_the_button(library, browser, live_server_url):
    """The agenda is far above the library on the page: the button's own place says what
    happened, and a link leads to the new steps, which stand out."""
    page = browser.new_context(**LAPTOP).new_page()
    new_session(page, live_server_url, "dana", "Thursday group")
    exercise = page.locator(
        ".exercise", has=page.get_by_role("heading", name="Check-in: how connected")
    )
    exercise.get_by_role("button", name="Add to agenda").click()

    added = exercise.get_by_role("status")
    expect(added).to_have_text(re.compile(r"^Added \d+ steps? to the end of the agenda\."))
    expect(added).to_be_in_viewport()
    page.screenshot(path=ARTIFACTS / "agenda-exercise-added.png")
    added.get_by_role("link", name="Show in the agenda").click()
    expect(page.locator("#agenda-editor .agenda-list li.is-new").first).to_be_in_viewport()
    expect(page.locator("#agenda-editor .planned")).to_contain_text("in all")

    # Breathing goes before the check-in's two steps, picked from the library's place picker.
    step_one = page.locator("#add-before option", has_text="before step 1: ").get_attribute("value")
    page.get_by_label("Add exercises").select_option(step_one)
    calm = page.locator(".exercise", has=page.get_by_role("heading", name="Calm the body first"))
    calm.get_by_role("button", name="Add to agenda").click()
    expect(calm.get_by_role("status")).to_contain_text("steps before “How connected")
    page.get_by_label("Add exercises").scroll_into_view_if_needed()
    page.screenshot(path=ARTIFACTS / "agenda-exercise-added-before.png")
    first = page.locator("#agenda-editor .agenda-list li").first
    expect(first).to_have_class("is-new")
    # Still before the check-in, for the next one.
    expect(page.get_by_label("Add exercises")).to_have_value(step_one)

    # The check-in goes back to the top as one exercise, with the button on its first step.
    check_in = page.locator("#agenda-editor .agenda-list li", has_text="How connected")
    check_in.get_by_role("button", name="Move the exercise up").click()
    steps = page.locator("#agenda-editor .agenda-list li")
    expect(steps.nth(0)).to_contain_text("How connected")
    expect(steps.nth(1)).to_contain_text("Which feelings")
    expect(steps.nth(2)).to_contain_text("Slow breathing")
    # At the top its "up" is disabled: the keyboard goes to its "down".
    expect(check_in.get_by_role("button", name="Move the exercise down")).to_be_focused()
    page.locator("#agenda-editor").screenshot(path=ARTIFACTS / "agenda-exercise-moved.png")


def test_moving_a_step_keeps_the_page_still_and_the_focus_on_the_step_moved(
    browser, live_server_url
):
    """The agenda editor is replaced after each move: the page must not jump to the library
    below, and the keyboard stays on the step's own button, to press it again."""
    page = browser.new_context(**LAPTOP).new_page()
    new_session(page, live_server_url, "remi", "A long agenda")

    def fill_agenda() -> None:
        session = Session.objects.get(title="A long agenda")
        for number in range(1, 16):
            add_activity(session, "instruction", f"Step {number}")

    in_thread(fill_agenda)
    page.reload()
    down = page.get_by_role("button", name="Move down: Step 12", exact=True)
    down.scroll_into_view_if_needed()
    before = page.evaluate("() => window.scrollY")

    down.click()
    expect(page.locator("#agenda-editor .agenda-list li").nth(12)).to_contain_text("Step 12")
    expect(page.get_by_role("button", name="Move down: Step 12", exact=True)).to_be_focused()
    assert abs(page.evaluate("() => window.scrollY") - before) < 40
    # Pressed again once htmx has taken the new editor in (the swap settles after 20 ms).
    expect(page.locator(".htmx-settling")).to_have_count(0)
    page.keyboard.press("Enter")
    expect(page.locator("#agenda-editor .agenda-list li").nth(13)).to_contain_text("Step 12")
    assert abs(page.evaluate("() => window.scrollY") - before) < 80

    # At the bottom its "down" button is disabled: the keyboard goes to its "up" button.
    expect(page.locator(".htmx-settling")).to_have_count(0)
    page.keyboard.press("Enter")
    expect(page.locator("#agenda-editor .agenda-list li").nth(14)).to_contain_text("Step 12")
    expect(page.get_by_role("button", name="Move up: Step 12", exact=True)).to_be_focused()
