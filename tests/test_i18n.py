"""Translations: every page a participant meets has no English left in Spanish, the projector and
the control view speak the session's language, each phone its own, and the catalogue is whole."""

from __future__ import annotations

import gettext
import re
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path

import pytest
from channels.db import database_sync_to_async
from django.conf import settings
from django.test import Client
from django.utils import translation

from sessions import live, throttle
from sessions.exercises.loader import load_library
from sessions.models import (
    Activity,
    Group,
    Member,
    PairAssignment,
    Participant,
    Plan,
    Session,
    participant_cookie,
)
from tests.conftest import ARTIFACTS
from tests.test_consumers import control_view, open_socket, projector_view, receive_until, send

Kind = Activity.Kind
LOCALE = Path(settings.BASE_DIR) / "locale"

# The facilitator's words, the pseudonyms and the code are data, not Attune's own text: the test
# data is made of words that cannot be mistaken for any of Attune's.
TITLE = "Kappa Zeta"
PROMPT = "Zorblat?"
OPTIONS = ["Quimby", "Vexa", "Drom"]
GROUP_NAME = "Omicron"
BODY = "Blorp glim."


# Reading a page as a person does ---------------------------------------------------------------


class VisibleText(HTMLParser):
    """The text nodes of a page, and the attributes a person reads or hears."""

    # With the words attune.js shows or announces: the breathing pacer's, the connection
    # status's, a changed answer not sent yet, and the screen readers' "results are showing".
    READ_ATTRIBUTES = {
        "placeholder",
        "aria-label",
        "title",
        "alt",
        "data-words-in",
        "data-words-out",
        "data-reconnecting",
        "data-disconnected",
        "data-unsent",
        "data-results-shown",
    }

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.texts: list[str] = []
        self.in_script = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in {"script", "style"}:
            self.in_script += 1
        self.texts += [value for name, value in attrs if name in self.READ_ATTRIBUTES and value]

    def handle_endtag(self, tag: str) -> None:
        if tag in {"script", "style"}:
            self.in_script -= 1

    def handle_data(self, data: str) -> None:
        if not self.in_script:
            self.texts.append(data)


def visible_texts(html: str) -> set[str]:
    parser = VisibleText()
    parser.feed(html)
    return {" ".join(text.split()) for text in parser.texts} - {""}


def own_words(texts: set[str], data: list[str]) -> set[str]:
    """The texts that hold Attune's own words, not only data, numbers and the brand."""
    own = set()
    for text in texts:
        rest = text
        for item in sorted([*filter(None, data), "Attune"], key=len, reverse=True):
            rest = rest.replace(item, " ")
        if re.search(r"[^\W\d_]{2,}", rest):
            own.add(text)
    return own


def assert_translated(english: str, spanish: str, data: list[str]) -> None:
    """No text of Attune's own from the English page appears on the Spanish one."""
    english_words = own_words(visible_texts(english), data)
    assert english_words, "the English page shows nothing of Attune's own"
    untranslated = english_words & visible_texts(spanish)
    assert not untranslated, f"untranslated in Spanish: {sorted(untranslated)}"


def in_both(render: Callable[[str], str]) -> tuple[str, str]:
    return render("en"), render("es")


def data_of(session: Session) -> list[str]:
    pseudonyms = list(session.participants.values_list("pseudonym", flat=True))
    return [TITLE, PROMPT, *OPTIONS, GROUP_NAME, BODY, session.join_code, *pseudonyms]


# The participant's pages over HTTP -------------------------------------------------------------


@pytest.fixture
def room(facilitator) -> Session:
    session = Session.objects.create(facilitator=facilitator, title=TITLE)
    session.start()
    return session


@pytest.fixture
def phone(room) -> tuple[Participant, str]:
    return room.add_participant()


def get(path: str, language: str, *, token: str = "", method: str = "get", **data) -> str:
    client = Client(HTTP_ACCEPT_LANGUAGE=language)
    if token:  # a phone page's path ends with its session's code
        client.cookies[participant_cookie(path.rstrip("/").rsplit("/", 1)[-1])] = token
    response = getattr(client, method)(path, data)
    assert response.status_code in {200, 400, 404, 429}, response.status_code
    html = response.content.decode()
    assert f'<html lang="{language}">' in html
    return html


