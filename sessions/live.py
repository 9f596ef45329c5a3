"""The live regions of a session: render each partial once, push it to every open socket.

Each region is one partial template, used for the page render and for the WebSocket push; htmx's
ws extension swaps it in by id. Pushes are scheduled with transaction.on_commit so that no
client ever sees data that could still roll back.

The control view and the projector are rendered in the session's language; a phone shows
Attune's own words in its browser's language (the consumer keeps it), so what all phones share
is rendered once per language.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import hashlib
import json
import logging
import math
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.contrib.auth.signals import user_logged_out
from django.core.cache import cache
from django.db import connection, transaction
from django.dispatch import receiver
from django.template.loader import render_to_string
from django.utils import translation

from .aggregation import Result, profile, summarize
from .models import Activity, Answer, Connection, Participant, ServerProcess, Session, only_row

logger = logging.getLogger(__name__)


def control_group(session_id: int) -> str:
    return f"session-{session_id}-control"


def projector_group(session_id: int) -> str:
    return f"session-{session_id}-projector"


def participants_group(session_id: int) -> str:
    return f"session-{session_id}-participants"


def sign_in_group(session_key: str | None) -> str:
    """The facilitator's sockets opened under one sign-in (hashed: the key is a secret)."""
    return "sign-in-" + hashlib.sha256((session_key or "").encode()).hexdigest()[:40]


@receiver(user_logged_out)
def close_views_of_sign_in(sender: Any, request: Any, **kwargs: Any) -> None:
    """Signing out closes the control views and projectors opened under that sign-in."""
    try:
        _send(sign_in_group(request.session.session_key), {"type": "signed.out"})
    except Exception:
        # Each control message checks the sign-in again, so a missed close is still safe.
        logger.exception("Could not close the views of a facilitator who signed out")


def current_result(session: Session) -> Result | None:
    activity = session.current_activity
    if activity is None or not activity.takes_answers:
        return None
    return summarize(activity, session.anonymity_threshold)


def live_context(session: Session) -> dict:
    """What the control view and the projector show of the running session."""
    activity = session.current_activity
    result = current_result(session)
    joined, present = session.joined_and_present_counts()
    _note_peak(session, present)
    is_pair_round = activity and activity.kind == Activity.Kind.PAIR_ROUND
    group_sizes, groups_apart = activity.groups_at_a_glance() if is_pair_round else ([], 0)
    return {
        "session": session,
        "activity": activity,
        "result": result,
        "joined": joined,
        "present": present,
        **_step_context(session),
        # For the control view only: the partial for the projector never shows these.
        **_agenda_place(session, activity),
        "group_sizes": group_sizes,
        "groups_apart": groups_apart,
        # Offered only beside answers that may signal distress: looked up only then.
        "support_step": session.support_step() if result and result.flagged else None,
        "profile": profile(activity.profile_scales(), session.anonymity_threshold)
        if activity
        else [],
        "recap": [
            summarize(question, session.anonymity_threshold)
            for question in activity.recap_questions()
        ]
        if activity
        else [],
    }


# The most phones connected at once is written at most this often per session and process: a
# write at every push, while a room joins, held SQLite's write lock often enough to slow the
# joins themselves several times over (docs/performance.md). The highest count seen meanwhile is
# kept here and written with the next push after the interval, and when the session ends.
PEAK_WRITE_INTERVAL = 10.0
_peaks: dict[int, tuple[int, float | None]] = {}  # session id: (highest seen, last written)


def _note_peak(session: Session, present: int) -> None:
    highest, written_at = _peaks.get(session.pk, (0, None))
    highest = max(highest, present)
    now = time.monotonic()
    due = written_at is None or now - written_at >= PEAK_WRITE_INTERVAL
    if highest > session.peak_present and due:
        session.record_peak(highest)
        written_at = now
    _peaks[session.pk] = (highest, written_at)


def _agenda_place(session: Session, activity: Activity | None) -> dict:
    if activity is None:
        return {"step_number": 0, "step_count": 0, "next_activity": session.next_from_lobby()}
    number, count, following = session.agenda_place(activity)
    return {"step_number": number, "step_count": count, "next_activity": following}


