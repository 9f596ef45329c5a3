"""A small phone in a real browser: what a tap did is seen without scrolling, a new question opens
at its heading, a changed answer is not taken for a sent one, a slow join shows it is on its way.
Screenshots of what the person sees go to test-artifacts/phone-feedback-*.png."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Browser, Page, expect

from sessions.models import Activity, Session
from tests.conftest import ARTIFACTS, add_activity, in_thread, socket_frames, wait_for_a_frame
from tests.test_e2e import DROP_CONNECTION, LAPTOP

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

Kind = Activity.Kind
SMALL_PHONE = {"viewport": {"width": 320, "height": 568}, "is_mobile": True, "has_touch": True}

# Long enough that on a 320x568 phone the question and its options are taller than the screen.
PROMPT = "Thinking back over this week, which of these is closest to how you arrived tonight?"
SECOND_PROMPT = "Which of these would you like more of in the coming week, if any of them fit?"
WRITTEN_PROMPT = "What would help you feel at ease here?"
BODY = (
    "Take a moment before you answer. There is no right answer, and nobody sees who chose what: "
    "the group only sees how many people chose each option, once enough people have answered."
)
OPTIONS = [
    "Rushed, with my head still full of the day I left behind at work and on the way here",
    "Tired, but glad to have made it and curious about what tonight will bring",
    "Calm and settled, ready to listen and to share something if it feels right",
    "Anxious about something at home that I may or may not want to talk about",
    "Distracted: part of me is still somewhere else and needs a few minutes to arrive",
    "Hopeful, because last week's conversation stayed with me in a good way",
]
# What the phone reads where the page's scroll position is: a stage's heading is "read" when it
# is wholly on screen.
ON_SCREEN = """(element) => { const box = element.getBoundingClientRect();
    return box.top >= 0 && box.bottom <= window.innerHeight; }"""
# Whether a tap at the middle of the element reaches it, or something is drawn over it.
REACHABLE = """(element) => { const box = element.getBoundingClientRect();
    const hit = document.elementFromPoint(box.left + box.width / 2, box.top + box.height / 2);
    return element.contains(hit); }"""


@pytest.fixture
def evening(transactional_db, facilitator) -> Session:
    """A live session with two long questions and an open text; the first question open. Made
    before the browser starts: Playwright's event loop then owns the test's thread."""
    session = Session.objects.create(facilitator=facilitator, title="Evening circle")
    session.start()
    first = add_activity(session, Kind.SINGLE_CHOICE, PROMPT, body=BODY, options=OPTIONS)
    add_activity(session, Kind.MULTIPLE_CHOICE, SECOND_PROMPT, body=BODY, options=OPTIONS)
    add_activity(session, Kind.OPEN_TEXT, WRITTEN_PROMPT, body="\n\n".join([BODY] * 4))
    session.open_activity(first)
    return session


def small_phone(browser: Browser, **options) -> Page:
    return browser.new_context(**SMALL_PHONE, **options).new_page()


def join(phone: Page, base_url: str, session: Session, button: str = "I understand, join") -> None:
    """Join, and wait for the socket's first frame: it renders the stage afresh."""
    frames = socket_frames(phone)
    phone.goto(f"{base_url}/join/{session.join_code}/")
    phone.get_by_role("button", name=button).click()
    wait_for_a_frame(phone, frames)


def control_view(browser: Browser, base_url: str, cookie: str, session: Session) -> Page:
    laptop = browser.new_context(**LAPTOP)
    laptop.add_cookies([{"name": "sessionid", "value": cookie, "url": base_url}])
    control = laptop.new_page()
    control.goto(f"{base_url}/sessions/{session.pk}/control/")
    # The buttons are attune.js's and htmx's to send: wait until the page is live.
    control.wait_for_load_state()
    return control


def writing(browser: Browser, base_url: str, cookie: str, session: Session) -> tuple[Page, Page]:
    """The control view with the open-text question open, and a phone joined to answer it."""
    control = control_view(browser, base_url, cookie, session)
    control.get_by_role("button", name=f"Open: {WRITTEN_PROMPT}").click()
    phone = small_phone(browser)
    join(phone, base_url, session)
    return control, phone


def scroll_to_buttons(phone: Page) -> None:
    """Where a person who is about to tap Send is: the buttons at the bottom of the screen."""
    phone.get_by_role("button", name=re.compile("^(Send|Update) answer$")).evaluate(
        "(button) => button.scrollIntoView({block: 'end'})"
    )
    assert not phone.locator("#phone-stage h1").evaluate(ON_SCREEN), "the stage fits the screen"


