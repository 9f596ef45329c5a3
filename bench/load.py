"""The load benchmark: phones join a live session over real WebSockets, the facilitator opens a
question, every phone answers; how long each step took, and whether every answer was counted.

    python -m bench.load --url http://127.0.0.1:8000 --phones 1000

It runs against servers that are already running (bench/run starts and stops them), and sets up
its own session with the Django ORM, so it needs the servers' DATABASE_URL (and REDIS_URL, for
the reference application's channel layer). Progress goes to stderr; the last line on stdout is
the result as JSON. bench/README.md says what each figure means.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import resource
import secrets
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from channels.db import database_sync_to_async
from django.conf import settings

from .join import ServerAddress
from .phones import (
    ANSWERS_CLOSED,
    AnswerRecord,
    JoinRecord,
    PhoneGroup,
    PhoneSpec,
    RemotePhoneGroup,
    View,
    maybe_await,
    now,
    until,
)
from .servers import ReferenceServer, listen_drops, listening_pids, usage, wait_until_idle

CHOICES = ("0", "1", "2")
# The reference application sends each socket as many bytes as the frame that brought the
# phones the question; this much when no phone got one.
REFERENCE_PAYLOAD_BYTES = 1100
# The reference's fan-out is timed this many times, after a first send that warms it up, and
# the median is kept: a single send's figure of 15-19 ms tripled whenever one of Python's full
# garbage collections (45-52 ms in these processes) fell into it.
REFERENCE_FANOUTS = 5
# How long the projector must keep its final count: a late push of an older count would show.
SETTLE_SECONDS = 1.0
# The figures the result line starts with; the others follow.
HEADLINE = (
    "participants",
    "processes",
    "join_p99_ms",
    "fanout_p99_ms",
    "answer_to_projector_p99_ms",
    "answers_sent",
    "answers_counted",
    "lost",
    "duplicated",
    "server_rss_mb",
    "reference_fanout_p99_ms",
    "fanout_ratio",
    "reference_join_p99_ms",
)

Group = PhoneGroup | RemotePhoneGroup


@dataclass
class Options:
    urls: list[str]
    phones: int = 1000
    # Phones starting to join per second; None: all of them within the same second.
    join_rate: float | None = None
    answer_window: float = 5.0
    # Seconds each step may take (joining, a fan-out, answering, the projector catching up).
    timeout: float = 120.0
    client_processes: int = 1
    server_pids: list[int] = field(default_factory=list)
    reference: bool = True
    seed: int | None = None


@dataclass(frozen=True)
class Setup:
    session_id: int
    join_code: str
    question_id: str
    next_question_id: str
    facilitator_cookie: str


def prepare_session() -> Setup:
    """A live session with two single-choice questions, and its facilitator signed in."""
    # Imported here: Django must be set up first, and bench.phones' worker processes import
    # this module without it.
    from django.contrib.auth import get_user_model
    from django.test import Client

    from sessions.models import Activity, Session

    user, created = get_user_model().objects.get_or_create(username="bench-facilitator")
    if created:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    session = Session.objects.create(facilitator=user, title="Load benchmark")
    question, next_question = (
        Activity.objects.create(
            session=session,
            kind=Activity.Kind.SINGLE_CHOICE,
            prompt=prompt,
            options=["Yes", "No", "Not sure"],
        )
        for prompt in ("Did you sleep well?", "Would you come again?")
    )
    session.start()
    client = Client()
    client.force_login(user)
    return Setup(
        session.pk,
        session.join_code,
        str(question.pk),
        str(next_question.pk),
        client.cookies[settings.SESSION_COOKIE_NAME].value,
    )


def stored_answers(question_id: str) -> tuple[set[str], int]:
    """The client ids of the question's stored answers, and how many rows are extra copies
    (more than one row for a participant)."""
    from sessions.models import Answer

    rows = list(
        Answer.objects.filter(activity_id=int(question_id), passed=False).values_list(
            "participant_id", "client_id"
        )
    )
    per_participant = Counter(participant for participant, _ in rows)
    extra = sum(count - 1 for count in per_participant.values())
    return {client_id for _, client_id in rows}, extra


def backends() -> dict[str, str]:
    from django.db import connection

    return {
        "layer": settings.CHANNEL_LAYERS["default"]["BACKEND"].rsplit(".", 1)[-1],
        "database": connection.vendor,
    }


# Figures -----------------------------------------------------------------------------------


def percentile(values: Sequence[float], share: float) -> float | None:
    """Nearest-rank percentile; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def milliseconds(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


def spread(name: str, seconds: Sequence[float]) -> dict[str, float | None]:
    return {
        f"{name}_p50_ms": milliseconds(percentile(seconds, 0.5)),
        f"{name}_p99_ms": milliseconds(percentile(seconds, 0.99)),
        f"{name}_max_ms": milliseconds(max(seconds, default=None)),
    }


def answer_to_projector(
    acknowledged: list[AnswerRecord], shown: list[tuple[float, int]]
) -> tuple[list[float], int]:
    """For the k-th acknowledged answer: from when it was sent until the projector first showed
    a count of at least k. Also how many answers the projector never got to."""
    delays = []
    frames = sorted(shown)
    frame = highest = 0
    reached_at = 0.0
    ordered = sorted(acknowledged, key=lambda answer: answer.acknowledged_at or 0)
    for k, answer in enumerate(ordered, start=1):
        while highest < k and frame < len(frames):
            reached_at, count = frames[frame]
            highest = max(highest, count)
            frame += 1
        if highest < k:
            return delays, len(ordered) - len(delays)
        # Answers are acknowledged in a slightly different order than they are stored, so the
        # count can reach k before the k-th acknowledged answer was even sent: no delay, then.
        delays.append(max(0.0, reached_at - answer.sent_at))
    return delays, 0


class Progress:
    def __init__(self) -> None:
        self.started = now()

    def __call__(self, message: str) -> None:
        print(f"[{now() - self.started:6.1f}s] {message}", file=sys.stderr, flush=True)


def quiet(message: str) -> None:
    pass


# The run -----------------------------------------------------------------------------------


def join_window(options: Options) -> float:
    """The seconds within which the phones start joining."""
    return options.phones / options.join_rate if options.join_rate else 1.0


def join_start_times(options: Options, indexes: Iterable[int]) -> dict[int, float]:
    """When each phone starts joining, from a moment from now: spread evenly over the window."""
    begin = now() + 0.1
    window = join_window(options)
    return {index: begin + window * index / options.phones for index in indexes}


def make_groups(options: Options, servers: list[ServerAddress], join_code: str) -> list[Group]:
    """Phones spread over the servers in turn, and over the client processes."""
    specs = [
        PhoneSpec(index, servers[index % len(servers)], join_code)
        for index in range(options.phones)
    ]
    if options.client_processes <= 1:
        return [PhoneGroup(specs)]
    processes = options.client_processes
    return [RemotePhoneGroup(specs[number::processes]) for number in range(processes)]


async def each(groups: list[Group], call: Callable[[Group], Any]) -> list[Any]:
    """`call` on every group at once; their results, in order."""
    return await asyncio.gather(*(maybe_await(call(group)) for group in groups))


async def collected(groups: list[Group], call: Callable[[Group], Any]) -> list[Any]:
    """`call` on every group at once; their lists, as one."""
    return [item for part in await each(groups, call) for item in part]


async def merged(groups: list[Group], call: Callable[[Group], Any]) -> dict[int, Any]:
    """`call` on every group at once; their dicts by phone, as one."""
    return {key: value for part in await each(groups, call) for key, value in part.items()}


async def measure_reference(
    options: Options,
    groups: list[Group],
    sockets: set[int],
    servers: int,
    payload_bytes: int,
    log: Callable[[str], None],
) -> dict[str, Any]:
    """As many phones as took part in Attune's run (`sockets`: their indexes) join the bare
    reference application, over as many processes as Attune's, then as many sockets listen
    for messages to all of them: one to warm up, then REFERENCE_FANOUTS timed."""
    # Several processes need a channel layer between them; the in-memory one is one process.
    count = servers if "CONFIG" in settings.CHANNEL_LAYERS["default"] else 1
    references = [ReferenceServer(f"bench-reference-{os.getpid()}") for _ in range(count)]
    try:
        await asyncio.gather(*(asyncio.to_thread(reference.start) for reference in references))
        addresses = [
            ServerAddress(f"http://127.0.0.1:{reference.port}", "127.0.0.1", reference.port)
            for reference in references
        ]
        pids = [reference.process.pid for reference in references if reference.process]
        log(f"reference: {len(sockets)} phones join {count} bare Channels process(es)")
        join_figures, join_errors = await join_reference(
            options, groups, {index: addresses[index % count] for index in sockets}, pids
        )
        log(
            f"reference join p99 {join_figures['reference_join_p99_ms']} ms, "
            f"{join_figures['reference_join_server_cpu_ms']} ms CPU per join"
        )
        errors = await collected(
            groups,
            lambda group: group.listen(
                {index: addresses[index % count] for index in group.indexes if index in sockets},
                options.timeout,
            ),
        )
        rss_mb = usage(pids).rss_mb
        await wait_until_idle(pids, 15)
        trigger = View()
        await trigger.open(f"{addresses[0].ws_url}/trigger/", addresses[0], "", options.timeout)
        timed: list[tuple[float | None, float | None]] = []  # each send's (p99, max)
        missing = 0
        try:
            # A first message warms the layer up (connections, scripts); the others are timed.
            for send in range(1 + REFERENCE_FANOUTS):
                marker = secrets.token_hex(8)
                payload = f"{marker} ".ljust(payload_bytes, "x")
                sent_at = await trigger.send(payload)
                heard = await collected(
                    groups, lambda group, marker=marker: group.heard(marker, options.timeout)
                )
                fanouts = [at - sent_at for at in heard if at is not None]
                if send:
                    missing = max(missing, len(heard) - len(fanouts))
                    figures = spread("reference_fanout", fanouts)
                    timed.append(
                        (figures["reference_fanout_p99_ms"], figures["reference_fanout_max_ms"])
                    )
        finally:
            await trigger.close()
            await each(groups, lambda group: group.stop_listening())
    finally:
        logged = [f"server: {line}" for reference in references for line in reference.problems()]
        await asyncio.gather(*(asyncio.to_thread(reference.stop) for reference in references))
    p99s = [p99 for p99, _ in timed if p99 is not None]
    median_p99 = statistics.median_low(p99s) if p99s else None
    log(f"reference fan-out p99 {median_p99} ms (the median of {p99s})")
    failed = [error for error in errors if not error.startswith("retried: ")]
    return {
        **join_figures,
        "reference_fanout_p99_ms": median_p99,
        "reference_fanout_p99s_ms": p99s,
        "reference_fanout_max_ms": max(
            (most for _, most in timed if most is not None), default=None
        ),
        "reference_fanout_missing": missing + len(failed),
        # The reference's own troubles: its sockets', and the exceptions its servers logged.
        "reference_errors": dict(Counter(join_errors + errors + logged).most_common(6)),
        "reference_sockets": len(sockets),
        "reference_processes": count,
        "reference_rss_mb": round(rss_mb, 1),
    }


async def join_reference(
    options: Options, groups: list[Group], targets: dict[int, ServerAddress], pids: list[int]
) -> tuple[dict[str, Any], list[str]]:
    """The phones join the reference application (`targets`: each one's server) as they
    joined Attune: the same pattern, the same requests. Its figures, and the joins' errors."""
    start_times = join_start_times(options, targets)
    before = usage(pids)
    joins: dict[int, JoinRecord] = await merged(
        groups,
        lambda group: group.join_reference(
            {index: targets[index] for index in group.indexes if index in targets},
            {index: start_times[index] for index in group.indexes if index in targets},
            options.timeout,
        ),
    )
    joined = [join for join in joins.values() if join.stage_at is not None]
    await wait_until_idle(pids, 15)
    cpu_seconds = usage(pids).cpu_seconds - before.cpu_seconds
    figures = {
        **spread("reference_join", [join.stage_at - join.started_at for join in joined]),
        "reference_join_server_cpu_ms": round(1000 * cpu_seconds / max(1, len(joined)), 1),
        "reference_join_failures": len(joins) - len(joined),
    }
    return figures, [f"join: {join.error}" for join in joins.values() if join.error]


def python_speed_ms() -> float:
    """How fast this machine runs Python now: the fastest of three runs of a fixed loop (a
    million additions), in milliseconds. Machines of the same kind have differed by two times
    (docs/performance.md): compare figures only between runs of a similar speed."""
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        total = 0
        for number in range(1_000_000):
            total += number
        best = min(best, time.perf_counter() - started)
    return round(best * 1000, 1)


async def run_benchmark(options: Options, log: Callable[[str], None] = quiet) -> dict[str, Any]:
    """Run the benchmark against the servers at `options.urls`; the figures, as a dict."""
    started = now()
    servers = [await asyncio.to_thread(ServerAddress.resolve, url) for url in options.urls]
    pids = options.server_pids or listening_pids({server.port for server in servers})
    if not pids:
        log("no server process found: memory and CPU are not measured")
    setup = await database_sync_to_async(prepare_session)()
    report: dict[str, Any] = {
        "phones": options.phones,
        "servers": len(servers),
        "processes": len(pids),
        "client_processes": max(1, options.client_processes),
        "join": f"{options.join_rate:g}/s" if options.join_rate else "burst",
        "answer_window_s": options.answer_window,
        # Other work on the machine shares its cores with the servers and the phones.
        "load_average": round(os.getloadavg()[0], 2),
        "machine_loop_ms": python_speed_ms(),
        **await database_sync_to_async(backends)(),
    }
    log(f"session {setup.session_id}, code {setup.join_code}, on {', '.join(options.urls)}")
    groups = make_groups(options, servers, setup.join_code)
    projector, control = View(), View()
    try:
        figures, participants = await measure_session(
            options, setup, servers, pids, groups, projector, control, log
        )
        report.update(figures)
        log("the phones hang up")
        await each(groups, lambda group: group.hang_up())
        if options.reference:
            # On the same machine: Attune's servers first finish what the phones left them.
            if not await wait_until_idle(pids, options.timeout):
                log("Attune's servers are still busy: the reference shares the CPU with them")
            payload_bytes = report.get("fanout_frame_bytes") or REFERENCE_PAYLOAD_BYTES
            report.update(
                await measure_reference(
                    options, groups, participants, len(servers), payload_bytes, log
                )
            )
        report["client_cpu_s"] = round(
            sum(await each(groups, lambda group: group.cpu_seconds()))
            + (time.process_time() if options.client_processes > 1 else 0),
            1,
        )
    finally:
        log("closing the sockets")
        await each(groups, lambda group: group.close())
        await projector.close()
        await control.close()
    if report.get("reference_fanout_p99_ms") and report.get("fanout_p99_ms") is not None:
        report["fanout_ratio"] = round(
            report["fanout_p99_ms"] / report["reference_fanout_p99_ms"], 1
        )
    report["elapsed_s"] = round(now() - started, 1)
    return {**{name: report[name] for name in HEADLINE if name in report}, **report}


async def measure_session(
    options: Options,
    setup: Setup,
    servers: list[ServerAddress],
    pids: list[int],
    groups: list[Group],
    projector: View,
    control: View,
    log: Callable[[str], None],
) -> tuple[dict[str, Any], set[int]]:
    """Join, open, answer, next: the figures, and the indexes of the phones that joined."""
    report: dict[str, Any] = {}
    problems: list[str] = []
    random_source = random.Random(options.seed)  # noqa: S311 (not a secret)
    first = servers[0]
    cookie = f"sessionid={setup.facilitator_cookie}"
    views = f"{first.ws_url}/ws/sessions/{setup.session_id}"
    await projector.open(f"{views}/projector/", first, cookie, options.timeout)
    await control.open(f"{views}/control/", first, cookie, options.timeout)
    await until(lambda: projector.shown.is_set() and control.shown.is_set(), options.timeout)
    await wait_until_idle(pids, 15)
    idle = usage(pids)
    drops_before = listen_drops()

    # Joining: the consent page, the consent form and the phone page over HTTP, then the
    # phone's socket, until its first stage.
    start_times = join_start_times(options, range(options.phones))
    log(f"{options.phones} phones join within {join_window(options):g} s")
    joins: dict[int, JoinRecord] = await merged(
        groups,
        lambda group: group.join(
            {index: start_times[index] for index in group.indexes}, options.timeout
        ),
    )
    joined = [join for join in joins.values() if join.stage_at is not None]
    problems += [join.error for join in joins.values() if join.error]
    report["participants"] = len(joined)
    report["join_failures"] = options.phones - len(joined)
    report.update(spread("join", [join.stage_at - join.started_at for join in joined]))
    report.update(
        spread(
            "join_http",
            [join.http_done_at - join.started_at for join in joins.values() if join.http_done_at],
        )
    )
    report["join_retries"] = sum(len(join.retries) for join in joins.values())
    retried = Counter(f"retried: {failure}" for join in joins.values() for failure in join.retries)
    log(
        f"{len(joined)} phones joined, {report['join_failures']} failed, "
        f"{report['join_retries']} sockets retried; "
        f"join p99 {report['join_p99_ms']} ms, max {report['join_max_ms']} ms"
    )
    # The projector counts everyone who got through the consent form; then the server settles.
    await until(lambda: projector.latest_joined >= len(joined), options.timeout, 0.1)
    await wait_until_idle(pids, options.timeout)
    report["listen_drops"] = listen_drops() - drops_before
    with_phones = usage(pids)
    # What a join costs the servers, whatever else the machine was doing: the steadier figure.
    report["join_server_cpu_ms"] = round(
        1000 * (with_phones.cpu_seconds - idle.cpu_seconds) / max(1, len(joined)), 1
    )

    # The facilitator opens the question: every phone shows it.
    opened_at = await control.send({"action": "open", "activity": setup.question_id})
    seen: dict[int, float | None] = await merged(
        groups, lambda group: group.activity_seen(setup.question_id, options.timeout)
    )
    arrivals = [at - opened_at for at in seen.values() if at is not None]
    report.update(spread("fanout", arrivals))
    report["fanout_missing"] = len(seen) - len(arrivals)
    frame_sizes = await collected(groups, lambda group: group.frame_bytes(setup.question_id))
    report["fanout_frame_bytes"] = percentile(frame_sizes, 0.5)
    log(
        f"question opened: {len(arrivals)} phones show it; "
        f"fan-out p99 {report['fanout_p99_ms']} ms, max {report['fanout_max_ms']} ms"
    )
    await wait_until_idle(pids, options.timeout)
    before_answers = usage(pids)

    # Every phone that shows it answers once, at a random moment within the answer window.
    begin = now() + 0.2
    plan = {
        index: (
            begin + random_source.uniform(0, options.answer_window),
            random_source.choice(CHOICES),
        )
        for index, at in sorted(seen.items())
        if at is not None
    }
    deadline = begin + options.answer_window + options.timeout
    log(f"{len(plan)} phones answer within {options.answer_window:g} s")
    answers: list[AnswerRecord] = await collected(
        groups,
        lambda group: group.answer(
            setup.question_id,
            {index: plan[index] for index in group.indexes if index in plan},
            deadline,
        ),
    )
    acknowledged = [answer for answer in answers if answer.acknowledged_at is not None]
    problems += [answer.failure for answer in answers if answer.failure]
    report.update(
        spread(
            "answer_ack",
            [(answer.acknowledged_at or 0) - answer.sent_at for answer in acknowledged],
        )
    )
    log(
        f"{len(acknowledged)} of {len(answers)} answers acknowledged; "
        f"ack p99 {report['answer_ack_p99_ms']} ms"
    )

    # The projector catches up with every acknowledged answer, and keeps showing it.
    def shown() -> list[tuple[float, int]]:
        return projector.answered_between(opened_at)

    await until(
        lambda: max((count for _, count in shown()), default=0) >= len(acknowledged),
        options.timeout,
        0.05,
    )
    await asyncio.sleep(SETTLE_SECONDS)
    delays, never_shown = answer_to_projector(acknowledged, shown())
    report.update(spread("answer_to_projector", delays))
    stored, extra_rows = await database_sync_to_async(stored_answers)(setup.question_id)
    acknowledged_ids = {answer.client_id for answer in acknowledged}
    counted = shown()[-1][1] if shown() else 0
    report.update(
        {
            "answers_sent": len({answer.client_id for answer in answers}),
            "answers_acknowledged": len(acknowledged_ids),
            "answers_stored": len(stored),
            "answers_counted": counted,
            "answers_never_shown": never_shown,
            "lost": len(acknowledged_ids - stored),
            "duplicated": extra_rows + max(0, counted - len(acknowledged_ids)),
            "stored_unacknowledged": len(stored - acknowledged_ids),
            "retries": sum(answer.retries for answer in answers),
        }
    )
    log(
        f"projector shows {counted}; stored {len(stored)}; lost {report['lost']}, "
        f"duplicated {report['duplicated']}; "
        f"answer to projector p99 {report['answer_to_projector_p99_ms']} ms"
    )
    loaded = usage(pids)
    # What an answer costs the servers (its share of the projector's pushes included).
    report["answer_server_cpu_ms"] = round(
        1000 * (loaded.cpu_seconds - before_answers.cpu_seconds) / max(1, len(acknowledged)), 2
    )

    # The facilitator closes answers: every phone, which has answered, says so.
    await wait_until_idle(pids, options.timeout)
    closed_at = await control.send({"action": "lock_answers"})
    seen_closed = await merged(
        groups, lambda group: group.activity_seen(ANSWERS_CLOSED, options.timeout)
    )
    closed_arrivals = [at - closed_at for at in seen_closed.values() if at is not None]
    report.update(spread("close_fanout", closed_arrivals))
    report["close_fanout_missing"] = len(seen_closed) - len(closed_arrivals)
    log(f"answers closed: fan-out p99 {report['close_fanout_p99_ms']} ms")

    # "Next": the second question, to phones that have answered and a session with answers.
    await wait_until_idle(pids, options.timeout)
    next_opened_at = await control.send({"action": "open", "activity": setup.next_question_id})
    seen_next = await merged(
        groups, lambda group: group.activity_seen(setup.next_question_id, options.timeout)
    )
    next_arrivals = [at - next_opened_at for at in seen_next.values() if at is not None]
    report.update(spread("next_fanout", next_arrivals))
    report["next_fanout_missing"] = len(seen_next) - len(next_arrivals)
    log(f"next question: fan-out p99 {report['next_fanout_p99_ms']} ms")

    problems += await collected(groups, lambda group: group.problems())
    problems += [view.close_error for view in (projector, control) if view.close_error]
    report.update(
        {
            "errors": len(problems),
            "error_samples": dict((Counter(problems) + retried).most_common(8)),
            "server_rss_idle_mb": round(idle.rss_mb, 1),
            "server_rss_joined_mb": round(with_phones.rss_mb, 1),
            "server_rss_mb": round(loaded.rss_mb, 1),
            "server_rss_peak_mb": round(loaded.peak_rss_mb, 1),
            "server_cpu_s": round(loaded.cpu_seconds - idle.cpu_seconds, 1),
        }
    )
    return report, {index for index, join in joins.items() if join.stage_at is not None}


# The command line --------------------------------------------------------------------------


def parse_options(argv: list[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m bench.load",
        description="Simulate phones joining and answering a live Attune session over real "
        "WebSockets, against running servers; print the figures as one line of JSON.",
    )
    parser.add_argument(
        "--url",
        action="append",
        dest="urls",
        metavar="URL",
        help="a server, e.g. http://127.0.0.1:8000; give it once per process (phones are "
        "spread over them; the projector and control view use the first)",
    )
    parser.add_argument("--phones", type=int, default=1000, help="phones to simulate (1000)")
    joining = parser.add_mutually_exclusive_group()
    joining.add_argument(
        "--join-burst",
        action="store_true",
        help="every phone starts joining within the same second (the default)",
    )
    joining.add_argument(
        "--join-rate", type=float, metavar="PER_SECOND", help="phones starting to join per second"
    )
    parser.add_argument(
        "--answer-window",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="answers are sent at random moments within this many seconds (5)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=120.0,
        metavar="SECONDS",
        help="how long each step may take before the benchmark moves on (120)",
    )
    parser.add_argument(
        "--client-processes",
        type=int,
        default=1,
        metavar="K",
        help="run the phones in K worker processes instead of this one (1)",
    )
    parser.add_argument(
        "--server-pids",
        action="append",
        default=[],
        metavar="PID,...",
        help="the server processes to measure (default: those listening on the URLs' ports)",
    )
    parser.add_argument(
        "--no-reference",
        action="store_true",
        help="skip the bare Channels application's fan-out",
    )
    parser.add_argument("--seed", type=int, help="for the answers' times and choices")
    args = parser.parse_args(argv)
    if args.phones < 1:
        parser.error("--phones must be at least 1")
    if args.join_rate is not None and args.join_rate <= 0:
        parser.error("--join-rate must be positive")
    return Options(
        urls=args.urls or ["http://127.0.0.1:8000"],
        phones=args.phones,
        join_rate=args.join_rate,
        answer_window=args.answer_window,
        timeout=args.timeout,
        client_processes=args.client_processes,
        server_pids=[int(pid) for pids in args.server_pids for pid in pids.split(",") if pid],
        reference=not args.no_reference,
        seed=args.seed,
    )


def raise_open_file_limit() -> None:
    """Each phone is one open socket (two, briefly, while it joins)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def main(argv: list[str] | None = None) -> None:
    options = parse_options(argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "facilitation.settings")
    import django

    django.setup()
    raise_open_file_limit()
    report = asyncio.run(run_benchmark(options, Progress()))
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    main()