def _step_context(session: Session) -> dict:
    """What every screen needs to show a countdown or the breathing pacer in step."""
    return {
        "timer_remaining": session.timer_remaining_seconds(),
        "pacer_elapsed": session.seconds_since_opened(),
    }


def render_control_live(context: dict) -> str:
    return render_to_string("sessions/partials/control_live.html", context)


def render_control_agenda(session: Session) -> str:
    return render_to_string(
        "sessions/partials/control_agenda.html",
        {"session": session, "activities": session.activities_in_order()},
    )


def render_projector_stage(context: dict) -> str:
    return render_to_string("sessions/partials/projector_stage.html", context)


def phone_context(
    participant: Participant,
    stored: Answer | None = None,
    session: Session | None = None,
    just_joined: bool = False,
) -> dict:
    """What a phone shows. `stored`: the answer it just stored to the open activity, which
    comes with that activity and its session, so nothing needs reading again. `session`: the
    participant's session with its current activity, read just now (otherwise it is read).
    `just_joined`: the participant was added by this request, so it has no answer and no pair
    round group yet (its socket places it in one): nothing of its own to read."""
    if stored is not None:
        activity, answer = stored.activity, stored
        session = activity.session
    else:
        session = session or _load(participant.session_id)
        activity = session.current_activity
        answer = (
            only_row(Answer.objects.filter(activity=activity, participant=participant))
            if activity and not just_joined
            else None
        )
    group = (
        activity.group_of(participant)
        if activity and activity.kind == Activity.Kind.PAIR_ROUND and not just_joined
        else None
    )
    return {
        "participant": participant,
        "session": session,
        "activity": activity,
        "answer": answer,
        "group": group,
        # Someone in the phone's group whose phone is not connected now.
        "partner_gone": any(
            member.pk != participant.pk and not member.is_present for member, _ in group or []
        ),
        **_step_context(session),
    }


def render_phone_stage(
    participant: Participant,
    stored: Answer | None = None,
    session: Session | None = None,
    *,
    withdrawn: bool = False,
) -> str:
    """`withdrawn`: the phone's answers were just deleted, so its fields show them no more
    (they are otherwise kept as typed, across pushes: hx-preserve)."""

    def render() -> str:
        context = phone_context(participant, stored, session)
        return render_to_string(
            "sessions/partials/phone_stage.html", {**context, "withdrawn": withdrawn}
        )

    shared = _answered_stages.get()
    if stored is None or shared is None:
        return render()
    key = (stored.activity_id, translation.get_language(), stored.passed, json.dumps(stored.value))
    if key not in shared:
        shared[key] = render()
    return shared[key]


_answered_stages: contextvars.ContextVar[dict | None] = contextvars.ContextVar(
    "answered_stages", default=None
)


@contextmanager
def sharing_answered_stages() -> Iterator[None]:
    """Within it, the stage a phone shows after its answer is rendered once for each different
    answer, and shared. That stage shows the activity and the answer, nothing of the phone's
    own, and a room answering a choice gives a few different answers in all. For the answers of
    one batch (sessions/batches.py): they were stored together, with one reading of their
    activities and sessions."""
    token = _answered_stages.set({})
    try:
        yield
    finally:
        _answered_stages.reset(token)


def render_answer_ack(client_id: str) -> str:
    """Tells the phone its answer is stored, so it stops offering to resend it."""
    return render_to_string("sessions/partials/answer_ack.html", {"client_id": client_id})


def render_notice(message: str, *, level: str = "error") -> str:
    if not message:
        return _cleared_notice()
    return render_to_string("sessions/partials/notice.html", {"message": message, "level": level})


@functools.cache
def _cleared_notice() -> str:
    """Sent with most pushes, so rendered once."""
    return render_to_string("sessions/partials/notice.html", {"message": "", "level": "error"})


def _send(group: str, message: dict) -> None:
    async_to_sync(get_channel_layer().group_send)(group, message)