def settled(phone: Page) -> None:
    expect(phone.locator(".htmx-settling, .htmx-added")).to_have_count(0)


# What a tap did, on screen ---------------------------------------------------------------------


def test_after_sending_the_answer_received_is_next_to_the_buttons(
    evening, browser, live_server_url
):
    phone = small_phone(browser)
    join(phone, live_server_url, evening)
    phone.get_by_label(OPTIONS[2]).check()
    scroll_to_buttons(phone)

    phone.get_by_role("button", name="Send answer").tap()

    state = phone.locator("#phone-stage .state")
    expect(state).to_have_text("Answer received. You can change it while the question is open.")
    expect(state).to_be_in_viewport(ratio=1)
    expect(phone.get_by_role("button", name="Update answer")).to_be_in_viewport()
    phone.screenshot(path=ARTIFACTS / "phone-feedback-answer-sent-320.png")


def test_a_refused_send_says_why_on_screen_and_leaves_the_buttons_free(
    evening, browser, live_server_url
):
    phone = small_phone(browser)
    join(phone, live_server_url, evening)
    scroll_to_buttons(phone)

    phone.get_by_role("button", name="Send answer").tap()  # nothing picked

    notice = phone.get_by_role("alert")
    expect(notice).to_have_text("Pick an option, or pass.")
    expect(notice).to_be_in_viewport(ratio=1)
    phone.screenshot(path=ARTIFACTS / "phone-feedback-refused-empty-320.png")
    for name in ("Send answer", "Pass"):
        assert phone.get_by_role("button", name=name).evaluate(REACHABLE), f"{name} is covered"
    # Picking and sending clears it.
    phone.get_by_label(OPTIONS[0]).check()
    phone.get_by_role("button", name="Send answer").tap()
    expect(phone.locator("#phone-stage .state")).to_contain_text("Answer received")
    expect(notice).to_be_hidden()


def test_an_answer_on_a_stalled_connection_says_it_is_still_sending(
    evening, browser, live_server_url
):
    phone = small_phone(browser)
    join(phone, live_server_url, evening)
    # Offline, Chromium keeps the socket open and nothing goes through it: a stalled signal.
    phone.context.set_offline(True)
    phone.get_by_label(OPTIONS[2]).check()
    phone.get_by_role("button", name="Send answer").tap()

    expect(phone.get_by_role("alert")).to_contain_text(
        "Still sending: the connection is slow. Keep this page open and your answer goes "
        "through as soon as it can.",
        timeout=10_000,
    )
    phone.context.set_offline(False)
    expect(phone.locator("#phone-stage .state")).to_contain_text("Answer received", timeout=30_000)
    expect(phone.get_by_role("alert")).to_be_hidden()


def test_reconnecting_shows_at_the_bottom_of_the_screen(evening, browser, live_server_url):
    phone = small_phone(browser)
    join(phone, live_server_url, evening)
    scroll_to_buttons(phone)

    phone.context.set_offline(True)
    phone.evaluate(DROP_CONNECTION)

    banner = phone.get_by_text("Reconnecting…")
    expect(banner).to_be_visible()
    expect(banner).to_be_in_viewport(ratio=1)
    phone.screenshot(path=ARTIFACTS / "phone-feedback-reconnecting-320.png")
    # A tap meanwhile is not lost, and the phone says so.
    phone.get_by_label(OPTIONS[2]).check()
    phone.get_by_role("button", name="Send answer").tap()
    expect(phone.get_by_role("alert")).to_contain_text(
        "Not sent yet: it goes as soon as this phone is back online."
    )
    phone.context.set_offline(False)
    expect(banner).to_be_hidden(timeout=15_000)
    expect(phone.locator("#phone-stage .state")).to_contain_text("Answer received")
    expect(phone.get_by_role("alert")).to_be_hidden()


