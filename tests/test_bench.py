"""The load benchmark (bench/), small: 50 phones against a real server on the test database.

Timings depend on the machine and are not checked here; what must hold at any size is that
every answer the server acknowledged is stored once and counted once on the projector.
"""

from __future__ import annotations

import pytest

from bench.join_steps import measure_steps
from bench.load import Options, Progress, run_benchmark

pytestmark = pytest.mark.django_db(transaction=True)


async def test_it_counts_every_answer_of_fifty_phones_once(live_server_url):
    report = await run_benchmark(
        Options(urls=[live_server_url], phones=50, answer_window=2, timeout=20, seed=5),
        Progress(),
    )

    assert report["participants"] == 50
    assert report["errors"] == 0, report["error_samples"]
    assert report["answers_sent"] == 50
    assert report["answers_counted"] == 50
    assert report["lost"] == 0
    assert report["duplicated"] == 0
    # The measurements were all made (their values are not checked).
    assert report["processes"] == 1
    assert report["fanout_missing"] == 0
    assert report["close_fanout_missing"] == 0
    assert report["next_fanout_missing"] == 0
    assert report["reference_fanout_missing"] == 0
    assert report["reference_fanout_p99_ms"] is not None
    assert report["reference_join_failures"] == 0
    assert report["reference_join_p99_ms"] is not None
    assert report["answer_to_projector_p99_ms"] is not None
    assert report["answer_server_cpu_ms"] > 0


async def test_the_join_steps_are_each_measured_on_the_server(live_server_url):
    figures = await measure_steps(live_server_url, phones=10)

    steps = ("consent_page", "consent_form", "socket")
    assert all(figures[f"{step}_cpu_ms"] > 0 for step in steps), figures
    assert figures["join_cpu_ms"] == pytest.approx(
        sum(figures[f"{step}_cpu_ms"] for step in steps), abs=0.2
    )
