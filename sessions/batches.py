"""Answers from many phones stored together: one transaction, and one commit, for every answer
that arrived while the last batch was being stored.

A commit waits for the database to make it durable (on PostgreSQL, a sync of its log to disk),
and every answer to an activity counts in the same tally rows, so answers committed one by one
queue behind each other's commits. A room answering at once instead shares a few commits.

Each answer runs in a savepoint of its own: one that is refused (a closed activity, a bad
value) rolls back alone, and the others are stored. If the commit itself fails, each answer is
tried again alone, so that one bad answer never costs the others theirs.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from channels.db import database_sync_to_async
from django.db import DatabaseError, transaction

# At most this many answers in one transaction, so no batch holds its locks for long.
MAX_BATCH = 200


@dataclass
class Write:
    """One phone's message to store: `store()` runs inside the batch's transaction (and may
    raise to refuse it); `after()` runs once it is committed and gives what to send back."""

    store: Callable[[], Any]
    after: Callable[[Any], Any]
    done: asyncio.Future = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class Batches:
    """The writes of one event loop (one server process), stored a batch at a time."""

    def __init__(self) -> None:
        self.queue: list[Write] = []
        self.worker: asyncio.Task | None = None

    async def submit(self, store: Callable[[], Any], after: Callable[[Any], Any]) -> Any:
        write = Write(store, after)
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
    """Store every write of the batch in one transaction; (True, result) or (False, error)
    for each, in order."""
    try:
        with transaction.atomic():
            stored = [_in_savepoint(write) for write in batch]
    except DatabaseError as error:
        if len(batch) == 1:
            return [(False, error)]
        # The commit failed (a deferred constraint of one write, say): each on its own.
        return [_store_alone(write) for write in batch]
    return [
        _after(write, value) if ok else (False, value)
        for write, (ok, value) in zip(batch, stored, strict=True)
    ]


def _in_savepoint(write: Write) -> tuple[bool, Any]:
    try:
        with transaction.atomic():
            return True, write.store()
    except Exception as error:  # refused or failed: only this write is rolled back
        return False, error


def _store_alone(write: Write) -> tuple[bool, Any]:
    try:
        with transaction.atomic():
            value = write.store()
    except Exception as error:
        return False, error
    return _after(write, value)


def _after(write: Write, value: Any) -> tuple[bool, Any]:
    try:
        return True, write.after(value)
    except Exception as error:
        return False, error


_batches: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Batches] = (
    weakref.WeakKeyDictionary()
)


async def store(store: Callable[[], Any], after: Callable[[Any], Any]) -> Any:
    """Run `store()` in the next batch's transaction and `after(result)` once it committed;
    return what `after` returned, or raise what either raised."""
    loop = asyncio.get_running_loop()
    if loop not in _batches:
        _batches[loop] = Batches()
    return await _batches[loop].submit(store, after)