def open_new(session: Session, kind: str, **fields) -> Activity:
    if kind in Activity.CHOICE_KINDS or kind == Kind.QUESTION_CARDS:
        fields.setdefault("options", OPTIONS)
    if kind in Activity.STEP_KINDS:
        fields.setdefault("body", BODY)
    activity = Activity.objects.create(session=session, kind=kind, prompt=PROMPT, **fields)
    session.open_activity(activity)
    return activity


def answered(session: Session, participant: Participant) -> None:
    activity = open_new(session, Kind.SINGLE_CHOICE)
    participant.answer(activity.pk, {"choice": "1"})


def passed(session: Session, participant: Participant) -> None:
    activity = open_new(session, Kind.SCALE)
    participant.pass_on(activity.pk)


def paired(session: Session, participant: Participant, *, partner: bool, placed: bool) -> None:
    activity = open_new(session, Kind.PAIR_ROUND, roles=OPTIONS[:2], timer_seconds=120)
    activity.current_round = 1
    activity.save(update_fields=["current_round"])
    members = [participant] if placed else []
    if partner:
        members.append(session.add_participant()[0])
    PairAssignment.objects.bulk_create(
        PairAssignment(activity=activity, participant=member, group=1, position=position)
        for position, member in enumerate(members)
    )


def cards(session: Session, participant: Participant, *, drawn: bool) -> None:
    activity = open_new(session, Kind.QUESTION_CARDS)
    if drawn:
        activity.draw_card()


def paused_timer(session: Session, participant: Participant) -> None:
    open_new(session, Kind.INSTRUCTION, timer_seconds=90)
    session.pause_timer()


def approved_automatically(session: Session, participant: Participant) -> None:
    session.auto_approve = True
    session.save(update_fields=["auto_approve"])
    open_new(session, Kind.OPEN_TEXT)


def kept_nickname(session: Session, participant: Participant, *, with_answers: bool) -> None:
    session.group = Group.objects.create(
        facilitator=session.facilitator, name=GROUP_NAME, keep_pseudonyms=True
    )
    session.save(update_fields=["group"])
    participant.session = session  # the one with the group
    Member.enrol(participant)
    if with_answers:
        activity = open_new(session, Kind.SCALE, measure="zorblat")
        participant.answer(activity.pk, {"value": "7"})
        session.close_activity()


PHONE_STATES: dict[str, Callable[[Session, Participant], None]] = {
    "waiting": lambda session, participant: None,
    "single choice": lambda session, participant: open_new(session, Kind.SINGLE_CHOICE),
    "multiple choice": lambda session, participant: open_new(session, Kind.MULTIPLE_CHOICE),
    "scale": lambda session, participant: open_new(session, Kind.SCALE),
    "open text": lambda session, participant: open_new(session, Kind.OPEN_TEXT),
    "open text, approved automatically": approved_automatically,
    "word cloud": lambda session, participant: open_new(session, Kind.WORD_CLOUD),
    "emotion": lambda session, participant: open_new(session, Kind.EMOTION),
    "answered": answered,
    "passed": passed,
    "locked": lambda session, participant: (
        open_new(session, Kind.SINGLE_CHOICE),
        session.set_answers_locked(True),
    ),
    "instruction": lambda session, participant: open_new(
        session, Kind.INSTRUCTION, timer_seconds=90
    ),
    "instruction, countdown paused": paused_timer,
    "breathing pacer": lambda session, participant: open_new(
        session, Kind.BREATHING, timer_seconds=60
    ),
    "pair round, before the draw": lambda session, participant: open_new(
        session, Kind.PAIR_ROUND, roles=OPTIONS[:2]
    ),
    "pair round, with a partner": lambda session, participant: paired(
        session, participant, partner=True, placed=True
    ),
    "pair round, waiting for a partner": lambda session, participant: paired(
        session, participant, partner=False, placed=True
    ),
    "pair round, not placed yet": lambda session, participant: paired(
        session, participant, partner=True, placed=False
    ),
    "question cards, none drawn": lambda session, participant: cards(
        session, participant, drawn=False
    ),
    "question cards, one drawn": lambda session, participant: cards(
        session, participant, drawn=True
    ),
    "resources": lambda session, participant: open_new(session, Kind.RESOURCES),
    "kept nickname, no check-ins yet": lambda session, participant: kept_nickname(
        session, participant, with_answers=False
    ),
    "kept nickname, with check-ins": lambda session, participant: kept_nickname(
        session, participant, with_answers=True
    ),
    "session ended": lambda session, participant: session.end(),
}


