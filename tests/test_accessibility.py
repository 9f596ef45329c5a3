"""Ready for the room, in a real browser: axe-core on every page, both themes, phones at 390 and
320 px and with 200% text, the projector's type sizes, and a facilitator who only uses the
keyboard. Screenshots of each view in each theme go to test-artifacts/."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from sessions.exercises.schema import LIBRARY_DIR, read_exercise
from sessions.models import Activity, Answer, Group, Session
from tests.conftest import ARTIFACTS, ROOT, add_activity, in_thread
from tests.test_review import answer_all, circle

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
PROJECTOR = {"width": 1280, "height": 720}
PHONES = {"phone": {"width": 390, "height": 844}, "small-phone": {"width": 320, "height": 640}}
THEMES = ["light", "dark"]
PHONES_CONTEXT = {"viewport": {"width": 390, "height": 844}, "is_mobile": True}


def axe_problems(page: Page) -> list[dict]:
    """The serious and critical violations axe-core finds on the page as it is now."""
    page.add_script_tag(path=str(AXE))
    results = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    return [
        {
            "id": violation["id"],
            "impact": violation["impact"],
            "help": violation["help"],
            "nodes": [node["target"] for node in violation["nodes"]][:5],
        }
        for violation in results["violations"]
        if violation["impact"] in {"serious", "critical"}
    ]


def check_page(page: Page, name: str, problems: dict[str, list]) -> None:
    """Screenshot the page and collect its axe problems under `name`."""
    page.screenshot(path=ARTIFACTS / f"a11y-{name}.png", full_page=True)
    found = axe_problems(page)
    if found:
        problems[name] = found


def report(problems: dict[str, list]) -> str:
    path = ARTIFACTS / "axe-problems.json"
    path.write_text(json.dumps(problems, indent=2))
    return f"axe-core found serious or critical problems (see {path}):\n" + json.dumps(
        problems, indent=1
    )


def new_page(browser: Browser, *, theme: str, viewport: dict, cookie: str | None, url: str) -> Page:
    # bypass_csp: axe-core is injected as a script the page's policy would refuse.
    context = browser.new_context(viewport=viewport, color_scheme=theme, bypass_csp=True)
    if cookie:
        context.add_cookies([{"name": "sessionid", "value": cookie, "url": url}])
    return context.new_page()


# A facilitator's pages ------------------------------------------------------------------------


@pytest.fixture
def facilitators_world(transactional_db, facilitator) -> dict[str, str]:
    """Something on every facilitator page: a draft, a live session with results, an ended one
    in a group. Paths by page name."""
    draft = Session.objects.create(facilitator=facilitator, title="Next week")
    add_activity(draft, Activity.Kind.SCALE, "How rested are you?", scale_min=1, scale_max=5)
    ended, *_ = circle(facilitator)
    group = Group.objects.create(facilitator=facilitator, name="Tuesday evening circle")
    ended.group = group
    ended.save()
    live, *_ = circle(facilitator, end=False)
    return {
        "dashboard": "/dashboard/",
        "editor": f"/sessions/{draft.pk}/",
        "library": "/library/",
        "summary": f"/sessions/{ended.pk}/summary/",
        "groups": "/groups/",
        "group": f"/groups/{group.pk}/",
        "settings": "/account/",
        "control": f"/sessions/{live.pk}/control/",
        "projector": f"/sessions/{live.pk}/projector/",
    }


@pytest.mark.parametrize("theme", THEMES)
def test_every_facilitator_page_passes_axe(
    facilitators_world, facilitator_cookie, browser, live_server_url, theme
):
    problems: dict[str, list] = {}
    page = new_page(
        browser, theme=theme, viewport=PROJECTOR, cookie=facilitator_cookie, url=live_server_url
    )
    for name, path in facilitators_world.items():
        page.goto(live_server_url + path)
        expect(page.locator("main")).to_be_visible()
        check_page(page, f"{name}-{theme}", problems)
    assert not problems, report(problems)


def test_the_signed_out_pages_pass_axe(browser, live_server_url):
    problems: dict[str, list] = {}
    for theme in THEMES:
        page = new_page(browser, theme=theme, viewport=PROJECTOR, cookie=None, url=live_server_url)
        for name, path in {"sign-in": "/accounts/login/", "sign-up": "/accounts/signup/"}.items():
            page.goto(live_server_url + path)
            check_page(page, f"{name}-{theme}", problems)
        page.get_by_role("button", name="Create account").click()  # errors tied to fields
        check_page(page, f"sign-up-errors-{theme}", problems)
    assert not problems, report(problems)


# The projector -------------------------------------------------------------------------------

SMALL_TEXT = """() => {
  const small = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const node = walker.currentNode;
    const element = node.parentElement;
    if (!node.textContent.trim() || !element.checkVisibility()) continue;
    if (element.closest('.sr-only, dialog:not([open])')) continue;
    const size = parseFloat(getComputedStyle(element).fontSize);
    if (size < 24) small.push(`${size}px: ${node.textContent.trim().slice(0, 40)}`);
  }
  return small;
}"""


@pytest.fixture
def projector_session(transactional_db, facilitator) -> Session:
    session, *_ = circle(facilitator, end=False)
    return session


def open_in_thread(session: Session, kind: str) -> None:
    def open_activity() -> None:
        session.refresh_from_db()
        activity = session.activities.filter(kind=kind).first() or add_activity(
            session, kind, "Breathe with me" if kind == Activity.Kind.BREATHING else "One word?"
        )
        session.open_activity(activity)

    in_thread(open_activity)


@pytest.mark.parametrize("theme", THEMES)
def test_the_projector_is_readable_from_the_back_of_the_room(
    projector_session, facilitator_cookie, browser, live_server_url, theme
):
    page = new_page(
        browser, theme=theme, viewport=PROJECTOR, cookie=facilitator_cookie, url=live_server_url
    )
    problems: dict[str, list] = {}
    url = f"{live_server_url}/sessions/{projector_session.pk}/projector/"
    for kind in (Activity.Kind.SCALE, Activity.Kind.OPEN_TEXT, Activity.Kind.BREATHING):
        open_in_thread(projector_session, kind)
        page.goto(url)
        # The join code stays in view while people may join.
        expect(page.locator(".join-code")).to_be_visible()
        expect(page.locator(".join-code")).to_be_in_viewport()
        assert page.evaluate(SMALL_TEXT) == [], f"text under 24px on the projector ({kind})"
        assert page.evaluate(ZOOM) == "", f"the usual {kind} step zoomed out to fit 720 pixels"
        check_page(page, f"projector-{kind}-{theme}", problems)
    assert not problems, report(problems)
    # The projector never shows the facilitator's script or notes.
    assert "About 2 minutes" not in page.content()


ZOOM = "document.querySelector('.projector-root').style.zoom"
# How far the results are zoomed out in all (attune.js zooms the results, or else the stage).
STAGE_ZOOM = """() => [".projector-root", ".projector-stage .results"]
    .map((selector) => parseFloat(document.querySelector(selector).style.zoom) || 1)
    .reduce((a, b) => a * b)"""
FITS = """() => document.documentElement.scrollHeight <= innerHeight
             && document.documentElement.scrollWidth <= innerWidth"""
LONG_WORD = "Supercalifragilisticexpialidocious" * 6


def open_with_answers(session: Session, kind: str, prompt: str, values: list, **fields) -> None:
    session.refresh_from_db()
    activity = add_activity(session, kind, prompt, **fields)
    answer_all(session, activity, values)
    session.refresh_from_db()
    session.set_results_visible(True)


def test_the_projector_shows_the_whole_stage_on_the_screen_whatever_it_holds(
    projector_session, facilitator_cookie, browser, live_server_url
):
    """A 720-pixel projector never needs scrolling, which nobody can do on it: the lobby with
    its code, a question with eleven options, a 1 to 10 scale, an approved text that is one
    long word. What does not fit at full size is zoomed out until it does."""
    page = new_page(
        browser, theme="light", viewport=PROJECTOR, cookie=facilitator_cookie, url=live_server_url
    )
    url = f"{live_server_url}/sessions/{projector_session.pk}/projector/"

    def look(name: str) -> None:
        page.goto(url)
        page.wait_for_load_state()
        assert page.evaluate(FITS), f"{name}: the projector needs scrolling"
        expect(page.locator(".join-code")).to_be_in_viewport()
        page.screenshot(path=ARTIFACTS / f"projector-fits-{name}.png")

    in_thread(lambda: projector_session.close_activity())
    look("lobby")
    assert page.evaluate(ZOOM) == ""

    options = [f"Option {number} in a few words" for number in range(1, 12)]
    in_thread(
        lambda: open_with_answers(
            projector_session,
            Activity.Kind.SINGLE_CHOICE,
            "How was your week?",
            [number % 11 for number in range(12)],
            options=options,
        )
    )
    look("eleven-options")
    for option in options:
        expect(page.locator(".bar", has_text=option)).to_be_in_viewport()

    # The library's own eleven options, a line of words each: on this small projector they fit
    # at six tenths of full size or more (before, the labels wrapped to four lines each in a
    # narrow column and did not fit even at half size).
    exercise, _problems = read_exercise(LIBRARY_DIR / "what-gets-in-the-way.toml")
    barriers = next(step for step in exercise["steps"] if step["kind"] == "multiple_choice")
    in_thread(
        lambda: open_with_answers(
            projector_session,
            Activity.Kind.SINGLE_CHOICE,
            barriers["prompt"],
            [number % 11 for number in range(12)],
            options=barriers["options"],
            body=barriers["body"],
        )
    )
    look("eleven-long-options")
    for option in barriers["options"]:
        expect(page.locator(".bar", has_text=option)).to_be_in_viewport()
    assert page.evaluate(STAGE_ZOOM) >= 0.6

    in_thread(
        lambda: open_with_answers(
            projector_session,
            Activity.Kind.SCALE,
            "How rested do you feel?",
            [number % 10 + 1 for number in range(12)],
            scale_min=1,
            scale_max=10,
        )
    )
    look("ten-points")
    expect(page.locator(".bar").last).to_be_in_viewport()

    in_thread(
        open_with_answers,
        projector_session,
        Activity.Kind.OPEN_TEXT,
        "One word for it?",
        [LONG_WORD, "Tea", "A walk", "My sister", "Group chats"],
    )
    in_thread(approve_all, projector_session)
    look("long-word")
    expect(page.get_by_text(LONG_WORD)).to_be_in_viewport()

    # A room's worth of sentences: side by side, they stay large enough to read from the back.
    sentences = [
        f"Answer {number}: knowing that someone will notice when I am not there this week"
        for number in range(1, 19)
    ]
    in_thread(
        open_with_answers,
        projector_session,
        Activity.Kind.OPEN_TEXT,
        "What helps you feel connected?",
        sentences,
    )
    in_thread(approve_all, projector_session)
    look("eighteen-sentences")
    for sentence in sentences:
        expect(page.get_by_text(sentence)).to_be_in_viewport()
    assert page.evaluate(STAGE_ZOOM) >= 0.6


def laptop_control_view(browser: Browser, session: Session, cookie: str, url: str) -> Page:
    """The session's control view on a 1366 x 768 laptop, loaded."""
    page = new_page(
        browser, theme="light", viewport={"width": 1366, "height": 768}, cookie=cookie, url=url
    )
    page.goto(f"{url}/sessions/{session.pk}/control/")
    page.wait_for_load_state()
    return page


