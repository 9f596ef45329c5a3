"""A session looked back on: what the summary page, the PDF and the JSON export show."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.utils.translation import gettext as _

from .aggregation import ProfileBar, Result, profile, summarize
from .models import Activity, Session, planned_seconds


@dataclass
class Step:
    activity: Activity
    result: Result | None  # None for a step that takes no answers
    profile: list[ProfileBar] = field(default_factory=list)
    open_now: bool = False

    @property
    def responses(self) -> int:
        """Everyone who answered or passed."""
        return self.result.answered + self.result.passed if self.result else 0

    @property
    def skipped(self) -> bool:
        """A question nobody could answer: never opened, or passed over at once. (One open now
        counts its time only once it closes.)"""
        return (
            self.result is not None
            and not self.responses
            and not self.actual_seconds
            and not self.open_now
        )

    @property
    def result_state(self) -> str | None:
        """Whether a question's result shows: "shown", "below_threshold" (too few answered) or
        "not_opened"; None for a step that takes no answers."""
        if self.result is None:
            return None
        if self.skipped:
            return "not_opened"
        return "below_threshold" if self.result.hidden else "shown"

    @property
    def planned_seconds(self) -> int | None:
        return self.activity.suggested_seconds

    @property
    def actual_seconds(self) -> int:
        return self.activity.actual_seconds


@dataclass
class Comparison:
    """The same scale asked at the start and at the end of the session."""

    measure: str
    before: Step
    after: Step

    @property
    def sides(self) -> list[tuple[str, Step]]:
        return [(_("Before"), self.before), (_("After"), self.after)]

    @property
    def shown(self) -> bool:
        return not (self.before.result.hidden or self.after.result.hidden)

    @property
    def mean_change(self) -> float | None:
        return _change(self.before.result.mean, self.after.result.mean) if self.shown else None

    @property
    def median_change(self) -> float | None:
        return _change(self.before.result.median, self.after.result.median) if self.shown else None


@dataclass
class Review:
    session: Session
    joined: int
    peak_present: int
    steps: list[Step]
    comparisons: list[Comparison]

    @property
    def planned_seconds(self) -> int:
        return planned_seconds(step.activity for step in self.steps)

    @property
    def actual_seconds(self) -> int:
        return sum(step.actual_seconds for step in self.steps)


def review(session: Session) -> Review:
    threshold = session.anonymity_threshold
    steps = [
        Step(
            activity,
            summarize(activity, threshold),
            open_now=activity.pk == session.current_activity_id,
        )
        if activity.takes_answers
        else Step(activity, None, profile(activity.profile_scales(), threshold))
        for activity in session.activities_in_order()
    ]
    peak_present = session.peak_present
    if session.is_live:  # the peak is written every few seconds; phones connected now count
        peak_present = max(peak_present, session.joined_and_present_counts()[1])
    return Review(
        session=session,
        joined=session.joined_count(),
        peak_present=peak_present,
        steps=steps,
        comparisons=comparisons(steps),
    )


def comparisons(steps: list[Step]) -> list[Comparison]:
    """For each measure asked on the same scale more than once: its first and its last time."""
    by_measure: dict[str, list[Step]] = {}
    for step in steps:
        activity = step.activity
        if activity.kind == Activity.Kind.SCALE and activity.measure:
            by_measure.setdefault(activity.measure, []).append(step)
    return [
        Comparison(measure, asked[0], asked[-1])
        for measure, asked in by_measure.items()
        if len(asked) > 1 and _same_scale(asked[0].activity, asked[-1].activity)
    ]


def _same_scale(first: Activity, last: Activity) -> bool:
    return (first.scale_min, first.scale_max) == (last.scale_min, last.scale_max)


def _change(before: float | None, after: float | None) -> float | None:
    if before is None or after is None:
        return None
    return round(after - before, 1)