@pytest.mark.parametrize("state", PHONE_STATES)
def test_the_phone_page_has_no_english_left_in_spanish(room, phone, state):
    participant, token = phone
    PHONE_STATES[state](room, participant)
    path = f"/join/{room.join_code}/"

    english, spanish = in_both(lambda language: get(path, language, token=token))

    assert 'id="phone-stage"' in spanish
    assert_translated(english, spanish, data_of(room))


@pytest.mark.parametrize("state", PHONE_STATES)
def test_the_phone_stage_pushed_over_the_socket_has_no_english_left_in_spanish(room, phone, state):
    participant, _token = phone
    PHONE_STATES[state](room, participant)
    participant.refresh_from_db()

    def own_stage(language: str) -> str:
        with translation.override(language):
            return live.render_phone_stage(participant)

    assert_translated(*in_both(own_stage), data_of(room))
    shared = live._shared_phone_stage(live.read_for_render(room.pk)).get("html")
    if shared:  # a pair round has none: each phone renders its own group
        assert_translated(shared["en"], shared["es"], data_of(room))


def test_the_join_page_has_no_english_left_in_spanish(db):
    english, spanish = in_both(lambda language: get("/join/", language))
    assert_translated(english, spanish, [])


@pytest.mark.parametrize("code", ["", "ZZZZZZ"])
def test_the_join_page_with_an_error_has_no_english_left_in_spanish(db, code):
    english, spanish = in_both(lambda language: get("/join/", language, method="post", code=code))
    assert 'class="field-error"' in spanish
    assert_translated(english, spanish, [code])


@pytest.mark.parametrize("in_a_group", [False, True])
def test_the_consent_screen_has_no_english_left_in_spanish(room, in_a_group):
    if in_a_group:
        room.group = Group.objects.create(
            facilitator=room.facilitator, name=GROUP_NAME, keep_pseudonyms=True
        )
        room.save(update_fields=["group"])
    path = f"/join/{room.join_code}/"

    english, spanish = in_both(lambda language: get(path, language))

    assert "keep_nickname" in spanish if in_a_group else "keep_nickname" not in spanish
    assert_translated(english, spanish, data_of(room))


REFUSALS: dict[str, Callable[[Session], str]] = {
    "ended": lambda session: (session.end(), session.join_code)[1],
    "not taking new participants": lambda session: (
        session.set_joins_locked(True),
        session.join_code,
    )[1],
    "unknown code": lambda session: "ZZZZZZ",
    "too many unknown codes": lambda session: (
        [throttle.UNKNOWN_JOIN_CODES.hit("127.0.0.1") for _ in range(10)],
        "ZZZZZZ",
    )[1],
}


@pytest.mark.parametrize("refusal", REFUSALS)
@pytest.mark.parametrize("method", ["get", "post"])
def test_a_refused_join_has_no_english_left_in_spanish(room, refusal, method):
    code = REFUSALS[refusal](room)
    path = f"/join/{code}/" if method == "get" else "/join/"

    english, spanish = in_both(lambda language: get(path, language, method=method, code=code))

    assert 'class="notice error"' in spanish or 'class="field-error"' in spanish
    assert_translated(english, spanish, [*data_of(room), code])


@pytest.mark.parametrize("asked", ["de-DE,de;q=0.9", "fr", "*", ""])
def test_a_browser_asking_for_another_language_gets_english(db, asked):
    response = Client(HTTP_ACCEPT_LANGUAGE=asked).get("/join/")
    assert response["Content-Language"] == "en"
    assert '<html lang="en">' in response.content.decode()
    assert "Join a session" in response.content.decode()


def test_a_regional_variant_of_spanish_gets_spanish(db):
    response = Client(HTTP_ACCEPT_LANGUAGE="es-MX,es;q=0.9,en;q=0.5").get("/join/")
    assert response["Content-Language"] == "es"
    assert "Unirse a una sesión" in response.content.decode()


