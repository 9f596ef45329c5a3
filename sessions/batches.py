"""Answers from many phones stored together: one transaction, one commit and the same few
statements (models.AnswerBatch) for every answer that arrived while the last batch was being
stored.

A commit waits for the database to make it durable (on PostgreSQL, a sync of its log to disk),
every answer to an activity counts in the same tally rows, and each statement is a round trip
to the database and a query for the ORM to build. A room answering at once shares them.

An answer that is refused (a closed activity, a bad value) is refused alone, and the others
are stored. If the batch fails in the database (at the commit, say), each answer is tried
again alone, so that one bad answer never costs the others theirs.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from channels.db import database_sync_to_async
from django.db import DatabaseError, transaction
from django.utils import translation

from . import live
from .models import Answer, AnswerBatch, AnswerRequest

# At most this many answers in one transaction, so no batch holds its locks for long.
MAX_BATCH = 200


@dataclass
class Write:
    """One phone's answer to store, and `after(answer)`, run once it is committed, which gives
    what to send back; both in the phone's `language` (its refusals and acknowledgement)."""

    request: AnswerRequest
    language: str
    after: Callable[[Answer], Any]
    done: asyncio.Future = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class Batches:
    """The answers of one event loop (one server process), stored a batch at a time."""

    def __init__(self) -> None:
        self.queue: list[Write] = []
        self.worker: asyncio.Task | None = None

    async def submit(self, write: Write) -> Any:
        self.queue.append(write)
        if self.worker is None or self.worker.done():
            self.worker = asyncio.get_running_loop().create_task(self._work())
        return await asyncio.shield(write.done)

    async def _work(self) -> None:
        while self.queue:
            batch, self.queue = self.queue[:MAX_BATCH], self.queue[MAX_BATCH:]
            try:
                outcomes = await database_sync_to_async(_store_batch)(batch)
            except Exception as error:  # the database thread itself failed: nothing stored
                outcomes = [(False, error)] * len(batch)
            for write, (ok, value) in zip(batch, outcomes, strict=True):
                if write.done.done():
                    continue
                if ok:
                    write.done.set_result(value)
                else:
                    write.done.set_exception(value)


def _store_batch(batch: list[Write]) -> list[tuple[bool, Any]]:
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
            _after(write, value) if ok else (False, value)
            for write, (ok, value) in zip(batch, added, strict=True)
        ]


def _add(answers: AnswerBatch, write: Write) -> tuple[bool, Any]:
    with translation.override(write.language):
        try:
            return True, answers.add(write.request)
        except DatabaseError:
            raise  # the transaction is lost: each answer is tried again alone
        except Exception as error:  # refused: nothing of it was written
            return False, error


def _after(write: Write, answer: Answer) -> tuple[bool, Any]:
    with translation.override(write.language):
        try:
            return True, write.after(answer)
        except Exception as error:
            return False, error


_batches: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Batches] = (
    weakref.WeakKeyDictionary()
)


async def store(request: AnswerRequest, language: str, after: Callable[[Answer], Any]) -> Any:
    """Store `request` in the next batch and return `after(answer)` once it is committed, or
    raise why it was not stored (ActionRefused, or a database error)."""
    loop = asyncio.get_running_loop()
    if loop not in _batches:
        _batches[loop] = Batches()
    return await _batches[loop].submit(Write(request, language, after))