def test_a_push_keeps_the_facilitators_place_in_the_control_view(
    projector_session, facilitator_cookie, browser, live_server_url
):
    """Each answer and each action pushes the control view's live region anew. The script the
    facilitator folded away stays folded, the button they are on keeps the keyboard focus (also
    when "Lock answers" becomes "Unlock answers"), and a long word in an answer does not widen
    the page past the screen and push the moderation buttons out of sight."""
    in_thread(
        lambda: open_with_answers(
            projector_session,
            Activity.Kind.OPEN_TEXT,
            "One word for it?",
            [LONG_WORD, "Tea", "A walk", "My sister", "Group chats"],
            script="Read the answers out slowly.",
        )
    )
    page = laptop_control_view(browser, projector_session, facilitator_cookie, live_server_url)
    assert page.evaluate(NO_SIDEWAYS_SCROLL, 1366), "a long word widened the control view"
    page.screenshot(path=ARTIFACTS / "control-long-word.png", full_page=True)

    page.locator(".script summary").click()
    expect(page.locator(".script")).not_to_have_attribute("open", "")
    page.get_by_role("button", name="Lock answers").focus()
    page.keyboard.press("Enter")

    expect(page.get_by_role("button", name="Unlock answers")).to_be_focused()
    expect(page.locator(".script")).not_to_have_attribute("open", "")
    page.keyboard.press("Enter")
    expect(page.get_by_role("button", name="Lock answers")).to_be_focused()
    expect(page.locator(".script")).to_contain_text("Read the answers out slowly.")
    expect(page.locator(".script")).not_to_have_attribute("open", "")