# The projector and the control view: the session's language -----------------------------------


def signed_in(user, language: str) -> Client:
    client = Client(HTTP_ACCEPT_LANGUAGE=language)
    client.force_login(user)
    return client


@pytest.mark.parametrize(("session_language", "browser"), [("es", "en"), ("en", "es")])
def test_the_projector_and_control_view_speak_the_sessions_language(
    room, facilitator, session_language, browser
):
    Session.objects.filter(pk=room.pk).update(language=session_language)
    client = signed_in(facilitator, browser)

    projector = client.get(f"/sessions/{room.pk}/projector/")
    control = client.get(f"/sessions/{room.pk}/control/")

    spanish = session_language == "es"
    for response in (projector, control):
        html = response.content.decode()
        assert f'<html lang="{session_language}">' in html
        assert response["Content-Language"] == session_language
        assert ("Reconectando…" in html) is spanish
        assert ("Reconnecting…" in html) is not spanish
    assert ("Únete desde tu móvil" in projector.content.decode()) is spanish
    assert ("Sala de espera" in control.content.decode()) is spanish
    # The rest of the facilitator's pages follow the browser.
    dashboard = client.get("/dashboard/").content.decode()
    assert ("Tus sesiones" in dashboard) is (browser == "es")


def test_the_pushes_to_the_projector_and_control_view_speak_the_sessions_language(room):
    Session.objects.filter(pk=room.pk).update(language="es")
    room.refresh_from_db()
    open_new(room, Kind.SINGLE_CHOICE)

    with translation.override("en"):  # whatever is active where the push is rendered
        (_, projector), (_, control) = live._counts_and_results(room)

    assert "Conectados ahora" in control["html"]
    assert "Connected now" not in control["html"]
    assert "Los resultados aparecen cuando hayan respondido 3 personas" in projector["html"]


@pytest.mark.django_db(transaction=True)
async def test_the_sockets_of_the_projector_and_control_view_speak_the_sessions_language(
    live_session, facilitator
):
    live_session.language = "es"
    await database_sync_to_async(live_session.save)(update_fields=["language"])

    control, first_control = await control_view(live_session, facilitator)
    projector, first_projector = await projector_view(live_session, facilitator)

    assert "Sala de espera" in first_control
    assert "Únete desde tu móvil" in first_projector
    await send(control, action="previous", **{"from": ""})
    assert "La agenda está vacía" in await receive_until(control, 'id="notice"')
    for socket in (control, projector):
        await socket.disconnect()


def test_a_new_session_starts_in_the_facilitators_language_and_can_change(db, facilitator):
    client = signed_in(facilitator, "es")
    assert 'value="es" selected' in client.get("/dashboard/").content.decode()

    client.post("/sessions/new/", {"title": TITLE, "language": "en"})
    session = Session.objects.get(title=TITLE)
    assert session.language == "en"

    client.post(
        f"/sessions/{session.pk}/", {"title": TITLE, "language": "es", **settings_of(session)}
    )
    session.refresh_from_db()
    assert session.language == "es"


def test_a_draft_made_from_a_plan_follows_its_new_language_but_where_it_was_edited(db, facilitator):
    load_library()
    client = signed_in(facilitator, "en")
    plan = Plan.objects.get(slug="drop-in")
    client.post(f"/plans/{plan.pk}/use/")
    session = Session.objects.get(facilitator=facilitator)
    assert session.language == "en"
    first, second, *rest = session.activities_in_order()
    second.prompt = "Which feelings are with you tonight?"  # the facilitator's own words
    second.save(update_fields=["prompt"])

    response = client.post(
        f"/sessions/{session.pk}/",
        {"title": session.title, "language": "es", **settings_of(session)},
        follow=True,
    )

    english = {step["prompt"] for step in plan.steps}
    first.refresh_from_db()
    assert first.prompt == plan.steps[0]["translations"]["es"]["prompt"]
    now = [activity.prompt for activity in session.activities_in_order()]
    assert [prompt for prompt in now if prompt in english] == []  # every other step translated
    second.refresh_from_db()
    assert second.prompt == "Which feelings are with you tonight?"
    html = response.content.decode()
    assert f"{len(rest) + 1} steps from the library are now in Español." in html
    assert "1 step you edited keeps its words: change it to Español yourself." in html

    client.post(
        f"/sessions/{session.pk}/",
        {"title": session.title, "language": "en", **settings_of(session)},
    )
    first.refresh_from_db()
    assert first.prompt == plan.steps[0]["prompt"]


