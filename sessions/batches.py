"""Database work from many phones done together: answers stored, and sockets opened, a batch
at a time on the database thread.

A room does the same thing at once: it answers a question, or scans the QR code and opens its
sockets. A commit waits for the database to make it durable (on PostgreSQL, a sync of its log
to disk), every answer to an activity counts in the same tally rows, every socket of a session
locks the same session row, and each statement is a round trip to the database and a query
for the ORM to build. Phones that arrive while the last batch is being done share the next.

An answer that is refused (a closed activity, a bad value) is refused alone, and the others
are stored. If a batch fails in the database (at the commit, say), each item is tried again
alone, so that one bad item never costs the others theirs.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from channels.db import database_sync_to_async
from django.db import DatabaseError, IntegrityError, transaction
from django.utils import translation
from django.utils.translation import gettext_lazy

from . import live, presence
from .models import (
    ActionRefused,
    Activity,
    Answer,
    AnswerBatch,
    AnswerRequest,
    Connection,
    Participant,
    ServerProcess,
    Session,
)

# At most this many items in one transaction, so no batch holds its locks for long.
MAX_BATCH = 200


Outcome = tuple[bool, Any]  # (True, result) or (False, the error to raise)


def _outcome(language: str, function: Callable[..., Any], *args: Any) -> Outcome:
    """`function(*args)` in `language`, as an Outcome."""
    with translation.override(language):
        try:
            return True, function(*args)
        except Exception as error:
            return False, error


class Batches:
    """One kind of database work from one event loop (one server process), a batch at a time:
    `run(items)`, on the database thread, gives an Outcome for each item, in order."""

    def __init__(self, run: Callable[[list[Any]], list[Outcome]]) -> None:
        self.run = run
        self.queue: list[tuple[Any, asyncio.Future]] = []
        self.worker: asyncio.Task | None = None

    async def submit(self, item: Any) -> Any:
        done = asyncio.get_running_loop().create_future()
        self.queue.append((item, done))
        if self.worker is None or self.worker.done():
            self.worker = asyncio.get_running_loop().create_task(self._work())
        return await asyncio.shield(done)

    async def _work(self) -> None:
        while self.queue:
            batch, self.queue = self.queue[:MAX_BATCH], self.queue[MAX_BATCH:]
            try:
                outcomes = await database_sync_to_async(self.run)([item for item, _ in batch])
            except Exception as error:  # the database thread itself failed: nothing done
                outcomes = [(False, error)] * len(batch)
            for (_item, done), (ok, value) in zip(batch, outcomes, strict=True):
                if done.done():
                    continue
                if ok:
                    done.set_result(value)
                else:
                    done.set_exception(value)


def batched(run: Callable[[list[Any]], list[Outcome]]) -> Callable[[Any], Any]:
    """`run`, done for one item at a time by the caller and a batch at a time underneath: the
    items that arrive while a batch is being done go together in the next, per event loop."""
    per_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Batches] = (
        weakref.WeakKeyDictionary()
    )

    async def submit(item: Any) -> Any:
        loop = asyncio.get_running_loop()
        if loop not in per_loop:
            per_loop[loop] = Batches(run)
        return await per_loop[loop].submit(item)

    return submit


# Answers ----------------------------------------------------------------------------------


@dataclass
class Write:
    """One phone's answer to store, and `after(answer)`, run once it is committed, which gives
    what to send back; both in the phone's `language` (its refusals and acknowledgement)."""

    request: AnswerRequest
    language: str
    after: Callable[[Answer], Any]


def _store_batch(batch: list[Write]) -> list[Outcome]:
    """Store every answer of the batch in one transaction; (True, what `after` gave) or
    (False, error) for each, in order."""
    try:
        with transaction.atomic():
            answers = AnswerBatch([write.request for write in batch])
            added = [_add(answers, write) for write in batch]
            answers.save()
    except DatabaseError as error:
        if len(batch) == 1:
            return [(False, error)]
        # One answer failed the batch (its phone's place was removed, say): each on its own.
        return [outcome for write in batch for outcome in _store_batch([write])]
    with live.sharing_answered_stages():
        return [
            _outcome(write.language, write.after, value) if ok else (False, value)
            for write, (ok, value) in zip(batch, added, strict=True)
        ]


def _add(answers: AnswerBatch, write: Write) -> Outcome:
    with translation.override(write.language):
        try:
            return True, answers.add(write.request)
        except DatabaseError:
            raise  # the transaction is lost: each answer is tried again alone
        except Exception as error:  # refused: nothing of it was written
            return False, error


_store_answers = batched(_store_batch)