def test_answers_closed_shows_next_to_the_buttons(
    evening, facilitator_cookie, browser, live_server_url
):
    control = control_view(browser, live_server_url, facilitator_cookie, evening)
    phone = small_phone(browser)
    join(phone, live_server_url, evening)
    phone.get_by_label(OPTIONS[1]).check()
    scroll_to_buttons(phone)

    control.get_by_role("button", name="Lock answers").click()

    state = phone.locator("#phone-stage .state")
    expect(state).to_have_text("Answers are closed for this question.")
    expect(state).to_be_in_viewport(ratio=1)
    phone.screenshot(path=ARTIFACTS / "phone-feedback-locked-320.png")

    # Opened again: the choice picked and not sent is back, still to send.
    control.get_by_role("button", name="Unlock answers").click()
    expect(phone.get_by_label(OPTIONS[1])).to_be_checked()
    expect(phone.get_by_role("button", name="Send answer")).to_be_enabled()


# A new question --------------------------------------------------------------------------------


def test_a_new_question_opens_at_its_heading(evening, facilitator_cookie, browser, live_server_url):
    control = control_view(browser, live_server_url, facilitator_cookie, evening)
    phone = small_phone(browser)
    join(phone, live_server_url, evening)
    scroll_to_buttons(phone)

    control.get_by_role("button", name=f"Open: {SECOND_PROMPT}").click()

    heading = phone.locator("#phone-stage h1")
    expect(heading).to_have_text(SECOND_PROMPT)
    expect(heading).to_be_in_viewport(ratio=1)
    # Its checkboxes keep their size next to long options, like the radio buttons.
    settled(phone)
    for box in phone.locator(".choice input[type=checkbox]").all():
        assert box.bounding_box()["width"] >= 20, "a checkbox shrank next to a long option"


def test_a_question_edited_while_someone_types_does_not_move_their_page(
    evening, facilitator_cookie, browser, live_server_url
):
    """The facilitator corrects the open question's wording: the phone's heading changes, but
    the person typing an answer keeps their place and their words."""
    control, phone = writing(browser, live_server_url, facilitator_cookie, evening)
    answer = phone.get_by_label(re.compile("^Your answer"))
    answer.evaluate("(field) => field.scrollIntoView({block: 'end'})")
    answer.tap()
    answer.press_sequentially("Tea, and")
    assert not phone.locator("#phone-stage h1").evaluate(ON_SCREEN)
    where = phone.evaluate("window.scrollY")

    editor = control.context.new_page()
    editor.goto(f"{live_server_url}/sessions/{evening.pk}/")
    item = editor.locator("#agenda-editor .agenda-list li", has_text=WRITTEN_PROMPT)
    item.get_by_role("button", name="Edit").click()
    form = editor.locator("#agenda-editor .agenda-list li.editing")
    form.get_by_label("Question or prompt").fill("What would help you feel at home here?")
    form.get_by_role("button", name="Save", exact=True).click()

    expect(phone.locator("#phone-stage h1")).to_have_text("What would help you feel at home here?")
    expect(answer).to_be_focused()
    answer.press_sequentially(" quiet")
    expect(answer).to_have_value("Tea, and quiet")
    assert phone.evaluate("window.scrollY") == where


# A changed answer ------------------------------------------------------------------------------


def test_a_changed_answer_says_it_is_not_sent_until_it_is(evening, browser, live_server_url):
    phone = small_phone(browser)
    join(phone, live_server_url, evening)
    state = phone.locator("#phone-stage .state")
    phone.get_by_label(OPTIONS[0]).check()
    phone.get_by_role("button", name="Send answer").tap()
    expect(state).to_contain_text("Answer received")
    settled(phone)

    phone.get_by_label(OPTIONS[3]).check()

    expect(state).to_have_text("Not sent yet: tap Update answer")
    expect(phone.get_by_text("Answer received")).to_have_count(0)
    scroll_to_buttons(phone)
    phone.screenshot(path=ARTIFACTS / "phone-feedback-not-sent-320.png")
    phone.get_by_role("button", name="Update answer").tap()
    expect(state).to_contain_text("Answer received")
    settled(phone)

    # Changed, then changed back and sent: the stage the server sends is the one shown already
    # (and is not swapped in again), but the answer was sent and stored.
    phone.get_by_label(OPTIONS[1]).check()
    expect(state).to_have_text("Not sent yet: tap Update answer")
    phone.get_by_label(OPTIONS[3]).check()
    phone.get_by_role("button", name="Update answer").tap()
    expect(state).to_contain_text("Answer received")


