"""The server processes seen from outside: which process listens on a port, its memory and CPU
(from /proc, Linux only), and the reference application started in Daphne processes of its own.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
TCP_LISTEN = "0A"
# The line that ends a traceback: "redis.exceptions.MaxConnectionsError: Too many connections".
EXCEPTION_LINE = re.compile(r"(?:[a-z_]\w*\.)*[A-Z]\w*(?:Error|Exception|Exit)\b(?!\s+inside)")


def listening_pids(ports: set[int]) -> list[int]:
    """The processes that hold a listening TCP socket on one of these ports."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            local_port = int(fields[1].rsplit(":", 1)[1], 16)
            if fields[3] == TCP_LISTEN and local_port in ports:
                inodes.add(f"socket:[{fields[9]}]")
    pids = set()
    for descriptors in Path("/proc").glob("[0-9]*/fd"):
        try:
            if any(os.readlink(fd) in inodes for fd in descriptors.iterdir()):
                pids.add(int(descriptors.parent.name))
        except OSError:  # gone meanwhile, or not ours to read
            continue
    return sorted(pids)


@dataclass(frozen=True)
class Usage:
    """Summed over processes: resident memory now and at its peak, and CPU time used so far."""

    rss_mb: float
    peak_rss_mb: float
    cpu_seconds: float


def usage(pids: list[int]) -> Usage:
    rss = peak = cpu = 0.0
    for pid in pids:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:  # the process ended
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        rss += int(fields.get("VmRSS", "0 kB").split()[0]) / 1024
        peak += int(fields.get("VmHWM", "0 kB").split()[0]) / 1024
        # After the command name in parentheses: utime and stime are fields 14 and 15.
        after_name = stat.rpartition(")")[2].split()
        cpu += (int(after_name[11]) + int(after_name[12])) / CLOCK_TICKS
    return Usage(rss, peak, cpu)


async def wait_until_idle(pids: list[int], timeout: float, interval: float = 0.25) -> bool:
    """Wait until the processes use under a tenth of a core each (the work queued by earlier
    steps is done), or `timeout` seconds; whether they went idle."""
    deadline = time.monotonic() + timeout
    before = usage(pids).cpu_seconds
    while time.monotonic() < deadline:
        await asyncio.sleep(interval)
        after = usage(pids).cpu_seconds
        if (after - before) / interval < 0.1 * max(1, len(pids)):
            return True
        before = after
    return False


def listen_drops() -> int:
    """Connections the kernel dropped because a listening socket's queue was full (machine-wide):
    each costs its client a SYN retransmission, one second or more."""
    try:
        lines = Path("/proc/net/netstat").read_text().splitlines()
    except OSError:
        return 0
    for names, values in zip(lines[::2], lines[1::2], strict=False):
        if names.startswith("TcpExt:"):
            counters = dict(zip(names.split()[1:], values.split()[1:], strict=True))
            return int(counters.get("ListenDrops", 0))
    return 0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class ReferenceServer:
    """bench/reference.py served by Daphne, with the channel layer Attune is configured with
    (REDIS_URL from the environment) under a key prefix of its own."""

    def __init__(self, prefix: str) -> None:
        self.port = free_port()
        self.prefix = prefix
        self.process: subprocess.Popen[bytes] | None = None
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 (closed in stop())

    def start(self, timeout: float = 30) -> None:
        """Start it and wait until it listens. Blocking: run it in a thread."""
        environment = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "bench.reference_settings",
            "CHANNEL_PREFIX": self.prefix,
        }
        self.process = subprocess.Popen(  # noqa: S603 (a fixed command line)
            [
                *(sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(self.port)),
                "bench.reference:application",
            ],
            cwd=ROOT,
            env=environment,
            stdout=subprocess.DEVNULL,
            stderr=self._log,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the reference server exited:\n{self.log_text()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"the reference server did not start:\n{self.log_text()}")

    def log_text(self) -> str:
        self._log.seek(0)
        return self._log.read().decode(errors="replace")[-4000:]

    def problems(self) -> list[str]:
        """The exceptions it logged: the last line of each traceback."""
        self._log.seek(0)
        lines = self._log.read().decode(errors="replace").splitlines()
        return [line[:160] for line in lines if EXCEPTION_LINE.match(line)]

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        self._log.close()
