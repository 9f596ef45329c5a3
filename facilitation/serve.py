"""Daphne without the client's address in its logs: `python -m facilitation.serve`, then the
same arguments as `daphne`.

The access log still has a line for every request and WebSocket event (time, request, status,
size); where daphne writes the client's address and port, this writes "-". The address still
reaches the application in the ASGI scope, which Attune never stores.
"""

from __future__ import annotations

import gc
import logging
import sys
from typing import Any

import autobahn.websocket.protocol
from channels.layers import get_channel_layer
from daphne.cli import CommandLineInterface
from daphne.http_protocol import HTTPFactory
from daphne.server import Server, twisted_loop
from django.core.exceptions import ImproperlyConfigured

# Every debug line of these two names the client's address ("HTTP GET request for [...]").
PROTOCOL_LOGGERS = ("daphne.http_protocol", "daphne.ws_protocol")
# Connections the kernel queues while the server is busy: Twisted's default of 50 drops the
# rest of a room whose phones all scan the QR code at once, and each drop costs a phone a
# retransmission of a second or more.
LISTEN_BACKLOG = 1024
# See load_asgi_app.
FULL_COLLECTION_AFTER = 1000
# How long a thread may keep the interpreter while another waits for it. Python's 5 ms suits
# threads that compute; here the event loop and the database thread mostly wait, for a socket
# or a query, and each time they wake they waited up to that long behind the request threads.
# With 1 ms, a room joining at once joined faster (docs/performance.md).
SWITCH_INTERVAL = 0.001

# Autobahn pretty-prints every new socket's settings for a debug line that is dropped unread:
# about 5 % of the server's time while a room joins at once (docs/performance.md). repr()
# says the same on one line, at a fraction of the cost.
autobahn.websocket.protocol.pformat = repr


def skip_twisted_access_line(factory: HTTPFactory, request: Any) -> None:
    """Twisted writes its own access line for every request, with the client's address and
    user agent, to its log, which the server below always discards: the line is not even
    formatted (2 % of the server's time while a room joins at once). Daphne's access log,
    without addresses, is the one Attune keeps."""


HTTPFactory.log = skip_twisted_access_line


class ServerWithoutClientAddresses(Server):
    def __init__(self, *args: Any, verbosity: int = 1, **kwargs: Any) -> None:
        # Above 1, daphne passes Twisted's own log on, and Twisted's access lines carry the
        # client's address and user agent; at 1 and below it discards that log. (The asyncio
        # debug mode of verbosity 3 goes too.)
        super().__init__(*args, verbosity=min(verbosity, 1), **kwargs)
        self.endpoints = [with_backlog(endpoint) for endpoint in self.endpoints]

    def log_action(self, protocol: str, action: str, details: dict[str, Any]) -> None:
        super().log_action(protocol, action, {**details, "client": "-"})


def with_backlog(endpoint: str) -> str:
    """A TCP or Unix socket endpoint description with a longer listen queue."""
    if endpoint.startswith(("tcp:", "unix:")) and "backlog=" not in endpoint:
        return f"{endpoint}:backlog={LISTEN_BACKLOG}"
    return endpoint


def hide_connection(record: logging.LogRecord) -> bool:
    """Daphne's "took too long to shut down" warning names the connection with its address."""
    if "for connection %s" in str(record.msg) and isinstance(record.args, tuple):
        record.args = (*record.args[:-1], "-")
    return True


class CommandLineWithoutClientAddresses(CommandLineInterface):
    server_class = ServerWithoutClientAddresses

    def run(self, args: list[str]) -> None:
        # With `--access-log -`, each line reaches a file or pipe as it happens, as daphne's
        # own log file does (it opens it line-buffered).
        sys.stdout.reconfigure(line_buffering=True)
        super().run(args)

    def load_asgi_app(self, asgi_app_path: str) -> Any:
        application = super().load_asgi_app(asgi_app_path)
        # Only now: importing the application set up Django's logging, which may reset these.
        for name in PROTOCOL_LOGGERS:
            logging.getLogger(name).setLevel(logging.INFO)
        logging.getLogger("daphne.server").addFilter(hide_connection)
        # Only now is Django set up (importing the application did it).
        from sessions import presence, retention

        try:
            presence.refuse_to_share_in_memory_layer()
        except ImproperlyConfigured as refusal:
            sys.exit(f"Attune did not start: {refusal}")
        twisted_loop.call_soon(presence.ensure_heartbeat)  # it beats from the start
        twisted_loop.call_soon(retention.ensure_sweep)  # the retention rule, hourly
        # Loaded now rather than by the first requests, which would all wait for it while a room
        # of phones joins: the channel layer, and with it redis-py (a tenth of a second).
        get_channel_layer()
        tune_interpreter()
        return application


def tune_interpreter() -> None:
    """Once the application is loaded: threads take turns every SWITCH_INTERVAL, and the
    garbage collector's full passes leave out what is loaded by now.

    The collector's full passes pause every socket of the process, longer the more phones are
    connected (180 ms with 1,000). What a started Django holds (about 100,000 objects) lives as
    long as the process: left out of them. And they come after FULL_COLLECTION_AFTER passes of
    the middle generation instead of Python's 10: one in a 1,000-phone benchmark run instead of
    twelve (docs/performance.md). The benchmark's bare reference application runs the same way.
    """
    sys.setswitchinterval(SWITCH_INTERVAL)
    gc.collect()  # what is garbage already is not frozen with the rest
    gc.freeze()
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, FULL_COLLECTION_AFTER)


if __name__ == "__main__":
    CommandLineWithoutClientAddresses.entrypoint()
