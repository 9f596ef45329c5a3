"""The benchmark's clients over real WebSockets: phones, the projector, the control view, and the
listeners of the bare reference application.

Phones run in a `PhoneGroup`: in the benchmark's own process, or, when one Python process cannot
keep up, split over worker processes (`RemotePhoneGroup`) that run the same methods.

Every timestamp is `time.monotonic()`, which on Linux is CLOCK_MONOTONIC: one clock for every
process on the machine, so the workers' times compare with the benchmark's own.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import inspect
import json
import multiprocessing
import random
import re
import secrets
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.typing import Origin

from .join import JoinFailed, ServerAddress, join_over_http

# What the pages' partials look like on the wire (templates/sessions/partials/).
PHONE_STAGE = 'id="phone-stage"'
ACK = re.compile(r'data-ack="([A-Za-z0-9_-]+)"')
# An error notice carries its message in a span; an empty notice clears an earlier one.
ERROR_NOTICE = re.compile(r'id="notice"[^>]*>\s*<span>(.*?)</span>', re.S)
OPEN_ACTIVITY = re.compile(r'name="activity"\s+value="(\d+)"')
# A phone's stage once the facilitator has closed answers; recorded in Phone.seen under this key.
ANSWERS_CLOSED = 'class="state locked"'
# The phone's own answer, shown checked on its stage.
OWN_CHOICE = 'value="{}" checked'
PROJECTOR_ANSWERED = re.compile(
    r'class="[^"]*\bprojector-answered\b[^"]*"[^>]*>\s*(?:<[^>]+>\s*)*(\d+)', re.S
)
PROJECTOR_JOINED = re.compile(r'class="projector-count"[^>]*>\s*<strong>(\d+)</strong>')

# A refused answer is sent again after this long (times 1 to 2, for jitter), as a phone would.
RETRY_DELAY = 0.5
# A socket that failed is opened again after a pause that doubles up to a limit (times 0.5 to 1,
# for jitter), as attune.js does; "not allowed here" is final.
RECONNECT_FIRST_DELAY = 0.5
RECONNECT_MAX_DELAY = 10.0
CLOSE_NOT_ALLOWED = 4403
# Reference listeners connect this many at a time, with a few tries each: their handshakes are
# not what is measured.
LISTENER_CONNECTS_AT_ONCE = 50
LISTENER_TRIES = 3


def now() -> float:
    return time.monotonic()


async def sleep_until(moment: float) -> None:
    delay = moment - now()
    if delay > 0:
        await asyncio.sleep(delay)


def describe(error: BaseException) -> str:
    """One failure as a short line, the same for every phone it happens to (to be counted)."""
    if isinstance(error, InvalidStatus):
        return f"WebSocket handshake: HTTP {error.response.status_code}"
    if isinstance(error, TimeoutError):
        return "timed out"
    if isinstance(error, JoinFailed):
        return str(error)
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


class Socket:
    """A WebSocket that reads every frame as it arrives and hands it to `on_frame` with the time.

    Every socket is read, also those whose frames do not matter: an unread socket would push back
    on the server's sends and slow down what is measured.
    """

    def __init__(self) -> None:
        self.websocket: ClientConnection | None = None
        self.reader: asyncio.Task[None] | None = None
        self.closing = False
        self.close_code: int | None = None
        self.close_error: str | None = None

    async def open(self, url: str, server: ServerAddress, cookie: str, timeout: float) -> None:
        self.closing, self.close_code, self.close_error = False, None, None
        self.websocket = await connect(
            url,
            origin=Origin(server.origin),
            additional_headers={"Cookie": cookie} if cookie else None,
            open_timeout=timeout,
            close_timeout=2,
            ping_interval=None,
            max_size=None,
            proxy=None,
            host=server.ip,
            port=server.port,
        )
        self.reader = asyncio.create_task(self._read(self.websocket))

    async def _read(self, websocket: ClientConnection) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for frame in websocket:
                if isinstance(frame, str):
                    self.on_frame(frame, now())
        if not self.closing:
            self.close_code = websocket.close_code
            self.close_error = f"closed by the server (code {self.close_code})"
        self.on_closed()

    def on_frame(self, frame: str, at: float) -> None:
        pass

    def on_closed(self) -> None:
        pass

    @property
    def is_open(self) -> bool:
        return self.reader is not None and not self.reader.done()

    async def send(self, message: dict[str, Any] | str) -> float:
        """Send a message now; the time it went."""
        assert self.websocket is not None
        text = message if isinstance(message, str) else json.dumps(message)
        sent_at = now()
        await self.websocket.send(text)
        return sent_at

    async def close(self) -> None:
        self.closing = True
        if self.websocket is not None:
            await self.websocket.close()
        if self.reader is not None:
            await self.reader


@dataclass
class AnswerRecord:
    client_id: str
    choice: str
    sent_at: float  # the first send; retries keep it
    acknowledged_at: float | None = None
    retries: int = 0
    failure: str | None = None


@dataclass(frozen=True)
class PhoneSpec:
    index: int
    server: ServerAddress
    join_code: str


@dataclass
class JoinRecord:
    started_at: float = 0.0
    http_done_at: float | None = None  # consent page, consent form and phone page loaded
    stage_at: float | None = None  # the first stage arrived on the socket
    error: str | None = None
    # Why each failed socket was retried.
    retries: list[str] = field(default_factory=list)


class Phone(Socket):
    """A phone: joins through the consent form, shows its stage, answers once and waits for the
    acknowledgement, resending the same message after an error notice as the page would."""

    def __init__(self, spec: PhoneSpec) -> None:
        super().__init__()
        self.spec = spec
        self.join = JoinRecord()
        self.stage_shown = asyncio.Event()
        # When each activity first showed up, and how large that frame was.
        self.seen: dict[str, float] = {}
        self.frame_bytes: dict[str, int] = {}
        self.answer: AnswerRecord | None = None
        self.notices: list[str] = []
        self.news = asyncio.Event()

    async def join_session(self, start_at: float, timeout: float) -> None:
        """Consent, then open the socket until the stage shows; a socket that fails is opened
        again after a pause, as attune.js does, until `timeout` seconds after the start."""
        await sleep_until(start_at)
        self.join.started_at = now()
        deadline = self.join.started_at + timeout
        server, code = self.spec.server, self.spec.join_code
        try:
            async with asyncio.timeout(timeout):
                cookie = await join_over_http(server, code)
        except Exception as error:  # one phone's failure is a result, not the end of the run
            self.join.error = describe(error)
            return
        self.join.http_done_at = now()
        url = f"{server.ws_url}/ws/join/{code}/"
        while True:
            self.stage_shown.clear()
            try:
                async with asyncio.timeout(max(0.0, deadline - now())):
                    await self.open(url, server, cookie, timeout)
                    await self.stage_shown.wait()
                if self.join.stage_at is not None:
                    return
                notice = f": {self.notices[-1]}" if self.notices else ""
                failure = f"{self.close_error or 'closed'} before its stage{notice}"
            except Exception as error:  # as above
                failure = describe(error)
            await self.close()
            if self.close_code == CLOSE_NOT_ALLOWED or now() >= deadline:
                self.join.error = failure
                return
            self.join.retries.append(failure)
            pause = RECONNECT_FIRST_DELAY * 2 ** (len(self.join.retries) - 1)
            pause = min(RECONNECT_MAX_DELAY, pause) * random.uniform(0.5, 1)  # noqa: S311
            await asyncio.sleep(min(pause, max(0.0, deadline - now())))

    def on_frame(self, frame: str, at: float) -> None:
        if self.join.stage_at is None and PHONE_STAGE in frame:
            self.join.stage_at = at
            self.stage_shown.set()
        for activity in OPEN_ACTIVITY.findall(frame):
            if activity not in self.seen:
                self.seen[activity] = at
                self.frame_bytes[activity] = len(frame.encode())
        if ANSWERS_CLOSED in frame and ANSWERS_CLOSED not in self.seen:
            self.seen[ANSWERS_CLOSED] = at
            answered = self.answer
            if (
                answered
                and answered.acknowledged_at
                and OWN_CHOICE.format(answered.choice) not in frame
            ):
                self.notices.append("answers closed, without this phone's own answer")
        answer = self.answer
        if answer and answer.acknowledged_at is None and answer.client_id in ACK.findall(frame):
            answer.acknowledged_at = at
            self.news.set()
        elif (notice := ERROR_NOTICE.search(frame)) and not ACK.search(frame):
            self.notices.append(html.unescape(notice.group(1)))
            self.news.set()

    def on_closed(self) -> None:
        self.stage_shown.set()
        self.news.set()

    async def send_answer(
        self, activity: str, choice: str, send_at: float, deadline: float
    ) -> None:
        """Answer at `send_at`, and wait for the acknowledgement until `deadline`."""
        await sleep_until(send_at)
        answer = self.answer = AnswerRecord(secrets.token_hex(8), choice, now())
        message = {
            "action": "answer",
            "activity": activity,
            "choice": choice,
            "client_id": answer.client_id,
        }
        while True:
            refusals = len(self.notices)
            self.news.clear()
            try:
                await self.send(message)
            except ConnectionClosed:
                answer.failure = self.close_error or "closed"
                return
            while answer.acknowledged_at is None and len(self.notices) == refusals and self.is_open:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.news.wait(), max(0.0, deadline - now()))
                self.news.clear()
                if now() >= deadline:
                    break
            if answer.acknowledged_at is not None:
                return
            if not self.is_open:
                answer.failure = self.close_error or "closed"
                return
            if now() >= deadline:
                answer.failure = "no acknowledgement before the timeout"
                return
            # Refused (busy, too many messages): the same message again in a moment.
            await asyncio.sleep(RETRY_DELAY * random.uniform(1, 2))  # noqa: S311 (jitter)
            if answer.acknowledged_at is not None:
                return
            answer.retries += 1


class View(Socket):
    """The projector or the control view: records the counts the projector shows."""

    def __init__(self) -> None:
        super().__init__()
        self.answered: list[tuple[float, int]] = []
        self.joined: list[tuple[float, int]] = []
        self.shown = asyncio.Event()

    def on_frame(self, frame: str, at: float) -> None:
        self.shown.set()
        if match := PROJECTOR_ANSWERED.search(frame):
            self.answered.append((at, int(match.group(1))))
        if match := PROJECTOR_JOINED.search(frame):
            self.joined.append((at, int(match.group(1))))

    def on_closed(self) -> None:
        self.shown.set()

    def answered_between(self, start: float, end: float = float("inf")) -> list[tuple[float, int]]:
        return [(at, count) for at, count in self.answered if start <= at < end]

    @property
    def latest_joined(self) -> int:
        return self.joined[-1][1] if self.joined else 0


class Listener(Socket):
    """A socket of the reference application: records when each marked message arrived."""

    def __init__(self) -> None:
        super().__init__()
        self.heard: dict[str, float] = {}

    def on_frame(self, frame: str, at: float) -> None:
        self.heard.setdefault(frame.partition(" ")[0], at)


async def until(condition: Any, timeout: float, interval: float = 0.02) -> bool:
    """Whether `condition()` held within `timeout` seconds."""
    deadline = now() + timeout
    while not condition():
        if now() >= deadline:
            return False
        await asyncio.sleep(interval)
    return True


class PhoneGroup:
    """The phones (and reference listeners) one process runs. Its methods take and return plain
    data, so that a worker process can run them for the benchmark (`RemotePhoneGroup`)."""

    def __init__(self, specs: list[PhoneSpec]) -> None:
        self.indexes = [spec.index for spec in specs]
        self.phones = [Phone(spec) for spec in specs]
        self.listeners: dict[int, Listener] = {}

    async def join(self, start_times: dict[int, float], timeout: float) -> dict[int, JoinRecord]:
        await asyncio.gather(
            *(phone.join_session(start_times[phone.spec.index], timeout) for phone in self.phones)
        )
        return {phone.spec.index: phone.join for phone in self.phones}

    async def join_reference(
        self, targets: dict[int, ServerAddress], start_times: dict[int, float], timeout: float
    ) -> dict[int, JoinRecord]:
        """As `join`, on the reference application (`targets`: each phone's server), with
        phones of their own that hang up once all have joined."""
        phones = [Phone(PhoneSpec(index, server, "REFERENCE")) for index, server in targets.items()]
        try:
            await asyncio.gather(
                *(phone.join_session(start_times[phone.spec.index], timeout) for phone in phones)
            )
        finally:
            await asyncio.gather(*(phone.close() for phone in phones))
        return {phone.spec.index: phone.join for phone in phones}

    def _joined(self) -> list[Phone]:
        return [phone for phone in self.phones if phone.join.stage_at is not None]

    async def activity_seen(self, activity: str, timeout: float) -> dict[int, float | None]:
        """When each joined phone first showed the activity, or ANSWERS_CLOSED (None: not
        within the timeout)."""
        joined = self._joined()
        await until(
            lambda: all(activity in phone.seen or not phone.is_open for phone in joined), timeout
        )
        return {phone.spec.index: phone.seen.get(activity) for phone in joined}

    def frame_bytes(self, activity: str) -> list[int]:
        return [
            phone.frame_bytes[activity] for phone in self.phones if activity in phone.frame_bytes
        ]

    async def answer(
        self, activity: str, plan: dict[int, tuple[float, str]], deadline: float
    ) -> list[AnswerRecord]:
        """Each planned phone answers (send time, choice); every answer once it has settled."""
        phones = [phone for phone in self.phones if phone.spec.index in plan]
        await asyncio.gather(
            *(
                phone.send_answer(activity, choice, send_at, deadline)
                for phone in phones
                for send_at, choice in [plan[phone.spec.index]]
            )
        )
        return [phone.answer for phone in phones if phone.answer is not None]

    def problems(self) -> list[str]:
        """What went wrong for these phones: error notices and sockets the server closed."""
        found = [notice for phone in self.phones for notice in phone.notices]
        return found + [
            phone.close_error for phone in self.phones if phone.close_error and not phone.join.error
        ]

    async def listen(self, targets: dict[int, ServerAddress], timeout: float) -> list[str]:
        """One reference listener per phone, on its target server; the errors of those that
        could not connect ("retried: ..." for those that did at a later try)."""
        limit = asyncio.Semaphore(LISTENER_CONNECTS_AT_ONCE)
        errors: list[str] = []

        async def connect_one(index: int, server: ServerAddress) -> None:
            for attempt in range(LISTENER_TRIES):
                listener = Listener()
                async with limit:
                    try:
                        await listener.open(f"{server.ws_url}/listen/", server, "", timeout)
                    except Exception as error:  # counted and reported, like a phone's
                        last = attempt == LISTENER_TRIES - 1
                        errors.append(("" if last else "retried: ") + describe(error))
                        continue
                self.listeners[index] = listener
                return

        await asyncio.gather(*(connect_one(index, server) for index, server in targets.items()))
        return errors

    async def heard(self, marker: str, timeout: float) -> list[float | None]:
        listeners = list(self.listeners.values())
        await until(lambda: all(marker in listener.heard for listener in listeners), timeout)
        return [listener.heard.get(marker) for listener in listeners]

    async def stop_listening(self) -> None:
        listeners, self.listeners = list(self.listeners.values()), {}
        await asyncio.gather(*(listener.close() for listener in listeners))

    def cpu_seconds(self) -> float:
        return time.process_time()

    async def hang_up(self) -> None:
        """Close every phone's socket."""
        await asyncio.gather(*(phone.close() for phone in self.phones))

    async def close(self) -> None:
        await self.stop_listening()
        await self.hang_up()


class RemotePhoneGroup:
    """A PhoneGroup in a worker process, for when one process cannot keep up with the phones.

    Spawned rather than forked: a fork would copy the benchmark's event loop, threads and Django.
    """

    def __init__(self, specs: list[PhoneSpec]) -> None:
        self.indexes = [spec.index for spec in specs]
        context = multiprocessing.get_context("spawn")
        self.connection, child = context.Pipe()
        self.process = context.Process(target=_work, args=(child, specs), name="bench-phones")
        self.process.start()
        child.close()

    async def _call(self, name: str, **arguments: Any) -> Any:
        self.connection.send((name, arguments))
        status, value = await asyncio.get_running_loop().run_in_executor(None, self.connection.recv)
        if status != "ok":
            raise RuntimeError(f"phone worker {self.process.pid}, {name}: {value}")
        return value

    async def join(self, start_times: dict[int, float], timeout: float) -> dict[int, JoinRecord]:
        return await self._call("join", start_times=start_times, timeout=timeout)

    async def join_reference(
        self, targets: dict[int, ServerAddress], start_times: dict[int, float], timeout: float
    ) -> dict[int, JoinRecord]:
        return await self._call(
            "join_reference", targets=targets, start_times=start_times, timeout=timeout
        )

    async def activity_seen(self, activity: str, timeout: float) -> dict[int, float | None]:
        return await self._call("activity_seen", activity=activity, timeout=timeout)

    async def frame_bytes(self, activity: str) -> list[int]:
        return await self._call("frame_bytes", activity=activity)

    async def answer(
        self, activity: str, plan: dict[int, tuple[float, str]], deadline: float
    ) -> list[AnswerRecord]:
        return await self._call("answer", activity=activity, plan=plan, deadline=deadline)

    async def problems(self) -> list[str]:
        return await self._call("problems")

    async def listen(self, targets: dict[int, ServerAddress], timeout: float) -> list[str]:
        return await self._call("listen", targets=targets, timeout=timeout)

    async def heard(self, marker: str, timeout: float) -> list[float | None]:
        return await self._call("heard", marker=marker, timeout=timeout)

    async def stop_listening(self) -> None:
        await self._call("stop_listening")

    async def hang_up(self) -> None:
        await self._call("hang_up")

    async def cpu_seconds(self) -> float:
        return await self._call("cpu_seconds")

    async def close(self) -> None:
        try:
            if self.process.is_alive():
                await self._call("close")
        finally:
            await asyncio.get_running_loop().run_in_executor(None, self.process.join, 10)
            if self.process.is_alive():
                self.process.kill()
                self.process.join()
            self.process.close()
            self.connection.close()


async def maybe_await(value: Any) -> Any:
    """A PhoneGroup method's result, whether it ran here (maybe plain) or in a worker."""
    return await value if inspect.isawaitable(value) else value


def _work(connection: Connection, specs: list[PhoneSpec]) -> None:
    asyncio.run(_serve(connection, specs))


async def _serve(connection: Connection, specs: list[PhoneSpec]) -> None:
    group = PhoneGroup(specs)
    loop = asyncio.get_running_loop()
    try:
        while True:
            try:
                name, arguments = await loop.run_in_executor(None, connection.recv)
            except EOFError:  # the benchmark is gone
                return
            try:
                value = await maybe_await(getattr(group, name)(**arguments))
                connection.send(("ok", value))
            except Exception as error:  # reported to the benchmark, which stops
                connection.send(("error", describe(error)))
            if name == "close":
                return
    finally:
        await group.close()
        connection.close()
