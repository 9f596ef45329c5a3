"""A recurring group looked back on: check-in, check-out and attendance across its sessions.

The figures are each session's before-and-after comparisons (sessions/review.py), summarized
from the tallies with the session's own anonymity threshold, so nothing shows here that its
summary would hide. The charts' geometry is worked out here, in SVG units, so that the
templates only draw.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from itertools import count

from django.utils import timezone
from django.utils.formats import date_format
from django.utils.translation import gettext as _

from .aggregation import summarize
from .models import Activity, Group, Session
from .review import Comparison, Step, comparisons


@dataclass(frozen=True)
class Figure:
    """One scale in one session: its mean and spread, both None when hidden or not asked."""

    mean: float | None = None
    spread: float | None = None
    hidden: bool = False  # asked, but answered by fewer than the session's threshold

    @classmethod
    def of(cls, step: Step) -> Figure:
        """A scale never opened in its session was not asked; one too few answered, hidden."""
        result = step.result
        if step.skipped:
            return cls()
        return cls(hidden=True) if result.hidden else cls(result.mean, result.spread)

    @property
    def label(self) -> str:
        if self.hidden:
            return _("hidden")
        if self.mean is None:
            return _("not asked")
        return f"{self.mean} ± {self.spread}"


@dataclass(frozen=True)
class SessionRow:
    session: Session
    joined: int
    peak_present: int

    @property
    def date(self) -> str:
        return date_format(timezone.localtime(self.session.started_at), "j M Y")

    @property
    def short_date(self) -> str:
        return date_format(timezone.localtime(self.session.started_at), "j M")


@dataclass(frozen=True)
class Reading:
    """One session's check-in and check-out of one measure."""

    row: SessionRow
    check_in: Figure
    check_out: Figure


@dataclass
class MeasureTrend:
    """One measure, asked on the same scale, across the group's sessions."""

    measure: str
    scale: Activity  # where it was first asked: the scale's ends and their labels
    readings: list[Reading]

    @property
    def name(self) -> str:
        return self.measure.replace("-", " ").capitalize()

    @cached_property
    def chart(self) -> ScaleChart:
        return scale_chart(self)


@dataclass
class Trend:
    group: Group
    sessions: list[SessionRow]  # started ones, in date order
    measures: list[MeasureTrend]

    @cached_property
    def attendance(self) -> AttendanceChart:
        return attendance_chart(self.sessions)


def group_trend(group: Group) -> Trend:
    rows: list[SessionRow] = []
    # (measure, scale_min, scale_max) -> session id -> that session's comparison. Only the
    # same scale makes one trend: a 1-10 and a 0-5 answer cannot share an axis.
    asked: dict[tuple[str, int, int], dict[int, Comparison]] = {}
    for session in group.sessions_in_order():
        rows.append(SessionRow(session, session.joined_count(), session.peak_present))
        for comparison in _comparisons(session):
            scale = comparison.before.activity
            key = (comparison.measure, scale.scale_min, scale.scale_max)
            asked.setdefault(key, {})[session.pk] = comparison
    measures = [
        MeasureTrend(
            measure=measure,
            scale=next(iter(by_session.values())).before.activity,
            readings=[_reading(row, by_session.get(row.session.pk)) for row in rows],
        )
        for (measure, *_ends), by_session in asked.items()
    ]
    return Trend(group, rows, measures)


def _comparisons(session: Session) -> list[Comparison]:
    """The session's before-and-after scales, as its summary shows them."""
    threshold = session.anonymity_threshold
    scales = session.activities.filter(kind=Activity.Kind.SCALE).exclude(measure="")
    return comparisons([Step(scale, summarize(scale, threshold)) for scale in scales])


def _reading(row: SessionRow, comparison: Comparison | None) -> Reading:
    if comparison is None:
        return Reading(row, Figure(), Figure())
    return Reading(row, Figure.of(comparison.before), Figure.of(comparison.after))


# Charts ------------------------------------------------------------------------------------

MOST_DATE_LABELS = 12  # more sessions than this: only every so many dates are written


@dataclass(frozen=True)
class Tick:
    at: float  # where along its axis, in SVG units
    label: str


