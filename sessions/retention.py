"""The retention rule: the raw answers of a session are deleted `retention_days` after it ends,
keeping the counts that met the anonymity threshold (Session.delete_raw_answers).

Every server process applies it once an hour in the background, from its start, so the promise
on each phone's consent screen holds without a cron job; `manage.py apply_retention` applies
it too. Safe to run from several processes at once: a session already done, or being done by
another at the same moment, is skipped.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections
from django.utils import timezone

from .models import Session

logger = logging.getLogger(__name__)

_sweep: asyncio.Task | None = None


def due(now: datetime | None = None) -> list[Session]:
    """The sessions whose raw answers are due for deletion, the longest ended first."""
    now = now or timezone.now()
    candidates = Session.objects.filter(
        status=Session.Status.ENDED, answers_deleted_at__isnull=True
    ).order_by("ended_at")
    return [session for session in candidates if session.retention_due(now)]


def apply(now: datetime | None = None) -> list[Session]:
    """Delete the raw answers of every session due; the sessions done."""
    now = now or timezone.now()
    sessions = due(now)
    for session in sessions:
        session.delete_raw_answers(now)
    return sessions


def ensure_sweep() -> None:
    """Apply the rule now and every ATTUNE_RETENTION_SWEEP_SECONDS (0: never), from this
    process's event loop."""
    global _sweep
    if not settings.ATTUNE_RETENTION_SWEEP_SECONDS:
        return
    loop = asyncio.get_running_loop()
    if _sweep is None or _sweep.done() or _sweep.get_loop() is not loop:
        _sweep = loop.create_task(_sweep_forever())


def _apply_in_its_own_thread() -> int:
    # Not on the thread that does the sockets' database work: a long deletion would hold up
    # every phone of the process.
    close_old_connections()
    try:
        return len(apply())
    finally:
        close_old_connections()


async def _sweep_forever() -> None:
    while True:
        try:
            if done := await sync_to_async(_apply_in_its_own_thread, thread_sensitive=False)():
                logger.info("Deleted the raw answers of %d session(s), as due", done)
        except Exception:
            logger.warning("The retention rule could not be applied", exc_info=True)
        await asyncio.sleep(settings.ATTUNE_RETENTION_SWEEP_SECONDS)
