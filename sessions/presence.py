"""Which phones are connected now, across every server process.

Each open phone socket is a `Connection` row held by this process's `ServerProcess` row, and
this process beats every few seconds. A process that is killed or crashes cannot clean up; it
stops beating instead, and its connections stop counting after ATTUNE_PRESENCE_TIMEOUT.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket

from channels.db import database_sync_to_async
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from .models import ServerProcess

logger = logging.getLogger(__name__)

# This process, for as long as it runs.
SERVER_ID = secrets.token_hex(8)

_heartbeat: asyncio.Task | None = None


def ensure_heartbeat() -> None:
    """Keep this process beating, from the event loop that serves its sockets."""
    global _heartbeat
    loop = asyncio.get_running_loop()
    if _heartbeat is None or _heartbeat.done() or _heartbeat.get_loop() is not loop:
        _heartbeat = loop.create_task(_beat_forever())


def refuse_to_share_in_memory_layer() -> None:
    """When a server process starts: refuse to run beside another on the in-memory channel layer.

    That layer reaches only the sockets of its own process, so two processes on one database
    would split a room in two: phones on one would never see what the facilitator does on the
    other. Several processes need REDIS_URL.
    """
    for other in ServerProcess.objects.alive().exclude(pk=SERVER_ID):
        if not (_in_memory_layer() or other.in_memory_layer):
            continue
        if other.host == socket.gethostname() and other.pid and not _running(other.pid):
            continue  # left behind by a process that was stopped a moment ago
        raise ImproperlyConfigured(
            f"Another Attune server process is running on this database (on {other.host}, "
            f"process {other.pid}), and {'this one' if _in_memory_layer() else 'that one'} "
            "uses the in-memory channel layer, which cannot reach another process. Stop it, or "
            "set REDIS_URL for every process."
        )
    beat()


def beat() -> None:
    """This process is alive: its row, which its sockets' Connection rows hang on, is fresh."""
    ServerProcess.beat(SERVER_ID, **_about_this_process())


def _in_memory_layer() -> bool:
    return settings.CHANNEL_LAYERS["default"]["BACKEND"] == "channels.layers.InMemoryChannelLayer"


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _about_this_process() -> dict:
    return {"host": socket.gethostname(), "pid": os.getpid(), "in_memory_layer": _in_memory_layer()}


async def _beat_forever() -> None:
    while True:
        try:
            await database_sync_to_async(beat)()
        except Exception:
            logger.warning("The presence heartbeat could not reach the database", exc_info=True)
        await asyncio.sleep(settings.ATTUNE_PRESENCE_TIMEOUT / 3)