def test_a_questions_results_show_beside_its_script_on_a_laptop(
    projector_session, facilitator_cookie, browser, live_server_url
):
    """The check-in's first question, from the library, with its two-minute script: on a
    1366 x 768 laptop the results come in beside the script, not under it off the screen."""

    def check_in() -> None:
        exercise, _problems = read_exercise(LIBRARY_DIR / "check-in.toml")
        scale = projector_session.add_steps(exercise["steps"][:1], source="check-in")[0]
        answer_all(projector_session, scale, [3, 5, 6, 6, 7, 4, 8, 5])

    in_thread(check_in)
    page = laptop_control_view(browser, projector_session, facilitator_cookie, live_server_url)
    page.screenshot(path=ARTIFACTS / "control-script-and-results-1366.png")

    expect(page.locator(".script")).to_contain_text("Welcome people")
    expect(page.locator(".script")).to_be_in_viewport()
    for point in range(1, 8):
        expect(page.locator(".results .bar").nth(point - 1)).to_be_in_viewport()
    # Scrolled down its own box, the script keeps its place through the pushes that follow.
    script = page.locator(".script")
    script.evaluate("(box) => { box.scrollTop = 120; }")
    page.get_by_role("button", name="Lock answers").click()
    expect(page.get_by_role("button", name="Unlock answers")).to_be_visible()
    assert page.locator(".script").evaluate("(box) => box.scrollTop") == 120


