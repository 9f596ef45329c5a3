"""Recurring groups as a facilitator meets them: the trend across sessions, attendance, and
keeping, attaching and deleting groups."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.urls import reverse

from sessions.models import Activity, Group, Member, Participant, Session
from sessions.trends import CIRCLE, Axes, Figure, Series, SessionRow, attendance_chart, group_trend
from tests.conftest import add_activity
from tests.test_views import answer_with, page

Kind = Activity.Kind
CONNECTED = "How connected do you feel right now?"


def ended_session(
    group: Group, title: str, day: int, check_in: list[int], check_out: list[int], peak: int
) -> Session:
    """A session of `group` on March `day`, 2025, with a check-in and a check-out scale
    answered by one phone per value."""
    session = Session.objects.create(facilitator=group.facilitator, title=title, group=group)
    before = add_activity(session, Kind.SCALE, CONNECTED, measure="connectedness")
    add_activity(session, Kind.SINGLE_CHOICE, "Did you sleep well?")
    after = add_activity(session, Kind.SCALE, CONNECTED, measure="connectedness")
    session.start()
    people = [session.add_participant()[0] for _ in check_in]
    answer_with(session, before, people, [{"value": str(value)} for value in check_in])
    answer_with(session, after, people, [{"value": str(value)} for value in check_out])
    session.end()
    # The peak is counted from open sockets while live; these phones never had one.
    started = datetime(2025, 3, day, 18, 30, tzinfo=UTC)
    Session.objects.filter(pk=session.pk).update(started_at=started, peak_present=peak)
    return session


@pytest.fixture
def group(facilitator) -> Group:
    return Group.objects.create(facilitator=facilitator, name="Tuesday evening circle")


@pytest.fixture
def circle(group) -> list[Session]:
    """Three ended sessions; the second had two people, under the threshold of three."""
    return [
        ended_session(group, "First evening", 4, [4, 5, 6, 5], [6, 7, 8, 7], peak=4),
        ended_session(group, "Second evening", 11, [3, 9], [5, 9], peak=2),
        ended_session(group, "Third evening", 18, [2, 4, 6], [5, 5, 8], peak=3),
    ]


@pytest.fixture
def signed_in(client, facilitator):
    client.force_login(facilitator)
    return client


# The trend -----------------------------------------------------------------------------------


def test_the_trend_has_each_sessions_check_in_and_check_out_in_date_order(group, circle):
    trend = group_trend(group)

    assert [row.session.title for row in trend.sessions] == [
        "First evening",
        "Second evening",
        "Third evening",
    ]
    [connectedness] = trend.measures
    assert connectedness.name == "Connectedness"
    assert [(r.check_in, r.check_out) for r in connectedness.readings] == [
        (Figure(5.0, 0.7), Figure(7.0, 0.7)),
        (Figure(hidden=True), Figure(hidden=True)),
        (Figure(4.0, 1.6), Figure(6.0, 1.4)),
    ]


def test_the_session_under_the_threshold_is_a_gap_without_numbers(group, circle):
    chart = group_trend(group).measures[0].chart

    for series in chart.series:
        assert [marker is None for marker in series.markers] == [False, True, False]
        assert series.lines == []  # no line is drawn across the hidden session
    # Its answers (3 and 9, 5 and 9) show nowhere, not even in the tooltips.
    titles = [marker.title for series in chart.series for marker in series.markers if marker]
    assert titles == [
        "Check-in, 4 Mar 2025: mean 5.0, spread 0.7",
        "Check-in, 18 Mar 2025: mean 4.0, spread 1.6",
        "Check-out, 4 Mar 2025: mean 7.0, spread 0.7",
        "Check-out, 18 Mar 2025: mean 6.0, spread 1.4",
    ]


def test_a_series_joins_runs_of_shown_sessions_and_breaks_at_a_gap(group, circle):
    rows = group_trend(group).sessions
    axes = Axes([*rows, rows[0]], 1, 10, 1)
    figures = [Figure(5.0, 1.0), Figure(hidden=True), Figure(3.0, 0.5), Figure(8.0, 0.0)]

    series = Series(axes, "Check-in", "check-in", CIRCLE, 0, figures)

    third, fourth = series.markers[2:]
    assert series.lines == [f"{third.x},{third.y} {fourth.x},{fourth.y}"]


def test_the_scale_chart_spans_the_scale_and_the_spread_line_one_spread_each_way(group, circle):
    axes = group_trend(group).measures[0].chart.axes
    first = group_trend(group).measures[0].chart.series[0].markers[0]

    assert [tick.label for tick in axes.value_ticks] == [str(n) for n in range(1, 11)]
    assert axes.y(1) == axes.bottom
    assert axes.y(10) == axes.top
    assert (first.y, first.low, first.high) == (axes.y(5.0), axes.y(4.3), axes.y(5.7))


def test_attendance_is_a_bar_of_joined_and_a_mark_of_the_peak_per_session(group, circle):
    trend = group_trend(group)
    chart = trend.attendance

    assert [(row.joined, row.peak_present) for row in trend.sessions] == [(4, 4), (2, 2), (3, 3)]
    assert [tick.label for tick in chart.axes.value_ticks] == ["0", "1", "2", "3", "4"]
    full = chart.axes.bottom - chart.axes.top
    assert [bar.height for bar in chart.bars] == [full, full / 2, full * 3 / 4]
    assert [bar.peak_y for bar in chart.bars] == [bar.y for bar in chart.bars]


def test_attendance_ticks_stay_few_for_a_big_room(group):
    row = SessionRow(Session(started_at=datetime(2025, 3, 4, tzinfo=UTC)), 37, 30)

    axes = attendance_chart([row]).axes

    assert [tick.label for tick in axes.value_ticks] == ["0", "10", "20", "30", "40"]


def test_a_session_without_the_scales_is_not_asked_rather_than_hidden(group, circle):
    plain = Session.objects.create(facilitator=group.facilitator, title="Walk", group=group)
    plain.start()
    plain.end()

    reading = group_trend(group).measures[0].readings[-1]

    assert reading.row.session == plain
    assert (reading.check_in.label, reading.check_out.label) == ("not asked", "not asked")


# The group page -----------------------------------------------------------------------------


def test_the_group_page_shows_the_sessions_the_charts_and_their_numbers(signed_in, group, circle):
    html = page(signed_in.get(reverse("group_detail", args=[group.pk])))

    for session in circle:
        assert f'href="{reverse("session_summary", args=[session.pk])}"' in html
    assert html.count('role="img"') == 2  # the trend chart and the attendance chart
    assert "<title>Connectedness at check-in and check-out" in html
    assert "<title>Check-in, 4 Mar 2025: mean 5.0, spread 0.7</title>" in html
    assert '<td class="number">5.0 ± 0.7</td><td class="number">7.0 ± 0.7</td>' in html
    assert '<td class="number">4.0 ± 1.6</td><td class="number">6.0 ± 1.4</td>' in html


def test_the_group_page_shows_the_hidden_session_without_a_number(signed_in, group, circle):
    html = page(signed_in.get(reverse("group_detail", args=[group.pk])))

    second = html.split('<th scope="row">Second evening</th>')[1].split("</tr>")[0]
    assert second == '<td class="number">hidden</td><td class="number">hidden</td>'
    assert html.count("<title>Check-in,") == 2
    assert html.count("<title>Check-out,") == 2


def test_the_group_page_shows_attendance_in_the_table(signed_in, group, circle):
    html = page(signed_in.get(reverse("group_detail", args=[group.pk])))

    first = html.split("Most present at once</th>")[1]
    assert (
        '<th scope="row">First evening</th><td class="number">4</td><td class="number">4</td>'
        in first
    )
    assert "<title>4 Mar 2025: 4 joined, at most 4 at once</title>" in html


def test_a_new_group_page_tells_how_to_attach_sessions(signed_in, group):
    html = page(signed_in.get(reverse("group_detail", args=[group.pk])))

    assert "No sessions in this group yet" in html
    assert "under <strong>Group</strong> in its settings" in html
    assert 'role="img"' not in html


def test_a_draft_in_the_group_is_listed_but_not_in_the_trend(signed_in, group):
    draft = Session.objects.create(facilitator=group.facilitator, title="Next week", group=group)

    html = page(signed_in.get(reverse("group_detail", args=[group.pk])))

    assert f'href="{reverse("session_edit", args=[draft.pk])}"' in html
    assert group_trend(group).sessions == []


def test_the_group_list_shows_only_the_facilitators_own_groups(signed_in, group, other_facilitator):
    Group.objects.create(facilitator=other_facilitator, name="Circle of Bob")

    html = page(signed_in.get(reverse("group_list")))

    assert "Tuesday evening circle" in html
    assert "Circle of Bob" not in html


def test_the_dashboard_links_to_groups_and_names_a_sessions_group(signed_in, group, circle):
    html = page(signed_in.get(reverse("dashboard")))

    assert f'href="{reverse("group_list")}"' in html
    assert html.count(f'href="{reverse("group_detail", args=[group.pk])}"') == 3


# Creating, editing and attaching -------------------------------------------------------------


def test_a_facilitator_creates_a_group(signed_in, facilitator):
    response = signed_in.post(reverse("group_create"), {"name": "Thursday walkers"})

    created = Group.objects.get()
    assert response.status_code == 302
    assert response.url == reverse("group_detail", args=[created.pk])
    assert (created.facilitator, created.name, created.keep_pseudonyms) == (
        facilitator,
        "Thursday walkers",
        False,
    )


def test_a_group_needs_a_name(signed_in):
    response = signed_in.post(reverse("group_create"), {"name": ""})

    assert response.status_code == 400
    assert "This field is required." in page(response)
    assert not Group.objects.exists()


def test_a_facilitator_renames_a_group(signed_in, group):
    response = signed_in.post(
        reverse("group_edit", args=[group.pk]),
        {"name": "Wednesday circle", "keep_pseudonyms": "on"},
    )

    group.refresh_from_db()
    assert response.url == reverse("group_detail", args=[group.pk])
    assert (group.name, group.keep_pseudonyms) == ("Wednesday circle", True)


def session_settings(session: Session, **changes) -> dict:
    return {
        "title": session.title,
        "anonymity_threshold": session.anonymity_threshold,
        "retention_days": session.retention_days,
        **changes,
    }


def test_a_session_is_attached_to_a_group_in_its_settings(signed_in, group, session):
    response = signed_in.post(
        reverse("session_edit", args=[session.pk]), session_settings(session, group=group.pk)
    )

    session.refresh_from_db()
    assert response.status_code == 302
    assert session.group == group


def test_a_session_cannot_be_attached_to_another_facilitators_group(
    signed_in, session, other_facilitator
):
    bobs = Group.objects.create(facilitator=other_facilitator, name="Circle of Bob")

    response = signed_in.post(
        reverse("session_edit", args=[session.pk]), session_settings(session, group=bobs.pk)
    )

    session.refresh_from_db()
    assert response.status_code == 200
    assert "Select a valid choice" in page(response)
    assert "Circle of Bob" not in page(response)
    assert session.group is None


# Only one's own ------------------------------------------------------------------------------

GROUP_URLS = [
    ("get", "group_detail", {}),
    ("get", "group_edit", {}),
    ("post", "group_edit", {"name": "Taken over"}),
    ("get", "group_delete", {}),
    ("post", "group_delete", {}),
    ("post", "group_delete", {"delete_sessions": "1"}),
]


@pytest.mark.parametrize(
    ("method", "name", "data"), GROUP_URLS, ids=[f"{m}-{n}-{len(d)}" for m, n, d in GROUP_URLS]
)
def test_another_facilitators_group_is_not_found_and_left_unchanged(
    client, other_facilitator, group, circle, method, name, data
):
    client.force_login(other_facilitator)

    response = getattr(client, method)(reverse(name, args=[group.pk]), data)

    assert response.status_code == 404
    assert "Tuesday evening circle" not in page(response)
    assert Group.objects.get() == group
    assert Group.objects.get().name == "Tuesday evening circle"
    assert Session.objects.filter(group=group).count() == 3


@pytest.mark.parametrize(
    "url",
    ["group_list", "group_create", "group_detail", "group_edit", "group_delete"],
)
def test_the_group_pages_need_a_sign_in(client, group, url):
    args = [] if url in {"group_list", "group_create"} else [group.pk]

    response = client.get(reverse(url, args=args))

    assert response.status_code == 302
    assert response.url.startswith(reverse("login"))


# Deleting --------------------------------------------------------------------------------------


def member_in(group: Group, session: Session) -> Participant:
    """A phone that kept its nickname across the group's sessions."""
    member = Member.objects.create(group=group, pseudonym="Calm Otter", token_hash="0" * 64)
    participant = session.participants.first()
    participant.member = member
    participant.save(update_fields=["member"])
    return participant