def settings_of(session: Session) -> dict:
    return {
        "anonymity_threshold": session.anonymity_threshold,
        "retention_days": session.retention_days,
    }


def test_a_new_emotion_check_in_offers_the_feelings_in_the_sessions_language(room, facilitator):
    Session.objects.filter(pk=room.pk).update(language="es")
    client = signed_in(facilitator, "en")

    form = client.get(
        f"/sessions/{room.pk}/activities/new/", {"kind": "emotion"}, HTTP_HX_REQUEST="true"
    ).content.decode()

    assert "Esperanzado/a" in form
    assert "Hopeful" not in form
    assert "Options, one per line" in form  # the page itself in the facilitator's language


# A phone's own language over the socket --------------------------------------------------------


async def join_speaking(session: Session, language: bytes):
    _participant, token = await database_sync_to_async(session.add_participant)()
    cookie = (b"cookie", f"{participant_cookie(session.join_code)}={token}".encode())
    socket = await open_socket(
        f"/ws/join/{session.join_code}/", cookie, (b"accept-language", language)
    )
    return socket, await socket.receive_from()


@pytest.mark.django_db(transaction=True)
async def test_each_phone_gets_the_live_pushes_in_its_own_language(live_session, facilitator):
    await database_sync_to_async(Activity.objects.create)(
        session=live_session, kind=Kind.SINGLE_CHOICE, prompt=PROMPT, options=OPTIONS
    )
    english, first_english = await join_speaking(live_session, b"en-GB,en;q=0.8")
    spanish, first_spanish = await join_speaking(live_session, b"es-ES,es;q=0.9,en;q=0.5")
    assert "Waiting for the next activity" in first_english
    assert "Esperando la siguiente actividad" in first_spanish
    control, _ = await control_view(live_session, facilitator)

    # The stage shared by phones without an answer, rendered once per language.
    await send(control, action="next")
    assert "Pick one." in await receive_until(english, PROMPT)
    assert "Elige una." in await receive_until(spanish, PROMPT)

    # The phone's own answer, its acknowledgement and its refusals.
    activity_id = await database_sync_to_async(lambda: live_session.activities.get().pk)()
    await send(spanish, action="answer", activity=activity_id, choice="1", client_id="a" * 16)
    assert "Respuesta recibida" in await receive_until(spanish, "data-ack")
    await send(spanish, action="answer", activity=activity_id, client_id="b" * 16)
    assert "Elige una opción, o pasa." in await receive_until(spanish, 'id="notice"')
    await send(english, action="answer", activity=activity_id, client_id="c" * 16)
    assert "Pick an option, or pass." in await receive_until(english, 'id="notice"')

    # A phone with an answer renders its own stage on a push, in its own language.
    await send(control, action="lock_answers")
    assert "Esta pregunta ya no admite respuestas." in await receive_until(spanish, PROMPT)
    assert "Answers are closed for this question." in await receive_until(english, PROMPT)

    await send(spanish, action="withdraw")
    assert "Listo: se ha borrado 1 respuesta" in await receive_until(spanish, 'id="notice"')
    for socket in (english, spanish, control):
        await socket.disconnect()


# The catalogue ---------------------------------------------------------------------------------


def po_entries(path: Path) -> list[dict]:
    """The entries of a .po file: flags, msgctxt, msgid, msgid_plural and each msgstr."""
    entries: list[dict] = []
    entry: dict = {}
    field = ""
    for line in [*path.read_text().splitlines(), ""]:
        if not line.strip():
            if entry:
                entries.append(entry)
            entry, field = {}, ""
        elif line.startswith("#,"):
            entry.setdefault("flags", set()).update(flag.strip() for flag in line[2:].split(","))
        elif line.startswith("#"):
            continue
        elif line.startswith('"'):
            entry[field] += _po_string(line)
        else:
            field, _, value = line.partition(" ")
            entry[field] = _po_string(value)
    return entries