def test_a_long_agenda_keeps_the_open_step_and_the_notes_in_sight(
    projector_session, facilitator_cookie, browser, live_server_url
):
    """A 23-step session on a 1366 x 768 laptop: the agenda scrolls in its own box, with the
    step open now in it, and the private notes under it stay on the screen."""

    def long_agenda() -> None:
        steps = [
            add_activity(projector_session, Activity.Kind.INSTRUCTION, f"Step number {number}")
            for number in range(1, 21)
        ]
        projector_session.open_activity(steps[14])

    in_thread(long_agenda)
    page = laptop_control_view(browser, projector_session, facilitator_cookie, live_server_url)
    current = page.locator(".control-agenda li.is-current")
    expect(current).to_contain_text("Step number 15")
    expect(current).to_be_in_viewport()
    expect(page.get_by_label("Private notes")).to_be_in_viewport(ratio=1)
    page.screenshot(path=ARTIFACTS / "control-long-agenda.png")

    for number in range(16, 21):  # a clicker's "next", to the last step
        page.keyboard.press("PageDown")
        expect(current).to_contain_text(f"Step number {number}")
        expect(current).to_be_in_viewport()
    expect(page.get_by_label("Private notes")).to_be_in_viewport(ratio=1)

    # Scrolled up to look ahead: a push of the counts leaves the agenda where it is.
    page.locator(".control-agenda .agenda-list").evaluate("(list) => { list.scrollTop = 0; }")
    phone = browser.new_context(**PHONES_CONTEXT).new_page()
    phone.goto(f"{live_server_url}/join/{projector_session.join_code}/")
    phone.get_by_role("button", name="I understand, join").click()
    expect(page.locator('[data-count="present"]')).to_have_text("1")
    assert page.locator(".control-agenda .agenda-list").evaluate("(list) => list.scrollTop") == 0