@dataclass(frozen=True)
class Axes:
    """Sessions along x and values from `low` to `high` up y, mapped onto the plot area."""

    sessions: list[SessionRow]
    low: float
    high: float
    step: float  # between the value ticks

    # The layout, in SVG units: the SVG scales to the page's width.
    width = 640
    height = 280
    left = 56  # the plot area; the margins hold the labels and the axis titles
    right = 624
    top = 16
    bottom = 232
    value_label_x = left - 8
    date_label_y = bottom + 18
    x_title_y = height - 6

    @property
    def slot(self) -> float:
        """The width each session has along x."""
        return (self.right - self.left) / len(self.sessions)

    def x(self, index: int) -> float:
        return round(self.left + (index + 0.5) * self.slot, 1)

    def y(self, value: float) -> float:
        share = (value - self.low) / (self.high - self.low)
        return round(self.bottom - share * (self.bottom - self.top), 1)

    @property
    def value_ticks(self) -> list[Tick]:
        steps = round((self.high - self.low) / self.step)
        values = [self.low + index * self.step for index in range(steps + 1)]
        return [Tick(self.y(value), f"{value:g}") for value in values]

    @property
    def date_ticks(self) -> list[Tick]:
        every = math.ceil(len(self.sessions) / MOST_DATE_LABELS)
        return [
            Tick(self.x(index), row.short_date)
            for index, row in enumerate(self.sessions)
            if index % every == 0
        ]

    @property
    def middle_x(self) -> float:
        return (self.left + self.right) / 2

    @property
    def middle_y(self) -> float:
        return (self.top + self.bottom) / 2


@dataclass(frozen=True)
class Marker:
    """A mean, with its vertical line from one spread below to one spread above."""

    x: float
    y: float
    low: float
    high: float
    title: str


CIRCLE = "m-4.5 0 a4.5 4.5 0 1 0 9 0 a4.5 4.5 0 1 0 -9 0"
SQUARE = "m-4 -4 h8 v8 h-8 z"
# The two series sit a little apart, so that their spread lines do not cover each other.
SERIES_OFFSET = 5


@dataclass
class Series:
    axes: Axes
    name: str
    css_class: str
    shape: str  # the marker, as SVG path steps from its centre: a print need not be in colour
    offset: float
    figures: list[Figure]  # one per session

    @cached_property
    def markers(self) -> list[Marker | None]:
        """One per session; None where it is hidden or was not asked: a gap."""
        return [
            None if figure.mean is None else self._marker(index, row, figure.mean, figure.spread)
            for index, (row, figure) in enumerate(
                zip(self.axes.sessions, self.figures, strict=True)
            )
        ]

    def _marker(self, index: int, row: SessionRow, mean: float, spread: float | None) -> Marker:
        axes = self.axes
        return Marker(
            x=round(axes.x(index) + self.offset, 1),
            y=axes.y(mean),
            low=axes.y(max(axes.low, mean - (spread or 0))),
            high=axes.y(min(axes.high, mean + (spread or 0))),
            title=_("%(series)s, %(date)s: mean %(mean)s, spread %(spread)s")
            % {"series": self.name, "date": row.date, "mean": mean, "spread": spread},
        )

    @property
    def lines(self) -> list[str]:
        """Polyline points joining the markers, one line per run of sessions without a gap."""
        runs: list[list[str]] = [[]]
        for marker in self.markers:
            if marker is None:
                runs.append([])
            else:
                runs[-1].append(f"{marker.x},{marker.y}")
        return [" ".join(run) for run in runs if len(run) > 1]


@dataclass(frozen=True)
class ScaleChart:
    axes: Axes
    series: list[Series]


def scale_chart(trend: MeasureTrend) -> ScaleChart:
    scale = trend.scale
    axes = Axes([reading.row for reading in trend.readings], scale.scale_min, scale.scale_max, 1)
    check_in = [reading.check_in for reading in trend.readings]
    check_out = [reading.check_out for reading in trend.readings]
    return ScaleChart(
        axes,
        [
            Series(axes, _("Check-in"), "check-in", CIRCLE, -SERIES_OFFSET, check_in),
            Series(axes, _("Check-out"), "check-out", SQUARE, SERIES_OFFSET, check_out),
        ],
    )


@dataclass(frozen=True)
class AttendanceBar:
    x: float  # left edge
    width: float
    y: float  # top: the number who joined
    height: float
    peak_y: float  # the most present at once
    title: str


@dataclass(frozen=True)
class AttendanceChart:
    axes: Axes
    bars: list[AttendanceBar]


def attendance_chart(rows: list[SessionRow]) -> AttendanceChart:
    largest = max([row.joined for row in rows] + [row.peak_present for row in rows] + [1])
    step = _round_step(largest)
    axes = Axes(rows, 0, math.ceil(largest / step) * step, step)
    width = round(axes.slot * 0.6, 1)
    bars = [
        AttendanceBar(
            x=round(axes.x(index) - width / 2, 1),
            width=width,
            y=axes.y(row.joined),
            height=round(axes.bottom - axes.y(row.joined), 1),
            peak_y=axes.y(row.peak_present),
            title=_("%(date)s: %(joined)s joined, at most %(peak)s at once")
            % {"date": row.date, "joined": row.joined, "peak": row.peak_present},
        )
        for index, row in enumerate(rows)
    ]
    return AttendanceChart(axes, bars)


def _round_step(largest: int) -> int:
    """1, 2, 5, 10, 20, 50…: the first that needs at most five steps to reach `largest`."""
    steps = (digit * 10**power for power in count() for digit in (1, 2, 5))
    return next(step for step in steps if step * 5 >= largest)
