"""WebSocket consumers: thin adapters that validate a message, check permission, call one model
method and let `live` push the changed regions after commit.

Every message is a JSON object with an "action" (htmx's ws extension sends form fields as JSON).
A message that is too large, malformed, unknown or refused gets an error frame: an HTML notice
swapped into the page. The socket stays open.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from importlib import import_module
from types import SimpleNamespace
from typing import Any

from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.contrib import auth
from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import F
from django.utils import translation
from django.utils.translation import gettext, gettext_lazy, ngettext
from django.utils.translation.trans_real import parse_accept_lang_header

from . import batches, live, presence
from .models import (
    ActionRefused,
    Answer,
    AnswerRequest,
    Connection,
    PairAssignment,
    Participant,
    Session,
    normalize_join_code,
    parse_client_id,
    parse_id,
    participant_token,
)

logger = logging.getLogger(__name__)

# Close codes outside the range that htmx's ws extension and attune.js reconnect on.
CLOSE_SIGNED_OUT = 4401
CLOSE_NOT_ALLOWED = 4403
CLOSE_TOO_MANY_MESSAGES = 4429
CLOSE_SESSION_DELETED = 4410

Handler = Callable[[dict[str, Any]], Awaitable[None]]


def browser_language(scope: dict[str, Any]) -> str:
    """The language the browser asked for in the handshake (Accept-Language), among
    settings.LANGUAGES, else the default: what LocaleMiddleware decides for its pages."""
    header = next(
        (
            value.decode("latin-1")
            for name, value in scope.get("headers", [])
            if name == b"accept-language"
        ),
        "",
    )
    for code, _quality in parse_accept_lang_header(header):
        if code == "*":
            break
        try:
            return translation.get_supported_language_variant(code)
        except LookupError:
            continue
    return settings.LANGUAGE_CODE


def speaking(language: str, function: Callable[..., Any]) -> Callable[..., Any]:
    """`function`, run with `language` active in whichever thread runs it (the database thread,
    a batch of several phones' answers)."""

    @functools.wraps(function)
    def run(*args: Any, **kwargs: Any) -> Any:
        with translation.override(language):
            return function(*args, **kwargs)

    return run


class RateLimit:
    """Messages from one socket over a sliding window of time.

    Past `limit` messages a message is refused; past twice the limit (a client that keeps on
    sending regardless) the socket is closed.
    """

    def __init__(self, limit: int, window: float) -> None:
        self.limit = limit
        self.window = window
        self.times: deque[float] = deque()

    def check(self) -> str:
        """Count this message, and say whether to take it: "ok", "slow down" or "close"."""
        now = time.monotonic()
        self.times.append(now)
        while self.times[0] <= now - self.window:
            self.times.popleft()
        if len(self.times) > 2 * self.limit:
            return "close"
        return "slow down" if len(self.times) > self.limit else "ok"


class LiveConsumer(AsyncWebsocketConsumer):
    """What all three views share: message parsing, error frames and pushes from the group."""

    groups_joined: list[str]
    rate_limit: RateLimit
    has_left = False
    # The language of this socket's notices and renders: a phone's own, or the session's.
    language = settings.LANGUAGE_CODE

    def handlers(self) -> dict[str, Handler]:
        return {}

    async def dispatch(self, message: dict[str, Any]) -> None:
        """Channels' own, without the trip it makes before every message to close stale
        database connections. That trip goes to the one thread that runs every database call,
        so a push to a screen or a phone, a message from a phone and a new socket's handshake
        all waited behind whatever database work was queued (a batch of answers takes tens of
        milliseconds). Every database call here is a database_sync_to_async, which closes
        stale connections itself, before and after."""
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def refuse_connection(self, message: Any) -> None:
        # Accepted already, so the page can show why; closed with a code that stops reconnects.
        await self.send_error(message)
        await self.close(code=CLOSE_NOT_ALLOWED)

    async def join_groups(self, *groups: str) -> None:
        self.groups_joined = list(groups)
        for group in groups:
            await self.channel_layer.group_add(group, self.channel_name)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            # A consumer that crashed (its channel layer went away) or was cancelled (the server
            # shutting down) never gets websocket.disconnect: it still leaves as a closed one.
            if not self.has_left:
                await self.disconnect(1011)

    async def disconnect(self, code: int) -> None:
        self.has_left = True
        for group in getattr(self, "groups_joined", []):
            try:
                await self.channel_layer.group_discard(group, self.channel_name)
            except Exception:  # the layer is down: its group memberships expire by themselves
                logger.warning("Could not leave %s", group, exc_info=True)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if not hasattr(self, "rate_limit"):
            self.rate_limit = RateLimit(*settings.ATTUNE_MESSAGE_RATE)
        verdict = self.rate_limit.check()
        if verdict == "close":
            await self.send_error(
                gettext_lazy("Too many messages: this connection was closed. Reload the page.")
            )
            await self.close(code=CLOSE_TOO_MANY_MESSAGES)
            return
        if verdict == "slow down":
            await self.send_error(
                gettext_lazy("Too many messages at once. Wait a few seconds, then try again.")
            )
            return
        if text_data is None:
            await self.send_error(gettext_lazy("Attune only understands text messages."))
            return
        if len(text_data.encode()) > settings.ATTUNE_MAX_MESSAGE_BYTES:
            await self.send_error(gettext_lazy("That message is too large, so it was not read."))
            return
        try:
            message = json.loads(text_data)
        except ValueError:
            message = None
        if not isinstance(message, dict):
            await self.send_error(gettext_lazy("That message could not be read."))
            return
        action = message.get("action")
        handler = self.handlers().get(action) if isinstance(action, str) else None
        if handler is None:
            await self.send_error(gettext_lazy("That action is not available here."))
            return
        try:
            await handler(message)
        except ActionRefused as refusal:
            await self.send_error(refusal)
        except DatabaseError:
            # Busy (SQLite's lock) or briefly unreachable: nothing was stored; say so.
            logger.exception("A WebSocket action failed in the database")
            await self.send_error(
                gettext_lazy("That did not go through: the server is busy. Try again.")
            )

    async def send_error(self, message: Any) -> None:
        """`message`: text, lazy text or a refusal, put into words in this socket's language."""
        with translation.override(self.language):
            html = live.render_notice(str(message))
        await self.send(text_data=html)

    async def html_push(self, event: dict[str, Any]) -> None:
        await self.send(text_data=event["html"])

    async def session_deleted(self, event: dict[str, Any]) -> None:
        await self.send_error(gettext_lazy("This session was deleted by its facilitator."))
        await self.close(code=CLOSE_SESSION_DELETED)


class ParticipantConsumer(LiveConsumer):
    """A phone. It can answer or pass on the open activity and nothing else."""

    participant: Participant
    participant_id: int
    session_id: int
    # This socket's Connection row: the phone counts as present while it exists.
    connection_id: int | None = None
    # What this socket stored last (live.answer_key), which a push read a moment earlier may
    # not know of yet; after a withdrawal, anything such a push says of its answers is stale.
    stored_answer: list | None = None

    async def connect(self) -> None:
        # Accepted before anything else: when a whole room arrives at once, the database work
        # below queues, and an unaccepted handshake would time out (Daphne allows 5 s).
        await self.accept()
        # Attune's own words in the phone's language; the prompts are in the session's.
        self.language = browser_language(self.scope)
        code = normalize_join_code(self.scope["url_route"]["kwargs"]["code"])
        token = participant_token(self.scope.get("cookies", {}), code)
        # Both database steps are shared with the other phones connecting at the same moment
        # (sessions/batches.py): a room that scans the QR code together opens its sockets
        # together.
        participant = await batches.find_phone((token, code))
        if participant is None:
            await self.refuse_connection(batches.PLACE_NOT_FOUND)
            return
        self.participant = participant
        self.participant_id = participant.pk
        self.session_id = participant.session_id
        await self.join_groups(live.participants_group(self.session_id))
        presence.ensure_heartbeat()
        try:
            self.connection_id, html = await batches.open_socket(
                batches.Opening(participant, self.language, self.channel_name)
            )
        except ActionRefused as refusal:
            await self.refuse_connection(refusal)
            return
        live.results_changed(self.session_id)  # joined and connected counts
        await self.send(text_data=html)

    async def disconnect(self, code: int) -> None:
        if self.connection_id is not None:
            connection_id, self.connection_id = self.connection_id, None
            await database_sync_to_async(_disconnected)(connection_id, self.participant)
            live.results_changed(self.session_id)
        await super().disconnect(code)

    def handlers(self) -> dict[str, Handler]:
        return {"answer": self.record, "pass": self.record, "withdraw": self.withdraw}

    async def record(self, message: dict[str, Any]) -> None:
        request = AnswerRequest(
            self.participant, message.get("activity"), message, passed=message["action"] == "pass"
        )
        try:
            html, self.stored_answer = await batches.store(
                request,
                self.language,
                lambda answer: (
                    _acknowledge(self.participant, message, answer),
                    live.answer_key(answer),
                ),
            )
        except IntegrityError:
            if await database_sync_to_async(self.participant.is_still_here)():
                raise  # a copy of this message stored at the same moment: the phone retries
            raise ActionRefused(batches.PLACE_NOT_FOUND) from None
        live.results_changed(self.session_id)
        await self.send(text_data=html)

    async def withdraw(self, message: dict[str, Any]) -> None:
        html = await database_sync_to_async(speaking(self.language, _withdraw))(self.participant)
        self.stored_answer = live.WITHDRAWN
        live.results_changed(self.session_id)
        await self.send(text_data=html)

    async def phone_refresh(self, event: dict[str, Any]) -> None:
        html = live.stage_from_refresh(
            event, self.participant_id, self.language, self.stored_answer
        )
        if html is None:
            html = await database_sync_to_async(speaking(self.language, _render_phone))(
                self.participant_id
            )
        if html:
            await self.send(text_data=html)

    async def partners_changed(self, event: dict[str, Any]) -> None:
        """A partner in this phone's pair round came or went (live.tell_partners)."""
        html = await database_sync_to_async(speaking(self.language, _render_phone))(
            self.participant_id
        )
        if html:
            await self.send(text_data=html)


def _disconnected(connection_id: int, participant: Participant) -> None:
    """The socket is closed: the phone no longer counts as connected through it, and in a pair
    round its partners' phones show it as gone."""
    Connection.objects.filter(pk=connection_id).delete()
    pairs = PairAssignment.objects.filter(
        participant=participant, activity=F("activity__session__current_activity")
    ).select_related("activity")
    try:
        for pair in pairs:
            live.tell_partners(pair.activity.partners_of(participant))
    except Exception:  # the phone has gone all the same; its partners see it at the next push
        logger.warning("Could not tell a pair round that a phone left", exc_info=True)


def _acknowledge(participant: Participant, message: dict[str, Any], answer: Answer) -> str:
    """Committed: acknowledge the phone's message, and clear any earlier error. A replayed
    message's answer may be to an earlier activity: then the stage is read afresh."""
    fresh = answer if Answer.activity.is_cached(answer) else None
    return (
        live.render_notice("")
        + live.render_answer_ack(parse_client_id(message.get("client_id")))
        + live.render_phone_stage(participant, fresh)
    )


def _withdraw(participant: Participant) -> str:
    withdrawn = participant.withdraw()
    message = (
        ngettext(
            "Done: %(count)d answer deleted and taken out of the results.",
            "Done: %(count)d answers deleted and taken out of the results.",
            len(withdrawn),
        )
        % {"count": len(withdrawn)}
        if withdrawn
        else gettext("You had no answers in this session, so there was nothing to delete.")
    )
    return live.render_notice(message, level="info") + live.render_phone_stage(
        participant, withdrawn=True
    )


def _render_phone(participant_id: int) -> str | None:
    participant = (
        Participant.objects.filter(pk=participant_id)
        .select_related("session__current_activity")
        .first()
    )
    if participant is None:
        return None
    return live.render_notice("") + live.render_phone_stage(
        participant, session=participant.session
    )


class FacilitatorConsumer(LiveConsumer):
    """Shared by the control view and the projector: only the session's own facilitator gets in."""

    session_id: int

    def group_for(self, session_id: int) -> str:
        raise NotImplementedError

    async def connect(self) -> None:
        await self.accept()
        self.language = browser_language(self.scope)
        self.session_id = self.scope["url_route"]["kwargs"]["session_id"]
        session = await database_sync_to_async(_owned_session)(self.scope["user"], self.session_id)
        if session is None:
            await self.refuse_connection(
                gettext_lazy("Sign in as this session's facilitator to see it.")
            )
            return
        # Like the page and every push: the session's language, whatever the browser's.
        self.language = session.language
        await self.join_groups(
            self.group_for(self.session_id), live.sign_in_group(self.scope["session"].session_key)
        )
        html = await database_sync_to_async(speaking(self.language, self.render_current))(
            self.session_id
        )
        await self.send(text_data=html)

    def render_current(self, session_id: int) -> str:
        """What this view shows now, read afresh: stamped like every push (live.read_for_render)."""
        raise NotImplementedError

    async def signed_out(self, event: dict[str, Any]) -> None:
        """The facilitator signed out (in another tab, say): this view stops at once."""
        await self.send_error(
            gettext_lazy("You signed out, so this view has stopped. Sign in to go on.")
        )
        await self.close(code=CLOSE_SIGNED_OUT)


def _still_signed_in(scope: dict[str, Any]) -> bool:
    """Whether the sign-in this socket was opened with still stands (not signed out since)."""
    store = import_module(settings.SESSION_ENGINE).SessionStore(scope["session"].session_key)
    return auth.get_user(SimpleNamespace(session=store)).pk == scope["user"].pk


def _owned_session(user: Any, session_id: int, *, lock: bool = False) -> Session | None:
    if not user.is_authenticated:
        return None
    sessions = Session.objects.owned_by(user).filter(pk=session_id)
    if lock:
        sessions = sessions.select_for_update(of=("self",))
    return sessions.select_related("current_activity").first()


class ProjectorConsumer(FacilitatorConsumer):
    """The projector only listens; it has no actions."""

    def group_for(self, session_id: int) -> str:
        return live.projector_group(session_id)

    def render_current(self, session_id: int) -> str:
        return live.render_projector_stage(live.live_context(live.read_for_render(session_id)))


class ControlConsumer(FacilitatorConsumer):
    """The facilitator's control view: every message re-checks that the session is theirs."""

    def group_for(self, session_id: int) -> str:
        return live.control_group(session_id)

    def render_current(self, session_id: int) -> str:
        session = live.read_for_render(session_id)
        return live.render_control_live(live.live_context(session)) + live.render_control_agenda(
            session
        )

    def handlers(self) -> dict[str, Handler]:
        return {action: self.control for action in CONTROL_ACTIONS}

    async def control(self, message: dict[str, Any]) -> None:
        if not await database_sync_to_async(speaking(self.language, _control))(
            self.scope, self.session_id, message
        ):
            await self.signed_out({})


def _open(session: Session, message: dict[str, Any]) -> None:
    activity = session.activities.filter(pk=parse_id(message.get("activity"))).first()
    if activity is None:
        raise ActionRefused(gettext("That activity is not part of this session."))
    session.open_activity(activity)


def parse_count(value: Any) -> int | None:
    """A count sent back by a button (how many cards it saw drawn), or None when absent."""
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _step(offset: int) -> Callable[[Session, dict[str, Any]], None]:
    def step(session: Session, message: dict[str, Any]) -> None:
        # Buttons send the activity open when they were drawn ("" for the lobby).
        seen = None if "from" not in message else (parse_id(message["from"]) or 0)
        session.step(offset, seen_activity_id=seen)

    return step


Push = Callable[[int], None]
# Each action: what it does, and which views must be refreshed after it commits.
CONTROL_ACTIONS: dict[str, tuple[Callable[[Session, dict[str, Any]], None], Push]] = {
    "open": (_open, live.push_session),
    "close": (lambda session, _: session.close_activity(), live.push_session),
    "next": (_step(1), live.push_session),
    "previous": (_step(-1), live.push_session),
    "lock_answers": (lambda session, _: session.set_answers_locked(True), live.push_session),
    "unlock_answers": (lambda session, _: session.set_answers_locked(False), live.push_session),
    "draw_pairs": (lambda session, _: session.draw_pairs(), live.push_session),
    "next_round": (lambda session, _: session.next_pair_round(), live.push_session),
    "draw_card": (
        lambda session, message: session.draw_card(seen_count=parse_count(message.get("seen"))),
        live.push_session,
    ),
    "pause_timer": (lambda session, _: session.pause_timer(), live.push_session),
    "resume_timer": (lambda session, _: session.resume_timer(), live.push_session),
    "extend_timer": (lambda session, _: session.extend_timer(60), live.push_session),
    # Only the facilitator's views show these; phones are left alone so that a half-typed
    # answer is not wiped by a re-render.
    "show_results": (
        lambda session, _: session.set_results_visible(True),
        live.push_facilitator_views,
    ),
    "hide_results": (
        lambda session, _: session.set_results_visible(False),
        live.push_facilitator_views,
    ),
    "approve_answer": (
        lambda session, message: session.moderate(
            message.get("answer"), Answer.Moderation.APPROVED
        ),
        live.push_facilitator_views,
    ),
    "hide_answer": (
        lambda session, message: session.moderate(message.get("answer"), Answer.Moderation.HIDDEN),
        live.push_facilitator_views,
    ),
    "hide_word": (
        lambda session, message: session.hide_word(
            message.get("activity"), message.get("word"), hidden=True
        ),
        live.push_facilitator_views,
    ),
    "show_word": (
        lambda session, message: session.hide_word(
            message.get("activity"), message.get("word"), hidden=False
        ),
        live.push_facilitator_views,
    ),
    "lock_joins": (lambda session, _: session.set_joins_locked(True), live.push_facilitator_views),
    "unlock_joins": (
        lambda session, _: session.set_joins_locked(False),
        live.push_facilitator_views,
    ),
}


def _control(scope: dict[str, Any], session_id: int, message: dict[str, Any]) -> bool:
    """Run a control action; False, with nothing done, if the sign-in that opened this view
    has ended (signed out in another tab, say). One trip to the database thread for both."""
    if not _still_signed_in(scope):
        return False
    with transaction.atomic():
        # Locked: two tabs or a double click must not run two actions on one state at once.
        session = _owned_session(scope["user"], session_id, lock=True)
        if session is None:
            raise ActionRefused(gettext("This session is not yours to run."))
        # Refusals in the session's language, even if it changed since this view opened.
        with translation.override(session.language):
            if not session.is_live:
                raise ActionRefused(gettext("This session is not live."))
            perform, push = CONTROL_ACTIONS[message["action"]]
            perform(session, message)
        live.after_commit(push, session.pk)
    return True