def approve_all(session: Session) -> None:
    session.refresh_from_db()
    for answer in session.current_activity.answers.all():
        session.moderate(answer.pk, Answer.Moderation.APPROVED)


def test_the_projector_switches_theme_with_d_and_keeps_it(
    projector_session, facilitator_cookie, browser, live_server_url
):
    page = new_page(
        browser, theme="light", viewport=PROJECTOR, cookie=facilitator_cookie, url=live_server_url
    )
    page.goto(f"{live_server_url}/sessions/{projector_session.pk}/projector/")
    light = page.evaluate("getComputedStyle(document.body).backgroundColor")

    page.keyboard.press("d")

    dark = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert dark != light
    page.reload()
    assert page.evaluate("getComputedStyle(document.body).backgroundColor") == dark


# Phones --------------------------------------------------------------------------------------

# A mobile browser widens its layout viewport to fit what overflows, so the page is measured
# against the screen's width rather than the window's.
NO_SIDEWAYS_SCROLL = "(width) => document.documentElement.scrollWidth <= width"
SMALL_TARGETS = """() => {
  const targets = 'main button, main a, main input:not([type=hidden]), main select, main textarea,'
    + ' main summary, .choice, .scale-point';
  return Array.from(document.querySelectorAll(targets))
    // A radio or checkbox inside its labelled box: the box is the target.
    .filter((e) => e.checkVisibility() && (e.matches('.choice, .scale-point')
                                           || !e.closest('.choice, .scale-point, p, li')))
    .map((e) => [e, e.getBoundingClientRect()])
    .filter(([e, box]) => box.height < 44 || box.width < 44)
    .map(([e, box]) => `${e.tagName} "${e.textContent.trim().slice(0, 30)}" `
                       + `${Math.round(box.width)}x${Math.round(box.height)}`);
}"""


@pytest.fixture
def phone_session(transactional_db, facilitator) -> Session:
    session = Session.objects.create(facilitator=facilitator, title="Evening circle")
    session.start()
    add_activity(
        session,
        Activity.Kind.SCALE,
        "How connected do you feel?",
        scale_max=10,
        scale_min_label="Not connected at all",
        scale_max_label="Very connected",
    )
    return session


def phone_views(
    page: Page, base: str, session: Session, problems: dict, size: str, width: int
) -> None:
    page.goto(f"{base}/join/")
    check_page(page, f"phone-join-{size}", problems)
    page.get_by_label("Session code").fill("ZZZZZZ")
    page.get_by_role("button", name="Join").click()
    expect(page.locator(".field-error")).to_be_visible()
    check_page(page, f"phone-join-error-{size}", problems)
    page.get_by_label("Session code").fill(session.join_code)
    page.get_by_role("button", name="Join").click()
    check_page(page, f"phone-consent-{size}", problems)
    page.get_by_role("button", name="I understand, join").click()
    expect(page.get_by_role("heading", name="Waiting for the next activity")).to_be_visible()
    check_page(page, f"phone-waiting-{size}", problems)
    kinds = [
        Activity.Kind.SCALE,
        Activity.Kind.SINGLE_CHOICE,
        Activity.Kind.MULTIPLE_CHOICE,
        Activity.Kind.EMOTION,
        Activity.Kind.OPEN_TEXT,
        Activity.Kind.WORD_CLOUD,
        Activity.Kind.BREATHING,
        Activity.Kind.RESOURCES,
    ]
    for kind in kinds:
        open_in_thread(session, kind)
        page.reload()
        expect(page.locator(".stage, .phone-stage").first).to_be_visible()
        assert page.evaluate(NO_SIDEWAYS_SCROLL, width), f"sideways scroll ({kind}, {size})"
        small = page.evaluate(SMALL_TARGETS)
        assert not small, f"tap targets under 44px ({kind}, {size}): {small}"
        check_page(page, f"phone-{kind}-{size}", problems)
    open_in_thread(session, Activity.Kind.SCALE)
    page.reload()
    page.get_by_role("button", name="Pass").click()
    expect(page.get_by_text("You passed")).to_be_visible()
    check_page(page, f"phone-passed-{size}", problems)


