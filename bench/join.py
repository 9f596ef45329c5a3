"""A phone joining over HTTP as its browser does: the consent page, then the consent form, which
htmx posts and which answers with the phone page itself.

A small HTTP/1.1 client on asyncio streams, so that a thousand phones can join within a second
without a thread each and without a new dependency.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
from dataclasses import dataclass, field
from urllib.parse import urlencode, urlsplit

PARTICIPANT_COOKIE = "attune_participant"


def participant_cookie(code: str) -> str:
    """The cookie that holds a phone's token for the session with this code (one a session)."""
    return f"{PARTICIPANT_COOKIE}_{code}"


CSRF_COOKIE = "csrftoken"
CSRF_FIELD = re.compile(rb'name="csrfmiddlewaretoken"\s+value="([^"]+)"')
PHONE_PAGE = b'ws-connect="/ws/join/'  # the live phone view, which opens the socket


class JoinFailed(Exception):
    """The server did not let the phone join; the message says at which step and how."""


@dataclass(frozen=True)
class ServerAddress:
    """One server as the phones reach it: its URL, and the address it was resolved to once.

    Resolved once, not per phone: a thousand lookups of "localhost" would queue on the event
    loop's few resolver threads, and "localhost" may resolve to ::1 first while the server
    listens on 127.0.0.1 only.
    """

    url: str  # http://host:port
    ip: str
    port: int

    @property
    def netloc(self) -> str:
        return urlsplit(self.url).netloc

    @property
    def origin(self) -> str:
        return f"http://{self.netloc}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.netloc}"

    @classmethod
    def resolve(cls, url: str) -> ServerAddress:
        parts = urlsplit(url.rstrip("/"))
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"{url}: expected http://host:port")
        port = parts.port or 80
        errors = []
        for *_, address in socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM):
            try:
                with socket.create_connection(address[:2], timeout=3):
                    return cls(f"http://{parts.netloc}", address[0], port)
            except OSError as error:
                errors.append(f"{address[0]}: {error}")
        raise ValueError(f"{url}: no server answers ({'; '.join(errors)})")


@dataclass
class Response:
    status: int
    headers: list[tuple[str, str]]
    body: bytes
    closes: bool = False

    def header_values(self, name: str) -> list[str]:
        return [value for key, value in self.headers if key.lower() == name.lower()]

    def cookies(self) -> dict[str, str]:
        cookies = {}
        for line in self.header_values("set-cookie"):
            name, _, value = line.split(";", 1)[0].strip().partition("=")
            cookies[name] = value.strip('"')
        return cookies


@dataclass
class HttpConnection:
    """One keep-alive HTTP/1.1 connection, reopened when the server closes it."""

    server: ServerAddress
    reader: asyncio.StreamReader | None = None
    writer: asyncio.StreamWriter | None = None
    cookies: dict[str, str] = field(default_factory=dict)

    async def request(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> Response:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(
                self.server.ip, self.server.port
            )
        assert self.reader is not None
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.server.netloc}"]
        if self.cookies:
            lines.append("Cookie: " + "; ".join(f"{k}={v}" for k, v in self.cookies.items()))
        if body or method == "POST":
            lines.append(f"Content-Length: {len(body)}")
        lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        await self.writer.drain()
        response = await _read_response(self.reader)
        self.cookies.update(response.cookies())
        if response.closes:
            await self.close()
        return response

    async def close(self) -> None:
        writer, self.writer, self.reader = self.writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


async def _read_response(reader: asyncio.StreamReader) -> Response:
    status_line = await reader.readline()
    if not status_line:
        raise ConnectionError("the server closed the connection without a response")
    status = int(status_line.split(None, 2)[1])
    headers = []
    while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        headers.append((name.strip(), value.strip()))
    response = Response(status, headers, b"")
    connection = ",".join(response.header_values("connection")).lower()
    response.closes = "close" in connection
    if status in (204, 304) or 100 <= status < 200:
        return response
    if "chunked" in ",".join(response.header_values("transfer-encoding")).lower():
        chunks = []
        while size := int((await reader.readline()).split(b";")[0], 16):
            chunks.append(await reader.readexactly(size))
            await reader.readexactly(2)
        while (await reader.readline()) not in (b"\r\n", b"\n", b""):
            pass  # trailers
        response.body = b"".join(chunks)
    elif lengths := response.header_values("content-length"):
        response.body = await reader.readexactly(int(lengths[0]))
    else:
        response.body = await reader.read()
        response.closes = True
    return response


async def join_over_http(server: ServerAddress, code: str) -> str:
    """Consent to join the session with this code, as a new phone: the participant's cookie,
    as a Cookie header sends it."""
    connection = HttpConnection(server)
    path = f"/join/{code}/"
    try:
        await give_consent(connection, path, await open_consent_page(connection, path))
        return f"{participant_cookie(code)}={connection.cookies[participant_cookie(code)]}"
    finally:
        await connection.close()


async def open_consent_page(connection: HttpConnection, path: str) -> str:
    """The consent page: its form's CSRF token (the CSRF cookie comes with it)."""
    page = await connection.request("GET", path)
    if page.status != 200:
        raise JoinFailed(f"GET {path}: HTTP {page.status}")
    form_token = CSRF_FIELD.search(page.body)
    if form_token is None or CSRF_COOKIE not in connection.cookies:
        raise JoinFailed(f"GET {path}: no CSRF token in the consent page")
    return form_token.group(1).decode()


async def give_consent(connection: HttpConnection, path: str, form_token: str) -> None:
    """The consent form, posted by htmx (the form is boosted): the answer is the phone page,
    which opens the socket, and the participant cookie comes with it."""
    server = connection.server
    body = urlencode({"csrfmiddlewaretoken": form_token}).encode()
    consent = await connection.request(
        "POST",
        path,
        body,
        {
            "Content-Type": "application/x-www-form-urlencoded",
            "Origin": server.origin,
            "Referer": server.url + path,
            "HX-Request": "true",
            "HX-Boosted": "true",
            "HX-Current-URL": server.url + path,
        },
    )
    if consent.status != 200 or PHONE_PAGE not in consent.body:
        raise JoinFailed(f"POST {path}: HTTP {consent.status}, not the phone page")
    if not any(name.startswith(PARTICIPANT_COOKIE) for name in consent.cookies()):
        raise JoinFailed(f"POST {path}: no {PARTICIPANT_COOKIE} cookie")