def read_for_render(session_id: int) -> Session:
    """The session and its current activity, read afresh for a render of the counts and results
    (`#control-live`, `#projector-stage`), stamped with the database's clock read just before
    (`Session.as_of`).

    Two processes may push one session's counts moments apart, and the frame read first may
    arrive last. Each of these regions carries its stamp (data-as-of), and a screen keeps the
    one read last (static/attune/attune.js): it shows everything committed before its stamp,
    and every change is pushed after it commits, so the last push read after the last change.
    """
    as_of = _database_clock()
    session = _load(session_id)
    session.as_of = as_of
    return session


def _load(session_id: int) -> Session:
    session = Session.objects.select_related("current_activity").get(pk=session_id)
    if session.current_activity is not None:
        session.current_activity.session = session  # read by the results, without a query
    return session


def _database_clock() -> int:
    """Microseconds since 1970 on one clock that every server process shares: PostgreSQL's.
    SQLite serves processes on one machine only, so that machine's clock is theirs."""
    if connection.vendor != "postgresql":
        return time.time_ns() // 1000
    with connection.cursor() as cursor:
        cursor.execute("SELECT (extract(epoch FROM clock_timestamp()) * 1000000)::bigint")
        return cursor.fetchone()[0]


def _claimed_counts_and_results(
    session_id: int, lost: int | None
) -> tuple[int | None, list[tuple[str, dict]]]:
    taken = claim_push(session_id, lost)
    return taken, [] if taken is not None else _counts_and_results(read_for_render(session_id))


def _counts_and_results(session: Session) -> list[tuple[str, dict]]:
    """The control view's and projector's regions that show counts and results, rendered."""
    context = live_context(session)
    with translation.override(session.language):
        control_html, projector_html = (
            render_control_live(context),
            render_projector_stage(context),
        )
    return [
        (projector_group(session.pk), {"type": "html.push", "html": projector_html}),
        (control_group(session.pk), {"type": "html.push", "html": control_html}),
    ]


def _push_counts_and_results(session: Session) -> None:
    for group, message in _counts_and_results(session):
        _send(group, message)


def push_results(session_id: int) -> None:
    """Counts and results changed: refresh the control view and the projector."""
    _push_counts_and_results(read_for_render(session_id))