@pytest.mark.parametrize("size", PHONES)
@pytest.mark.parametrize("theme", THEMES)
def test_every_phone_view_passes_axe_and_fits(phone_session, browser, live_server_url, size, theme):
    problems: dict[str, list] = {}
    context = browser.new_context(
        viewport=PHONES[size], color_scheme=theme, is_mobile=True, has_touch=True, bypass_csp=True
    )
    phone_views(
        context.new_page(),
        live_server_url,
        phone_session,
        problems,
        f"{size}-{theme}",
        PHONES[size]["width"],
    )
    assert not problems, report(problems)


# How many lines each option's words take.
OPTION_LINES = """() => Array.from(document.querySelectorAll('.choice span')).map((span) => {
  const range = document.createRange();
  range.selectNodeContents(span);
  return new Set(Array.from(range.getClientRects()).map((rect) => Math.round(rect.top))).size;
})"""


@pytest.mark.parametrize("percent", [150, 200])
def test_a_phone_with_large_text_still_fits_320_px(
    phone_session, browser, live_server_url, percent
):
    context = browser.new_context(viewport=PHONES["small-phone"], is_mobile=True, bypass_csp=True)
    page = context.new_page()
    page.goto(f"{live_server_url}/join/{phone_session.join_code}/")
    page.get_by_role("button", name="I understand, join").click()
    expect(page.locator(".you")).to_be_visible()
    for kind in (Activity.Kind.SCALE, Activity.Kind.SINGLE_CHOICE, Activity.Kind.OPEN_TEXT):
        open_in_thread(phone_session, kind)
        page.reload()
        # As a phone's "large text" setting does: every rem and em grows.
        page.add_style_tag(content=f"html {{ font-size: {percent}% !important; }}")
        assert page.evaluate(NO_SIDEWAYS_SCROLL, 320), f"sideways scroll, {percent}% ({kind})"
        page.screenshot(path=ARTIFACTS / f"phone-{percent}-percent-{kind}.png", full_page=True)
        if kind == Activity.Kind.SINGLE_CHOICE:
            # "Yes", "No", "Not sure": a word is never cut in two for want of room.
            assert page.evaluate(OPTION_LINES) == [1, 1, 1]


SCALE_ROWS = """() => {
  const rows = {};
  for (const point of document.querySelectorAll('.scale-point')) {
    const top = Math.round(point.getBoundingClientRect().top);
    rows[top] = (rows[top] || 0) + 1;
  }
  return Object.keys(rows).sort((a, b) => a - b).map((top) => rows[top]);
}"""


@pytest.mark.parametrize(
    ("size", "lowest", "rows"),
    [
        ("phone", 1, [5, 5]),
        ("phone", 0, [6, 5]),
        ("small-phone", 1, [5, 5]),
        ("small-phone", 0, [4, 4, 3]),  # six points of 44 pixels do not fit across
    ],
)
def test_a_long_scale_takes_even_rows_on_a_phone(
    phone_session, browser, live_server_url, size, lowest, rows
):
    """Not 6 + 4 on a phone, which reads as a scale cut short, nor 5 + 5 + a lone 10."""
    context = browser.new_context(viewport=PHONES[size], is_mobile=True, bypass_csp=True)
    page = context.new_page()
    page.goto(f"{live_server_url}/join/{phone_session.join_code}/")
    page.get_by_role("button", name="I understand, join").click()
    expect(page.locator(".you")).to_be_visible()  # joined: a reload now shows the phone page
    in_thread(lambda: phone_session.activities.update(scale_min=lowest))
    open_in_thread(phone_session, Activity.Kind.SCALE)
    page.reload()
    expect(page.locator(".scale-point")).to_have_count(11 - lowest)
    assert page.evaluate(SCALE_ROWS) == rows
    assert not page.evaluate(SMALL_TARGETS)
    assert page.evaluate(NO_SIDEWAYS_SCROLL, PHONES[size]["width"])
    page.screenshot(path=ARTIFACTS / f"phone-scale-from-{lowest}-{size}.png")


