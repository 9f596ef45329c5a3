"""What the chaos tests need to break things on purpose.

- `Server`: a real server process on the test database, started, stopped, killed and restarted.
- `FaultProxy`: a TCP proxy in front of a service (Redis) that can cut it off and bring it back.
- `PhoneClient` and `ViewClient`: WebSocket clients that behave like the phone's and the
  projector's pages: they reconnect with backoff and jitter, and the phone resends its one
  unacknowledged answer with the same client id until the server acknowledges it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import re
import secrets
import signal
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO, TypeVar
from urllib.parse import urlsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.typing import Origin

from tests.conftest import (
    ARTIFACTS,
    ROOT,
    TEST_CHANNEL_PREFIX,
    _wait_until_serving,
    server_command,
)

PRESENCE_TIMEOUT = 2.0

# Servers -----------------------------------------------------------------------------------


@dataclass
class Server:
    """One server process on a fixed port; `restart` brings a new process up on the same port."""

    name: str
    port: int
    database_url: str
    redis_url: str
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0
    log_paths: list[Path] = field(default_factory=list)
    _log: TextIO | None = None

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start the process and wait until it answers HTTP. Blocking: run it in a thread."""
        assert self.process is None, f"{self.name} is already running"
        self.starts += 1
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / f"chaos-{self.name}-{self.starts}.log"
        self.log_paths.append(path)
        self._log = path.open("w")
        environment = {
            **os.environ,
            "DATABASE_URL": self.database_url,
            "REDIS_URL": self.redis_url,
            "CHANNEL_PREFIX": TEST_CHANNEL_PREFIX,
            # A stopped process's sockets stop counting as connected phones within seconds.
            "ATTUNE_PRESENCE_TIMEOUT": str(PRESENCE_TIMEOUT),
            "PYTHONUNBUFFERED": "1",
        }
        self.process = subprocess.Popen(  # noqa: S603 (a fixed command line)
            server_command(self.port),
            cwd=ROOT,
            env=environment,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        try:
            _wait_until_serving(self.http_url, self.process)
        except RuntimeError as error:
            self.stop(signal.SIGKILL)
            raise RuntimeError(f"{self.name} did not start ({error}): see {path}") from None

    def stop(self, how: signal.Signals = signal.SIGTERM, timeout: float = 10) -> int | None:
        """Stop the process (SIGTERM: a deploy; SIGKILL: a crash) and wait until it is gone."""
        process, self.process = self.process, None
        returncode = None
        if process is not None:
            if process.poll() is None:
                process.send_signal(how)
            try:
                returncode = process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                returncode = process.wait(timeout=timeout)
        if self._log is not None:
            self._log.close()
            self._log = None
        return returncode

    def log_text(self) -> str:
        return "".join(
            f"===== {path.name} =====\n{path.read_text(errors='replace')}"
            for path in self.log_paths
            if path.exists()
        )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# A TCP fault proxy --------------------------------------------------------------------------


class FaultProxy:
    """A TCP proxy that can cut a service off, as a crashed or restarting Redis would look.

    `cut()` closes every proxied connection and stops listening, so new connections are
    refused; `restore()` listens again on the same port. It runs its own event loop in a
    thread, so it keeps forwarding while the test's loop or thread is busy.
    """

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.port = 0
        self.connections_cut = 0
        self._links: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fault-proxy")

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        self._call(self._listen())
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def url_for(self, url: str) -> str:
        """`url` (redis://host:port/db) pointed at the proxy instead."""
        parts = urlsplit(url)
        credentials = parts.netloc.rpartition("@")[0]
        netloc = f"{credentials}@" if credentials else ""
        return parts._replace(netloc=f"{netloc}127.0.0.1:{self.port}").geturl()

    def cut(self) -> int:
        """Cut the service off; how many connections (both sides counted) were open."""
        before = self.connections_cut
        self._call(self._cut())
        return self.connections_cut - before

    def restore(self) -> None:
        self._call(self._listen())

    def close(self) -> None:
        if self._thread.is_alive():
            self._call(self._shut_down())
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
        self._loop.close()

    def _call(self, coroutine: Coroutine[Any, Any, None]) -> None:
        asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=10)

    async def _listen(self) -> None:
        if self._server is None:
            self._server = await asyncio.start_server(self._proxy, "127.0.0.1", self.port)
            self.port = self._server.sockets[0].getsockname()[1]

    async def _cut(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        self.connections_cut += len(self._links)
        for writer in list(self._links):
            _reset(writer)
        # Let the aborted transports close their sockets.
        await asyncio.sleep(0.05)

    async def _shut_down(self) -> None:
        # Connections accepted just before the listener closed still arrive: cut until none is
        # left, so that no socket outlives the loop.
        deadline = time.monotonic() + 2
        while True:
            await self._cut()
            others = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
            if not others or time.monotonic() > deadline:
                break
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)
        await asyncio.sleep(0.05)

    async def _proxy(
        self, client_reader: asyncio.StreamReader, client: asyncio.StreamWriter
    ) -> None:
        self._links.add(client)
        upstream = None
        try:
            upstream_reader, upstream = await asyncio.open_connection(*self.upstream)
            self._links.add(upstream)
            await asyncio.gather(_pipe(client_reader, upstream), _pipe(upstream_reader, client))
        except OSError:
            pass
        finally:
            for writer in (client, upstream):
                if writer is not None:
                    self._links.discard(writer)
                    _reset(writer)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        # The other side is done: pass its end on, as a close.
        if writer.can_write_eof() and not writer.is_closing():
            writer.write_eof()


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP reset: the other side learns at once that the connection is gone."""
    sock = writer.get_extra_info("socket")
    if sock is not None and sock.fileno() >= 0:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


# WebSocket clients --------------------------------------------------------------------------

ACK = re.compile(r'data-ack="([A-Za-z0-9_-]+)"')
# An error notice carries its message in a span; an empty notice clears an earlier one.
ERROR_NOTICE = re.compile(r'id="notice"[^>]*>\s*<span>(.*?)</span>', re.S)
OPEN_ACTIVITY = re.compile(r'name="activity"\s+value="(\d+)"')
CHECKED_CHOICES = re.compile(r'name="choice"\s+value="(\d+)"\s+checked')
PROJECTOR_TOTAL = re.compile(
    r'class="[^"]*\bprojector-answered\b[^"]*"[^>]*>\s*(?:<[^>]+>\s*)*(\d+)', re.S
)
CLOSE_NOT_ALLOWED = 4403


def new_client_id() -> str:
    return secrets.token_urlsafe(12)


class LiveClient:
    """A page's WebSocket: like the browser, it reconnects when the socket closes or a connect
    fails, after an exponential backoff with jitter, moving on to the next URL it knows.

    Everything it sees is recorded in `events`, to read when a test fails.
    """

    def __init__(
        self,
        name: str,
        urls: list[str],
        cookie: str,
        *,
        first_delay: float = 0.2,
        max_delay: float = 2.0,
    ) -> None:
        self.name = name
        self.urls = urls
        self.cookie = cookie
        self.first_delay = first_delay
        self.max_delay = max_delay
        self.url_index = 0
        self.connections = 0
        self.frames: list[tuple[int, str]] = []  # (connection number, frame)
        self.events: list[str] = []
        self.close_codes: list[int | None] = []
        self.refused = False
        self.connected = asyncio.Event()
        self._socket: ClientConnection | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._started = time.monotonic()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"client {self.name}")

    async def close(self) -> None:
        self._closing = True
        if self._socket is not None:
            await self._socket.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def log(self, text: str) -> None:
        self.events.append(f"{time.monotonic() - self._started:6.2f}s {text}")

    @property
    def url(self) -> str:
        return self.urls[self.url_index % len(self.urls)]

    async def send_json(self, message: dict[str, Any]) -> bool:
        """Send now if connected; False when not (the caller keeps it to send later)."""
        if self._socket is None:
            return False
        try:
            await self._socket.send(json.dumps(message))
        except ConnectionClosed:
            return False
        return True

    def frames_on_current_connection(self) -> list[str]:
        return [frame for number, frame in self.frames if number == self.connections]

    async def _run(self) -> None:
        failures = 0
        while not self._closing:
            url = self.url
            websocket: ClientConnection | None = None
            try:
                async with connect(
                    url,
                    origin=Origin("http://" + urlsplit(url).netloc),
                    additional_headers={"Cookie": self.cookie},
                    open_timeout=3,
                    close_timeout=1,
                    ping_interval=None,
                    proxy=None,
                ) as websocket:
                    self._socket = websocket
                    self.connections += 1
                    failures = 0
                    self.log(f"connected to {url}")
                    self.connected.set()
                    await self.on_open()
                    async for frame in websocket:
                        if isinstance(frame, str):
                            self.frames.append((self.connections, frame))
                            self.on_frame(frame)
                self._closed(websocket)
            except ConnectionClosed:
                self._closed(websocket)
            except InvalidStatus as error:
                self.log(f"handshake refused by {url}: HTTP {error.response.status_code}")
            except (OSError, InvalidHandshake, TimeoutError) as error:
                self.log(f"cannot connect to {url}: {type(error).__name__}: {error}")
            except Exception as error:  # a client that dies silently would only time out a test
                self.log(f"unexpected {type(error).__name__}: {error}")
            finally:
                self._socket = None
                self.connected.clear()
            if self.refused or self._closing:
                return
            # The next server, after a pause that grows with each failure in a row.
            self.url_index += 1
            delay = min(self.max_delay, self.first_delay * 2**failures)
            failures += 1
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))  # noqa: S311 (jitter)

    def _closed(self, websocket: ClientConnection | None) -> None:
        if websocket is None:
            self.log("closed during the handshake")
            return
        code = websocket.close_code
        self.close_codes.append(code)
        self.log(f"closed with code {code} {websocket.close_reason or ''}".rstrip())
        if code == CLOSE_NOT_ALLOWED:
            self.refused = True  # "not allowed here": the page stays closed too

    async def on_open(self) -> None:
        pass

    def on_frame(self, frame: str) -> None:
        pass

    def report(self) -> str:
        return f"{self.name}:\n  " + "\n  ".join(self.events)


@dataclass
class SentAnswer:
    client_id: str
    message: dict[str, Any]


class PhoneClient(LiveClient):
    """A phone: at most one answer waiting for its acknowledgement, resent with the same
    client id after a reconnect or an error notice, until the server acknowledges it."""

    def __init__(self, name: str, urls: list[str], token: str, **backoff: float) -> None:
        code = urls[0].rstrip("/").rsplit("/", 1)[-1]  # .../ws/join/<code>/
        super().__init__(name, urls, f"attune_participant_{code}={token}", **backoff)
        self.pending: SentAnswer | None = None
        self.sent: list[SentAnswer] = []
        self.acknowledged: list[str] = []
        self.errors: list[str] = []
        self._retry: asyncio.Task[None] | None = None

    async def answer(self, choice: str, activity: str | None = None) -> str:
        """Answer the open activity (a newer answer replaces one still waiting)."""
        activity = activity or self.activity_on_screen()
        assert activity, f"{self.name} shows no open activity"
        answer = SentAnswer(
            new_client_id(),
            {"action": "answer", "activity": activity, "choice": choice},
        )
        answer.message["client_id"] = answer.client_id
        self.pending = answer
        self.sent.append(answer)
        self.log(f"answers {choice} as {answer.client_id}")
        await self.send_json(answer.message)
        return answer.client_id

    @property
    def settled(self) -> bool:
        return self.pending is None

    def choice_sent_as(self, client_id: str) -> str:
        return next(sent.message["choice"] for sent in self.sent if sent.client_id == client_id)

    def stage(self) -> str:
        """The phone stage last shown on the current connection ("" before one arrives)."""
        stages = [frame for frame in self.frames_on_current_connection() if "phone-stage" in frame]
        return stages[-1] if stages else ""

    def open_activity(self) -> str | None:
        match = OPEN_ACTIVITY.search(self.stage())
        return match.group(1) if match else None

    def activity_on_screen(self) -> str | None:
        """The open activity of the last stage received on any connection: a page keeps
        showing it while its socket reconnects, and a person can tap an answer meanwhile."""
        stages = [frame for _number, frame in self.frames if "phone-stage" in frame]
        match = OPEN_ACTIVITY.search(stages[-1]) if stages else None
        return match.group(1) if match else None

    def checked_choices(self) -> list[str]:
        return CHECKED_CHOICES.findall(self.stage())

    async def on_open(self) -> None:
        if self.pending is not None:
            self.log(f"resends {self.pending.client_id}")
            await self.send_json(self.pending.message)

    def on_frame(self, frame: str) -> None:
        for client_id in ACK.findall(frame):
            self.acknowledged.append(client_id)
            self.log(f"ack {client_id}")
            if self.pending is not None and self.pending.client_id == client_id:
                self.pending = None
        error = ERROR_NOTICE.search(frame)
        if error and not ACK.search(frame):
            self.errors.append(error.group(1))
            self.log(f"error notice: {error.group(1)!r}")
            if self.pending is not None and (self._retry is None or self._retry.done()):
                self._retry = asyncio.create_task(self._resend_later(self.pending))

    async def _resend_later(self, answer: SentAnswer) -> None:
        await asyncio.sleep(self.first_delay * random.uniform(1, 2))  # noqa: S311 (jitter)
        if self.pending is answer:
            self.log(f"retries {answer.client_id}")
            await self.send_json(answer.message)

    async def close(self) -> None:
        if self._retry is not None:
            self._retry.cancel()
        await super().close()


class ViewClient(LiveClient):
    """The projector or the control view: it listens, and the control view sends actions."""

    def __init__(self, name: str, urls: list[str], session_cookie: str, **backoff: float) -> None:
        super().__init__(name, urls, f"sessionid={session_cookie}", **backoff)
        self.totals: list[tuple[float, int]] = []  # (time seen, answers shown)

    @property
    def total(self) -> int | None:
        """The number of answers the projector shows now."""
        return self.totals[-1][1] if self.totals else None

    def on_frame(self, frame: str) -> None:
        match = PROJECTOR_TOTAL.search(frame)
        if match:
            self.totals.append((time.monotonic(), int(match.group(1))))
            self.log(f"shows {match.group(1)} answers")


async def eventually(condition: Callable[[], bool], timeout: float) -> bool:
    """Whether `condition` holds within `timeout` seconds (checked every 50 ms)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


ClientT = TypeVar("ClientT", bound=LiveClient)


class Clients:
    """Every client a test opens, to close them all at the end and keep their stories."""

    def __init__(self) -> None:
        self.all: list[LiveClient] = []

    def phone(self, name: str, urls: list[str], token: str) -> PhoneClient:
        return self._started(PhoneClient(name, urls, token))

    def view(self, name: str, urls: list[str], session_cookie: str) -> ViewClient:
        return self._started(ViewClient(name, urls, session_cookie))

    def _started(self, client: ClientT) -> ClientT:
        client.start()
        self.all.append(client)
        return client

    async def close(self) -> None:
        await asyncio.gather(*(client.close() for client in self.all))

    def report(self) -> str:
        return "\n".join(client.report() for client in self.all)