def test_an_answer_not_sent_when_the_facilitator_moves_on_comes_back_with_the_question(
    evening, facilitator_cookie, browser, live_server_url
):
    control, phone = writing(browser, live_server_url, facilitator_cookie, evening)
    answer = phone.get_by_label(re.compile("^Your answer"))
    answer.fill("Knowing I can stay quiet for a while")

    control.get_by_role("button", name=f"Open: {SECOND_PROMPT}").click()

    expect(phone.locator("#phone-stage h1")).to_have_text(SECOND_PROMPT)
    kept = (
        "Your answer to the last question was not sent. This phone keeps it: it comes back if "
        "that question opens again."
    )
    notice = phone.locator("#notice")
    expect(notice).to_have_text(kept + "OK")
    phone.screenshot(path=ARTIFACTS / "phone-feedback-draft-kept-320.png")
    # Stuck to the bottom of the screen, it covers the new question's options: it closes.
    notice.get_by_role("button", name="OK").tap()
    expect(notice).to_be_hidden()
    expect(phone.locator("#phone-stage h1")).to_be_focused()  # a screen reader goes on from there
    phone.get_by_label(OPTIONS[1]).check()  # picked, not sent either
    control.get_by_role("button", name=f"Open: {WRITTEN_PROMPT}").click()
    expect(phone.locator("#phone-stage h1")).to_have_text(WRITTEN_PROMPT)
    expect(answer).to_have_value("Knowing I can stay quiet for a while")
    # Told again (the choice was kept), until the person goes on writing.
    expect(notice).to_contain_text(kept)
    answer.press_sequentially(", with tea")
    expect(notice).to_be_hidden()
    phone.get_by_role("button", name="Send answer").tap()
    expect(phone.locator("#phone-stage .state")).to_contain_text("Answer received")
    control.get_by_role("button", name=f"Open: {SECOND_PROMPT}").click()
    expect(phone.get_by_label(OPTIONS[1])).to_be_checked()
    expect(phone.get_by_role("button", name="Send answer")).to_be_visible()
    # The written answer was sent: moving back shows the stored one, and nothing is put back.
    control.get_by_role("button", name=f"Open: {WRITTEN_PROMPT}").click()
    expect(answer).to_have_value("Knowing I can stay quiet for a while, with tea")
    expect(phone.locator("#phone-stage .state")).to_contain_text("Answer received")


def test_a_long_answer_counts_down_to_its_limit(
    evening, facilitator_cookie, browser, live_server_url
):
    _control, phone = writing(browser, live_server_url, facilitator_cookie, evening)
    limit = phone.locator("#phone-stage .limit")
    expect(limit).to_have_text("Up to 500 characters.")
    answer = phone.get_by_label(re.compile("^Your answer"))

    answer.fill("Quiet. " * 64)  # 448 characters: not near the end yet
    expect(limit).to_have_text("Up to 500 characters.")
    answer.press_sequentially("Tea and a chair by the door")

    expect(limit).to_have_text("Characters left: 25")
    phone.screenshot(path=ARTIFACTS / "phone-feedback-characters-left-320.png")


def test_a_paste_too_long_for_the_answer_says_its_end_was_left_out(
    evening, facilitator_cookie, browser, live_server_url
):
    _control, phone = writing(browser, live_server_url, facilitator_cookie, evening)
    phone.context.grant_permissions(["clipboard-read", "clipboard-write"])
    story = "It was a long week, and I kept it all to myself. " * 14  # 700 characters
    phone.evaluate("(text) => navigator.clipboard.writeText(text)", story)
    answer = phone.get_by_label(re.compile("^Your answer"))
    limit = phone.locator("#phone-stage .limit")

    answer.focus()
    phone.keyboard.press("Control+V")

    expect(answer).to_have_value(story[:500])
    cut = "Only 500 characters fit: the end of what you pasted was left out."
    expect(limit).to_have_text(cut)
    expect(phone.locator("#announcer")).to_have_text(cut)  # read out too
    phone.screenshot(path=ARTIFACTS / "phone-feedback-paste-cut-320.png")
    answer.press("Backspace")  # going on, the count comes back
    expect(limit).to_have_text("Characters left: 1")


# What the page asks of the browser's Screen Wake Lock, in the order asked.
WAKE_LOCK_LOG = """() => {
    window.wakeLockLog = [];
    Object.defineProperty(navigator, "wakeLock", { value: { request: (type) => {
        const lock = new EventTarget();
        lock.release = () => { window.wakeLockLog.push("release"); return Promise.resolve(); };
        window.wakeLockLog.push("request " + type);
        return Promise.resolve(lock);
    } } });
}"""