def claim_push(session_id: int, lost: int | None = None) -> int | None:
    """None when this process may push the session's counts and results now; otherwise the
    slice of the clock that another process has, to try again after it.

    The clock is cut into slices of ATTUNE_PUSH_INTERVAL, and the first process to add the
    session's key for a slice to the cache (shared by every process when REDIS_URL is set) has
    it: however many processes hold the session's phones, it gets at most one push per slice.
    `lost`: the slice this process lost the last time. A clock that has not moved past it
    (stopped, or set back) may push now, and so may a process whose cache fails: one push too
    many rather than a last state never shown.
    """
    interval = settings.ATTUNE_PUSH_INTERVAL
    slice_ = int(time.time() // interval)
    if lost is not None and slice_ <= lost:
        return None
    try:
        if cache.add(f"push:{session_id}:{slice_}", 1, timeout=max(1, math.ceil(2 * interval))):
            return None
    except Exception:
        logger.warning("Could not claim a results push; pushing anyway", exc_info=True)
        return None
    return slice_


class ResultsPushes:
    """Counts and results pushes of one server process, coalesced per session.

    A room answering at once would otherwise re-render the projector for every answer. Here a
    change asks for a push; at most one push per session starts every ATTUNE_PUSH_INTERVAL
    seconds, across all processes (claim_push), and a change that arrives while one is being
    rendered gets a push of its own after it, so the last state always reaches the screens. A
    change after a quiet spell is pushed at once.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.waiting: set[int] = set()
        self.last_start: dict[int, float] = {}
        self.running: set[asyncio.Task] = set()

    def request(self, session_id: int) -> None:
        if session_id in self.waiting:
            return
        self.waiting.add(session_id)
        last = self.last_start.get(session_id)
        delay = 0.0 if last is None else last + settings.ATTUNE_PUSH_INTERVAL - self.loop.time()
        self.loop.call_later(max(0.0, delay), self._start, session_id)

    def _start(self, session_id: int, lost: int | None = None) -> None:
        self.waiting.discard(session_id)  # from now on, a new change needs a new push
        self.last_start[session_id] = self.loop.time()
        task = self.loop.create_task(self._push(session_id, lost))
        self.running.add(task)
        task.add_done_callback(self._finished)

    async def _push(self, session_id: int, lost: int | None) -> None:
        # Rendered in a thread (it reads the database and the cache), sent from the event loop.
        taken, messages = await database_sync_to_async(_claimed_counts_and_results)(
            session_id, lost
        )
        if taken is not None:
            # Another process has this moment's push. It may have read the session before this
            # process's change, so this process tries again in the next slice: the last state
            # is always pushed.
            if session_id not in self.waiting:
                self.waiting.add(session_id)
                wait = (taken + 1) * settings.ATTUNE_PUSH_INTERVAL - time.time()
                self.loop.call_later(max(wait, 0.001), self._start, session_id, taken)
            return
        for group, message in messages:
            await get_channel_layer().group_send(group, message)

    def _finished(self, task: asyncio.Task) -> None:
        self.running.discard(task)
        if not task.cancelled() and task.exception():
            logger.error("A results push failed", exc_info=task.exception())


_results_pushes: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, ResultsPushes] = (
    weakref.WeakKeyDictionary()
)


async def pushes_settled() -> None:
    """Wait until this process has pushed every change asked for so far."""
    pushes = _results_pushes.get(asyncio.get_running_loop())
    while pushes and (pushes.waiting or pushes.running):
        await asyncio.sleep(0.01)


def close_session(session_id: int) -> None:
    """The session was deleted: every socket open on it closes and leaves its groups, so that
    nothing of the session stays in the channel layer."""
    for group in (
        control_group(session_id),
        projector_group(session_id),
        participants_group(session_id),
    ):
        _send(group, {"type": "session.deleted"})


def results_changed(session_id: int) -> None:
    """From a consumer, after commit: the counts or results changed (coalesced push)."""
    loop = asyncio.get_running_loop()
    if loop not in _results_pushes:
        _results_pushes[loop] = ResultsPushes(loop)
    _results_pushes[loop].request(session_id)


def push_facilitator_views(session_id: int) -> None:
    """The facilitator changed something only their views show (agenda, settings, joining)."""
    session = read_for_render(session_id)
    _push_counts_and_results(session)
    _push_control_agenda(session)


def push_session(session_id: int) -> None:
    """What phones show changed too (open activity, answer lock, end): refresh every view.

    Every phone first: they are many, and each may be on the room's slow Wi-Fi. Then the
    projector and the control view's live region, and last the control view's agenda. Phones
    are refreshed only when what they show really changed: a re-render would wipe a half-typed
    answer.
    """
    session = read_for_render(session_id)
    _send(participants_group(session_id), {"type": "phone.refresh", **_shared_phone_stage(session)})
    _push_counts_and_results(session)
    _push_control_agenda(session)


def tell_partners(participant_ids: list[int]) -> None:
    """A partner of these phones in a pair round came or went: each of their sockets, and no
    other, shows its stage afresh (with who is connected). Only sockets of live processes: a
    crashed one's channel may be full, and one socket's failure leaves the others told."""
    layer = get_channel_layer()
    channels = Connection.objects.filter(
        participant__in=participant_ids, server__in=ServerProcess.objects.alive()
    ).exclude(channel="")
    for channel in channels.values_list("channel", flat=True):
        try:
            async_to_sync(layer.send)(channel, {"type": "partners.changed"})
        except Exception:
            logger.warning("Could not tell a pair round's phone of its partner", exc_info=True)


def _push_control_agenda(session: Session) -> None:
    # The facilitator's action went through: clear any earlier error on the control view.
    with translation.override(session.language):
        html = render_notice("") + render_control_agenda(session)
    _send(control_group(session.pk), {"type": "html.push", "html": html})


def _shared_phone_stage(session: Session) -> dict:
    """What every phone shows, rendered once for all of them in each language (each phone
    picks its own), for a `phone.refresh` push; `stage_from_refresh` picks a phone's out of it.

    - "html": the stage of phones without an answer to "activity";
    - "by_answer": for the answers that several phones gave (the most common first), the stage
      those phones show, the phones (`_phone_list`), and the answer (`answer_key`). That stage
      shows the answer and nothing else of the phone's own, so a room that answered a choice
      needs a few renders in all, not one per phone;
    - "own": the phones with any other answer (an open text, say), which render their own
      stage (`_phone_list`).

    In a pair round each phone shows its own group, so each renders its own.
    """
    activity = session.current_activity
    if activity and activity.kind == Activity.Kind.PAIR_ROUND:
        return {}
    context = {"session": session, "activity": activity, **_step_context(session)}
    phones_by_answer: dict[tuple[bool, str], list[int]] = {}
    for participant_id, passed, value in (
        activity.answers.values_list("participant_id", "passed", "value") if activity else []
    ):
        phones_by_answer.setdefault((passed, json.dumps(value)), []).append(participant_id)
    by_answer = sorted(phones_by_answer.items(), key=lambda item: len(item[1]), reverse=True)
    shared = [item for item in by_answer[:SHARED_ANSWER_STAGES] if len(item[1]) > 1]
    return {
        "activity": activity.pk if activity else None,
        "html": _phone_stage_in_each_language(context),
        "by_answer": [
            [
                _phone_stage_in_each_language(
                    {**context, "answer": Answer(passed=passed, value=json.loads(value))}
                ),
                _phone_list(phones),
                [activity.pk, passed, value],
            ]
            for (passed, value), phones in shared
        ],
        "own": _phone_list(
            [phone for item in by_answer if item not in shared for phone in item[1]]
        ),
    }


def _phone_list(participant_ids: list[int]) -> str:
    """Participant ids as one string, ",4,9,12,", in a push that every phone receives. The
    in-memory channel layer deep-copies a message for each phone: a list element by element
    (with 1,000 phones that answered, about 0.15 s of the event loop for one push), a string
    not at all. `_listed` reads it."""
    return f",{','.join(map(str, participant_ids))},"


def _listed(participant_id: int, phones: str) -> bool:
    return f",{participant_id}," in phones


# At most this many different answers get a render of their own in a push to phones, which
# every phone receives: a room's choices fit, a room's open texts would not.
SHARED_ANSWER_STAGES = 8


# What a phone's socket stored last once it deleted its answers: a push read before that may
# still list them, so the phone renders its own stage until it answers again.
WITHDRAWN = ["withdrawn"]


def answer_key(answer: Answer) -> list:
    """What a phone's stage shows of its answer, as `_shared_phone_stage` names it."""
    return [answer.activity_id, answer.passed, json.dumps(answer.value)]


def _phone_stage_in_each_language(context: dict) -> dict[str, str]:
    html = {}
    for language, _name in settings.LANGUAGES:
        with translation.override(language):
            html[language] = render_notice("") + render_to_string(
                "sessions/partials/phone_stage.html", context
            )
    return html


def stage_from_refresh(
    refresh: dict, participant_id: int, language: str, stored: list | None = None
) -> str | None:
    """This phone's stage out of a `phone.refresh` push (`_shared_phone_stage`), or None if it
    must render its own. `stored`: the answer this phone's socket stored last (`answer_key`).
    The push read the answers moments before it reached this phone, which may have stored a
    different one since: then the phone renders its own, read afresh."""
    if stored == WITHDRAWN:
        return None
    mine = stored if stored and stored[0] == refresh.get("activity") else None
    for stages, phones, key in refresh.get("by_answer", []):
        if _listed(participant_id, phones):
            return stages.get(language) if mine in (None, key) else None
    if mine or _listed(participant_id, refresh.get("own", "")):
        return None
    return refresh.get("html", {}).get(language)


def after_commit(push: Callable[..., None], *args: Any) -> None:
    """Run `push(*args)` (the session's id, say) once the current transaction has committed.

    Robust: the data is committed by then, so a failed push (a channel layer hiccup) is logged
    rather than turned into an error for the person who made the change.
    """
    transaction.on_commit(lambda: push(*args), robust=True)