def test_the_delete_page_offers_to_delete_the_sessions_too(signed_in, group, circle):
    html = page(signed_in.get(reverse("group_delete", args=[group.pk])))

    assert 'name="delete_sessions"' in html
    assert "Also delete its 3 sessions" in html
    assert Group.objects.filter(pk=group.pk).exists()


def test_deleting_a_group_keeps_its_sessions_detached(signed_in, group, circle):
    participant = member_in(group, circle[0])

    response = signed_in.post(reverse("group_delete", args=[group.pk]))

    assert response.url == reverse("group_list")
    assert not Group.objects.exists()
    assert not Member.objects.exists()
    assert list(Session.objects.order_by("pk").values_list("title", "group")) == [
        ("First evening", None),
        ("Second evening", None),
        ("Third evening", None),
    ]
    participant.refresh_from_db()
    assert participant.member is None


def test_deleting_a_group_with_the_box_ticked_deletes_its_sessions(
    signed_in, facilitator, group, circle
):
    member_in(group, circle[0])
    elsewhere = Session.objects.create(facilitator=facilitator, title="Not in the group")

    signed_in.post(reverse("group_delete", args=[group.pk]), {"delete_sessions": "1"})

    assert not Group.objects.exists()
    assert not Member.objects.exists()
    assert list(Session.objects.all()) == [elsewhere]
    assert not Participant.objects.exists()
    assert not Activity.objects.exists()


def test_a_live_session_deleted_with_its_group_closes_its_screens_after_commit(
    signed_in, group, circle, monkeypatch, django_capture_on_commit_callbacks
):
    running = Session.objects.create(facilitator=group.facilitator, title="Tonight", group=group)
    running.start()
    closed: list[int] = []
    monkeypatch.setattr("sessions.live.close_session", closed.append)

    with django_capture_on_commit_callbacks(execute=True):
        signed_in.post(reverse("group_delete", args=[group.pk]), {"delete_sessions": "1"})

    assert closed == [running.pk]
    assert not Session.objects.exists()