def test_the_screen_stays_on_while_the_room_breathes_and_not_after(
    evening, facilitator_cookie, browser, live_server_url
):
    in_thread(
        lambda: add_activity(
            evening, Kind.BREATHING, "Breathe together", body="Follow.", timer_seconds=120
        )
    )
    control = control_view(browser, live_server_url, facilitator_cookie, evening)
    phone = small_phone(browser)
    phone.add_init_script(f"({WAKE_LOCK_LOG})()")
    join(phone, live_server_url, evening)
    phone.wait_for_timeout(600)  # a few of attune.js's ticks
    assert phone.evaluate("window.wakeLockLog") == []  # a question: the screen may dim

    control.get_by_role("button", name="Open: Breathe together").click()

    expect(phone.locator("#phone-stage [data-pacer]")).to_be_visible()
    assert wake_lock_log(phone, 1) == ["request screen"]
    control.get_by_role("button", name=f"Open: {SECOND_PROMPT}").click()
    assert wake_lock_log(phone, 2) == ["request screen", "release"]


def wake_lock_log(phone: Page, entries: int) -> list[str]:
    """The page's wake lock requests and releases, once it has this many (or after 5 s)."""
    for _ in range(50):
        log = phone.evaluate("window.wakeLockLog")
        if len(log) >= entries:
            break
        phone.wait_for_timeout(100)
    phone.wait_for_timeout(300)  # and nothing more comes
    return phone.evaluate("window.wakeLockLog")


# Joining ---------------------------------------------------------------------------------------


def hold_the_join(phone: Page) -> list:
    """The consent form's post waits in the returned list until the test lets it through, as
    on a slow room Wi-Fi."""
    held: list = []

    def slow(route) -> None:
        if route.request.method == "POST":
            held.append(route)
        else:
            route.continue_()

    phone.route(re.compile(r"/join/"), slow)
    return held


def wait_for(held: list, phone: Page) -> None:
    for _ in range(100):
        if held:
            return
        phone.wait_for_timeout(50)
    raise AssertionError("the form was not posted")


def test_a_slow_join_says_it_is_joining(evening, browser, live_server_url):
    phone = small_phone(browser)
    held = hold_the_join(phone)
    phone.goto(f"{live_server_url}/join/{evening.join_code}/")
    phone.wait_for_load_state()
    joining = phone.get_by_role("status").get_by_text("Joining…")
    expect(joining).to_be_hidden()

    phone.get_by_role("button", name="I understand, join").click()

    wait_for(held, phone)
    expect(joining).to_be_visible()
    expect(joining).to_be_in_viewport(ratio=1)
    expect(phone.get_by_role("button", name="I understand, join")).to_be_disabled()
    phone.screenshot(path=ARTIFACTS / "phone-feedback-joining-320.png")
    held[0].continue_()
    expect(phone.get_by_role("heading", name=PROMPT)).to_be_visible()


def test_in_spanish_the_join_and_a_changed_answer_say_so_in_spanish(
    evening, browser, live_server_url
):
    phone = small_phone(browser, locale="es-ES")
    held = hold_the_join(phone)
    phone.goto(f"{live_server_url}/join/{evening.join_code}/")
    phone.wait_for_load_state()
    frames = socket_frames(phone)
    phone.get_by_role("button", name="Entendido, entrar").click()
    wait_for(held, phone)
    expect(phone.get_by_role("status").get_by_text("Entrando…")).to_be_visible()
    held[0].continue_()
    wait_for_a_frame(phone, frames)
    phone.get_by_label(OPTIONS[0]).check()
    phone.get_by_role("button", name="Enviar respuesta").tap()
    state = phone.locator("#phone-stage .state")
    expect(state).to_contain_text("Respuesta recibida")
    settled(phone)

    phone.get_by_label(OPTIONS[1]).check()

    expect(state).to_have_text("Aún no se ha enviado: pulsa «Actualizar respuesta»")


# Long options ----------------------------------------------------------------------------------


def test_radio_buttons_keep_their_size_next_to_long_options(evening, browser, live_server_url):
    phone = small_phone(browser)
    join(phone, live_server_url, evening)
    radios = phone.locator(".choice input[type=radio]")
    expect(radios).to_have_count(len(OPTIONS))
    for radio in radios.all():
        box = radio.bounding_box()
        assert box["width"] >= 20 and box["height"] >= 20, f"a radio button is {box}"