# Keyboard only -------------------------------------------------------------------------------


def tab_to(page: Page, pattern: str, *, limit: int = 60) -> None:
    """Press Tab until the focused element's accessible text matches `pattern`."""
    wanted = re.compile(pattern)
    for _ in range(limit):
        page.keyboard.press("Tab")
        focused = page.evaluate(
            """() => { const e = document.activeElement;
                return (e.getAttribute('aria-label') || e.labels?.[0]?.textContent
                        || e.textContent || '').trim(); }"""
        )
        if wanted.search(focused):
            return
    raise AssertionError(f"Tab never reached {pattern!r}")


def add_timed_step(title: str) -> None:
    session = Session.objects.get(title=title)
    add_activity(session, Activity.Kind.INSTRUCTION, "Sit quietly", timer_seconds=120)


def test_a_facilitator_runs_a_session_with_the_keyboard_only(browser, live_server_url):
    laptop = browser.new_context(viewport={"width": 1280, "height": 800})
    control = laptop.new_page()
    control.goto(f"{live_server_url}/accounts/signup/")
    tab_to(control, "^Username")
    control.keyboard.type("kim")
    tab_to(control, "^Password$")
    control.keyboard.type("a-long-pass-phrase-for-kim")
    tab_to(control, "^Password confirmation")
    control.keyboard.type("a-long-pass-phrase-for-kim")
    control.keyboard.press("Enter")
    expect(control.get_by_role("heading", name="Your sessions")).to_be_visible()
    tab_to(control, "^Title")
    control.keyboard.type("Keyboard circle")
    control.keyboard.press("Enter")
    expect(control.get_by_label("Question or prompt")).to_be_visible()
    tab_to(control, "^Question or prompt")
    control.keyboard.type("How was your week?")
    tab_to(control, "^Options, one per line")
    control.keyboard.type("Good\nMixed\nHard")
    tab_to(control, "^Add to agenda$")
    control.keyboard.press("Enter")
    expect(control.locator("#agenda-editor")).to_contain_text("How was your week?")
    # A timed step after it (set up directly: typing one in is the same form again).
    in_thread(add_timed_step, "Keyboard circle")
    control.reload()
    tab_to(control, "^Start session$")
    control.keyboard.press("Enter")
    expect(control.get_by_text("Live · control view")).to_be_visible()
    # The shortcuts are attune.js's, a deferred script: a key pressed before it ran does nothing.
    control.wait_for_load_state()

    # The shortcut list, then the session by keys alone.
    control.keyboard.press("?")
    expect(control.get_by_role("dialog", name="Keyboard shortcuts")).to_be_visible()
    control.screenshot(path=ARTIFACTS / "control-shortcuts.png")
    control.keyboard.press("Escape")
    expect(control.get_by_role("dialog")).to_be_hidden()
    control.keyboard.press("ArrowRight")
    expect(control.locator(".current h2")).to_have_text("How was your week?")
    control.keyboard.press("r")
    expect(control.get_by_role("button", name="Show results")).to_be_visible()
    control.keyboard.press("r")
    expect(control.get_by_role("button", name="Hide results")).to_be_visible()
    control.keyboard.press("PageDown")  # a clicker's "next"
    expect(control.locator(".current h2")).to_have_text("Sit quietly")
    control.keyboard.press("t")
    expect(control.get_by_role("button", name="Resume timer")).to_be_visible()
    control.keyboard.press("t")
    expect(control.get_by_role("button", name="Pause timer")).to_be_visible()
    control.keyboard.press("PageDown")  # on the last activity
    expect(control.get_by_role("alert")).to_contain_text("This is the last activity.")
    with laptop.expect_page() as opened:
        control.keyboard.press("o")
    expect(opened.value.locator(".join-code")).to_be_visible()

    # Typing in the notes is typing, not shortcuts.
    tab_to(control, "^Private notes")
    control.keyboard.type("tp")
    expect(control.get_by_label("Private notes")).to_have_value("tp")
    expect(control.get_by_role("button", name="Pause timer")).to_be_visible()
    expect(control.locator(".current h2")).to_have_text("Sit quietly")
    control.screenshot(path=ARTIFACTS / "control-keyboard.png")
    # But a clicker's page keys still move the session from there.
    control.keyboard.press("PageUp")
    expect(control.locator(".current h2")).to_have_text("How was your week?")
    expect(control.get_by_label("Private notes")).to_have_value("tp")


