"""What each step of a join costs a running server: phones join one after another, step by step
(every phone's consent page, then every phone's consent form, which answers with the phone page,
then every phone's socket until its first stage), and the server's CPU time is read before and
after each step. One phone at a time, so nothing queues: the figures are the work itself.

    python -m bench.join_steps --url http://127.0.0.1:8000 --phones 200

Run it with the server's DATABASE_URL: it sets up its own live session, as bench.load does.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from collections.abc import Awaitable, Callable
from typing import Any

import django
from channels.db import database_sync_to_async
from websockets.asyncio.client import connect
from websockets.typing import Origin

from .join import (
    HttpConnection,
    ServerAddress,
    give_consent,
    open_consent_page,
    participant_cookie,
)
from .load import prepare_session
from .phones import PHONE_STAGE
from .servers import listening_pids, usage, wait_until_idle


async def measure_steps(url: str, phones: int) -> dict[str, Any]:
    """The server's CPU milliseconds per phone for each step of a join."""
    server = ServerAddress.resolve(url)
    pids = listening_pids({server.port})
    if not pids:
        raise RuntimeError(f"no process listens on port {server.port} of this machine")
    setup = await database_sync_to_async(prepare_session)()
    path = f"/join/{setup.join_code}/"
    connections = [HttpConnection(server) for _ in range(phones)]
    figures: dict[str, Any] = {"phones": phones}

    async def step(name: str, one: Callable[[HttpConnection], Awaitable[Any]]) -> list[Any]:
        await wait_until_idle(pids, 10)
        before = usage(pids).cpu_seconds
        results = [await one(connection) for connection in connections]
        await wait_until_idle(pids, 10)
        figures[f"{name}_cpu_ms"] = round(1000 * (usage(pids).cpu_seconds - before) / phones, 1)
        return results

    form_tokens = iter(
        await step("consent_page", lambda connection: open_consent_page(connection, path))
    )
    await step("consent_form", lambda connection: give_consent(connection, path, next(form_tokens)))
    await asyncio.gather(*(connection.close() for connection in connections))

    sockets = []
    cookie = participant_cookie(setup.join_code)

    async def socket(connection: HttpConnection) -> None:
        opened = await connect(
            f"{server.ws_url}/ws/join/{setup.join_code}/",
            origin=Origin(server.origin),
            additional_headers={"Cookie": f"{cookie}={connection.cookies[cookie]}"},
        )
        sockets.append(opened)
        while PHONE_STAGE not in str(await opened.recv()):
            pass

    try:
        await step("socket", socket)
    finally:
        await asyncio.gather(*(opened.close() for opened in sockets))
    figures["join_cpu_ms"] = round(
        sum(value for key, value in figures.items() if key.endswith("_cpu_ms")), 1
    )
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(
        description="What each step of a join costs a running Attune server, one phone at a time."
    )
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="the server")
    parser.add_argument("--phones", type=int, default=200, help="phones to join (200)")
    args = parser.parse_args()
    if args.phones < 1:
        parser.error("--phones must be at least 1")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "facilitation.settings")
    django.setup()
    print(json.dumps(asyncio.run(measure_steps(args.url, args.phones))))


if __name__ == "__main__":
    main()