def _po_string(quoted: str) -> str:
    text = quoted.strip()
    assert text.startswith('"') and text.endswith('"'), quoted
    return (
        text[1:-1]
        .replace('\\"', '"')
        .replace("\\n", "\n")
        .replace("\\t", "\t")
        .replace("\\\\", "\\")
    )


@pytest.mark.parametrize("language", [code for code, _name in settings.LANGUAGES if code != "en"])
def test_the_catalogue_is_whole_and_compiled(language):
    po = LOCALE / language / "LC_MESSAGES" / "django.po"
    entries = po_entries(po)
    messages = [entry for entry in entries if entry.get("msgid")]

    assert len(messages) > 300
    assert not [entry["msgid"] for entry in entries if "fuzzy" in entry.get("flags", set())]
    untranslated = [
        entry["msgid"]
        for entry in messages
        if not all(value for field, value in entry.items() if field.startswith("msgstr"))
    ]
    assert not untranslated
    for entry in messages:
        placeholders = set(re.findall(r"%\(\w+\)[sd]", entry["msgid"]))
        for field, value in entry.items():
            if field.startswith("msgstr"):
                assert set(re.findall(r"%\(\w+\)[sd]", value)) == placeholders, entry["msgid"]

    # The compiled catalogue is in the repository and matches the .po (run compilemessages).
    with (po.with_suffix(".mo")).open("rb") as compiled:
        catalogue = gettext.GNUTranslations(compiled)
    for entry in messages:
        key = entry["msgid"]
        if "msgctxt" in entry:
            key = f"{entry['msgctxt']}\x04{key}"  # how a .mo file stores a context
        if "msgid_plural" in entry:
            for form in range(3):
                expected = entry.get(f"msgstr[{form}]")
                if expected is not None:
                    assert catalogue._catalog[(key, form)] == expected, entry["msgid"]
        else:
            assert catalogue._catalog[key] == entry["msgstr"], entry["msgid"]


# In a real browser -----------------------------------------------------------------------------


@pytest.fixture
def spanish_room(transactional_db, facilitator) -> Session:
    """Made before the browser starts: Playwright's event loop then owns the test's thread."""
    session = Session.objects.create(facilitator=facilitator, title=TITLE, language="es")
    Activity.objects.create(
        session=session, kind=Kind.SINGLE_CHOICE, prompt=PROMPT, options=OPTIONS
    )
    session.start()
    return session


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_in_chromium_each_phone_follows_its_browser_and_the_projector_the_session(
    spanish_room, facilitator_cookie, browser, live_server_url
):
    from playwright.sync_api import expect

    session = spanish_room
    laptop = browser.new_context(locale="en-GB")
    laptop.add_cookies([{"name": "sessionid", "value": facilitator_cookie, "url": live_server_url}])
    control = laptop.new_page()
    control.goto(f"{live_server_url}/sessions/{session.pk}/control/")
    expect(control.get_by_role("heading", name="Sala de espera")).to_be_visible()

    phones = {}
    for locale in ("es-ES", "en-GB"):
        phone = browser.new_context(locale=locale).new_page()
        phone.goto(f"{live_server_url}/join/{session.join_code}/")
        phone.get_by_role(
            "button", name="Entendido, entrar" if locale == "es-ES" else "I understand, join"
        ).click()
        phones[locale] = phone
    expect(
        phones["es-ES"].get_by_role("heading", name="Esperando la siguiente actividad")
    ).to_be_visible()
    expect(
        phones["en-GB"].get_by_role("heading", name="Waiting for the next activity")
    ).to_be_visible()

    # Pushed over each phone's socket, in the language its browser asked for at the handshake.
    control.get_by_role("button", name="Siguiente →").click()
    expect(phones["es-ES"].get_by_text("Elige una.")).to_be_visible()
    expect(phones["en-GB"].get_by_text("Pick one.")).to_be_visible()
    phones["es-ES"].get_by_label(OPTIONS[0]).check()
    phones["es-ES"].get_by_role("button", name="Enviar respuesta").click()
    expect(phones["es-ES"].get_by_text("Respuesta recibida")).to_be_visible()
    expect(control.locator('[data-count="answered"]')).to_have_text("1")
    phones["es-ES"].screenshot(path=ARTIFACTS / "phone-spanish.png")