async def store(request: AnswerRequest, language: str, after: Callable[[Answer], Any]) -> Any:
    """Store `request` in the next batch and return `after(answer)` once it is committed, or
    raise why it was not stored (ActionRefused, or a database error)."""
    return await _store_answers(Write(request, language, after))


# Sockets ----------------------------------------------------------------------------------

PLACE_NOT_FOUND = gettext_lazy(
    "Your place in this session was not found. Join again with the session code."
)


def _find_phones(phones: list[tuple[str | None, str]]) -> list[Outcome]:
    return [(True, participant) for participant in Participant.objects.for_phones(phones)]


# The participant a phone's cookie token stands for in the session with a join code, or None:
# `await find_phone((token, code))`, one query for the phones of a batch.
find_phone = batched(_find_phones)


@dataclass
class Opening:
    """A phone's socket to count as connected, and to show its stage in `language`. `channel`:
    the socket's channel-layer name."""

    participant: Participant
    language: str
    channel: str = ""


def _open_sockets(sockets: list[Opening]) -> list[Outcome]:
    """Count every phone of the batch as connected on this server process, in one transaction,
    then render the stage each shows first: (True, (its Connection's id, the stage)) each."""
    try:
        opened = _connect(sockets)
    except IntegrityError as error:
        if len(sockets) > 1:
            # A phone whose place was removed since its socket found it fails the commit of
            # the whole batch: each on its own.
            return [outcome for socket in sockets for outcome in _open_sockets([socket])]
        return [_place_gone_or(sockets[0].participant, error)]
    except Exception as error:  # the database is unreachable or busy: none of them counted
        return [(False, error)] * len(sockets)
    return [
        _outcome(socket.language, _first_stage, socket.participant, connection, session)
        for socket, (connection, session) in zip(sockets, opened, strict=True)
    ]


def _place_gone_or(participant: Participant, error: Exception) -> Outcome:
    try:
        gone = not participant.is_still_here()
    except Exception as failure:
        return False, failure
    return False, ActionRefused(PLACE_NOT_FOUND) if gone else error


def _connect(sockets: list[Opening]) -> list[tuple[Connection, Session | None]]:
    try:
        return _connect_in_a_transaction(sockets)
    except IntegrityError:
        if ServerProcess.objects.filter(pk=presence.SERVER_ID).exists():
            raise
        # This process's row was gone (forgotten after a long stall, or a database reset), so
        # the sockets' rows could not hang on it: beat, and connect them again.
        presence.beat()
        return _connect_in_a_transaction(sockets)


@transaction.atomic
def _connect_in_a_transaction(sockets: list[Opening]) -> list[tuple[Connection, Session | None]]:
    participants = [socket.participant for socket in sockets]
    connections = Connection.objects.bulk_create(
        Connection(
            participant=socket.participant, server_id=presence.SERVER_ID, channel=socket.channel
        )
        for socket in sockets
    )
    # Locked like a facilitator action, so a phone arriving during a draw is either drawn or
    # placed afterwards, never missed. Read in a statement of its own, after the lock: on
    # PostgreSQL, a statement that waited for the lock would still see the activity as it was
    # when it started, before the draw it waited for.
    session_ids = {participant.session_id for participant in participants}
    list(Session.objects.select_for_update().filter(pk__in=session_ids).order_by("pk"))
    sessions = Session.objects.select_related("current_activity").in_bulk(session_ids)
    # A session deleted since its phones found it has none: their rows fail at the commit.
    opened = [
        (connection, sessions.get(participant.session_id))
        for connection, participant in zip(connections, participants, strict=True)
    ]
    placed = set()
    for (_connection, session), participant in zip(opened, participants, strict=True):
        activity = session and session.current_activity
        if not activity or activity.kind != Activity.Kind.PAIR_ROUND:
            continue
        if activity.place_late_joiner(participant):
            placed.add(session.pk)
        elif partners := activity.partners_of(participant):
            # Back after a dropped connection: its partners no longer show it as gone.
            live.after_commit(live.tell_partners, partners)
    for session_id in placed:
        # A late joiner is placed in a group; the group's phones show their new partner.
        live.after_commit(live.push_session, session_id)
    return opened


def _first_stage(
    participant: Participant, connection: Connection, session: Session | None
) -> tuple[int, str]:
    try:
        return connection.pk, live.render_phone_stage(participant, session=session)
    except Exception:
        connection.delete()  # not counted as connected: its socket will never close it
        raise


# `await open_socket(Opening(participant, language))`: its Connection's id and its stage, or
# raises why it could not be opened (ActionRefused, or a database error).
open_socket = batched(_open_sockets)