def test_every_page_names_its_language_and_has_a_logo_and_favicon(browser, live_server_url):
    page = browser.new_page()
    page.goto(f"{live_server_url}/join/")
    assert page.evaluate("document.documentElement.lang") == "en"
    assert page.locator("link[rel=icon]").get_attribute("href").endswith(".svg")
    logo = Path(ROOT / "static" / "attune" / "logo.svg").read_text()
    assert "<svg" in logo
    expect(page.locator("img.logo, .brand img")).to_be_visible()


def box_of(locator):
    """Where the element is on screen. None while a push swaps it for its new copy: then the
    new copy's, once it is in."""
    for _ in range(40):
        box = locator.bounding_box()
        if box is not None:
            return box
        locator.page.wait_for_timeout(50)
    raise AssertionError(f"{locator} is not on screen")


def test_screen_readers_hear_each_new_activity_and_results_and_nothing_jumps(
    phone_session, facilitator_cookie, browser, live_server_url
):
    control = new_page(
        browser, theme="light", viewport=PROJECTOR, cookie=facilitator_cookie, url=live_server_url
    )
    control.goto(f"{live_server_url}/sessions/{phone_session.pk}/control/")
    projector = control.context.new_page()
    projector.set_viewport_size(PROJECTOR)
    projector.goto(f"{live_server_url}/sessions/{phone_session.pk}/projector/")
    phones = [browser.new_context(**PHONES_CONTEXT).new_page() for _ in range(3)]
    for phone in phones:
        phone.goto(f"{live_server_url}/join/{phone_session.join_code}/")
        phone.get_by_role("button", name="I understand, join").click()
        expect(phone.locator("#announcer")).to_have_text("")

    control.keyboard.press("ArrowRight")

    prompt = projector.locator(".projector-prompt")
    expect(prompt).to_have_text("How connected do you feel?")
    where = box_of(prompt)
    for count, phone in enumerate(phones, start=1):
        expect(phone.locator("#announcer")).to_have_text("How connected do you feel?")
        phone.get_by_label("7").check()
        phone.get_by_role("button", name="Send answer").click()
        expect(projector.locator(".projector-answered")).to_contain_text(str(count))
        # Counts and results change below the question; the question never moves.
        assert box_of(prompt) == where
    expect(control.locator("#announcer")).to_have_text("The results are showing.")
    expect(projector.locator("#announcer")).to_have_text("The results are showing.")


def _colours(css: str, selector: str) -> dict[str, str]:
    """The colour variables a rule of attune.css sets (a border's colour for --focus)."""
    block = css.split(selector, 1)[1].split("}", 1)[0]
    found = re.findall(r"--([\w-]+):\s*[^;]*?(#[0-9a-fA-F]{6})\b[^;]*;", block)
    return dict(found)


def _contrast(first: str, second: str) -> float:
    def luminance(colour: str) -> float:
        channels = [int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
        linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]

    high, low = sorted([luminance(first), luminance(second)], reverse=True)
    return (high + 0.05) / (low + 0.05)


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_the_edges_of_fields_and_buttons_and_the_focus_ring_stand_out(theme):
    """WCAG 1.4.11: what shows where a control is, and which one has the keyboard, at 3:1 at
    least against every background it sits on (axe-core checks text, not these)."""
    css = (ROOT / "static" / "attune" / "attune.css").read_text()
    colours = _colours(css, ":root {")
    if theme == "dark":
        colours |= _colours(css, ":root[data-theme=dark] {")
    for edge in ("field-line", "focus"):
        for background in ("paper", "card", "field", "soft-paper"):
            ratio = _contrast(colours[edge], colours[background])
            assert ratio >= 3, f"--{edge} on --{background}, {theme}: {ratio:.2f}:1"
