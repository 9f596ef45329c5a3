"""How the answers to one activity become the result shown live and in the summary."""

from __future__ import annotations

import hashlib
import statistics
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

from .models import OPEN_TEXT_MIN_ANSWERS, Activity, Answer

WORD_SIZES = 5


@dataclass(frozen=True)
class Bar:
    label: str
    count: int
    percent: int


@dataclass(frozen=True)
class Word:
    text: str
    count: int
    size: int  # 1 (rarest) to WORD_SIZES (most frequent)


@dataclass(frozen=True)
class OpenText:
    """An open-text answer as the facilitator moderates it."""

    answer_id: int
    text: str
    moderation: str

    @property
    def approved(self) -> bool:
        return self.moderation == Answer.Moderation.APPROVED

    @property
    def pending(self) -> bool:
        return self.moderation == Answer.Moderation.PENDING


@dataclass
class Result:
    activity: Activity
    threshold: int
    answered: int = 0
    passed: int = 0
    bars: list[Bar] = field(default_factory=list)
    mean: float | None = None
    median: float | None = None
    spread: float | None = None  # standard deviation of a scale's answers
    words: list[Word] = field(default_factory=list)
    # Words the facilitator took off the projector, as they were counted.
    hidden_words: list[Word] = field(default_factory=list)
    # Approved open texts, without pseudonyms and shuffled: neither who wrote one nor when
    # may show.
    texts: list[str] = field(default_factory=list)
    # Every open text that may be shown, for the facilitator to approve or hide.
    to_moderate: list[OpenText] = field(default_factory=list)
    # Open words that may signal a crisis: for the facilitator's eyes only, never projected.
    flagged: list[str] = field(default_factory=list)
    # How many answers were flagged, from the tallies: still known once the retention rule has
    # deleted the answers (and with them the texts in `flagged`).
    flagged_count: int = 0

    @property
    def shown_count(self) -> int:
        """The answers that count toward the result: flagged ones are for the facilitator only.

        Every count next to a result or the threshold (projector, control view, summary,
        exports) is this one, so that "N answered" never reaches the threshold while the
        result stays hidden.
        """
        return self.answered - self.flagged_count

    @property
    def hidden(self) -> bool:
        """Too few answers to show without pointing at someone."""
        return self.shown_count < self.threshold

    @property
    def awaiting_approval(self) -> int:
        return sum(text.pending for text in self.to_moderate)


def summarize(activity: Activity, threshold: int) -> Result:
    """The result of `activity`, hidden while fewer than `threshold` people have answered.

    Open text needs at least OPEN_TEXT_MIN_ANSWERS whatever the session's threshold. The counts
    come from the activity's tallies (see Tally), kept as answers arrive; answers themselves are
    read only for the texts: flagged ones, and open text to moderate.
    """
    if activity.kind == Activity.Kind.OPEN_TEXT:
        threshold = max(threshold, OPEN_TEXT_MIN_ANSWERS)
    result = Result(activity=activity, threshold=threshold)
    tallies = dict(activity.tallies.values_list("key", "count"))
    result.answered = tallies.get("answered", 0)
    result.passed = tallies.get("passed", 0)
    result.flagged_count = tallies.get("flagged", 0)
    if result.flagged_count:
        flagged = activity.answers.filter(flagged=True).order_by("pk")
        result.flagged = sorted(
            (_as_text(value) for value in flagged.values_list("value", flat=True)),
            key=str.casefold,
        )

    if activity.is_choice:
        picked = _counted(tallies, "option")
        result.bars = [
            Bar(option, picked[str(index)], _percent(picked[str(index)], result.answered))
            for index, option in enumerate(activity.options)
        ]
    elif activity.kind == Activity.Kind.SCALE:
        points = Counter({int(point): count for point, count in _counted(tallies, "point").items()})
        result.bars = [
            Bar(str(point), points[point], _percent(points[point], result.answered))
            for point in activity.scale_values()
        ]
        if points.total():
            mean = statistics.fmean(list(points), weights=list(points.values()))
            result.mean = round(mean, 1)
            result.median = _median(points)
            variance = sum(count * (point - mean) ** 2 for point, count in points.items())
            result.spread = round((variance / points.total()) ** 0.5, 1)
    elif activity.kind == Activity.Kind.WORD_CLOUD:
        words = _counted(tallies, "word")
        hidden = set(activity.hidden_words)
        result.words = _sized_words(Counter({w: n for w, n in words.items() if w not in hidden}))
        result.hidden_words = [Word(w, words[w], 1) for w in sorted(hidden) if words[w]]
    elif activity.is_open_text:
        shown = list(activity.answers.filter(passed=False, flagged=False).order_by("pk"))
        result.to_moderate = [
            OpenText(answer.pk, answer.value, answer.moderation) for answer in shown
        ]
        result.texts = [
            answer.value
            for answer in sorted(shown, key=_shuffled)
            if answer.moderation == Answer.Moderation.APPROVED
        ]
    return result


def _counted(tallies: dict[str, int], name: str) -> Counter[str]:
    """The tallies "<name>:<what>" as counts by what, without those changed back to 0."""
    prefix = f"{name}:"
    return Counter(
        {
            key.removeprefix(prefix): count
            for key, count in tallies.items()
            if key.startswith(prefix) and count
        }
    )


def _median(counts: Counter[int]) -> float:
    """statistics.median of the values counted, without listing each one."""
    total = counts.total()

    def value_at(position: int) -> int:
        seen = 0
        for value in sorted(counts):
            seen += counts[value]
            if position < seen:
                return value
        raise IndexError(position)

    if total % 2:
        return value_at(total // 2)
    middle = (value_at(total // 2 - 1) + value_at(total // 2)) / 2
    return int(middle) if middle.is_integer() else middle  # "7", not "7.0", beside "4"


def _as_text(value: Any) -> str:
    """A flagged answer as the facilitator reads it: open text, or the words of a word cloud."""
    return value if isinstance(value, str) else " ".join(value)


def _shuffled(answer: Answer) -> str:
    """A fixed random order: it hides the order of arrival, and a new text shown on the
    projector does not make the others jump around."""
    return hashlib.sha256(f"{settings.SECRET_KEY}:{answer.pk}".encode()).hexdigest()


def _percent(count: int, total: int) -> int:
    return round(100 * count / total) if total else 0


def _sized_words(counts: Counter[str]) -> list[Word]:
    if not counts:
        return []
    most, least = max(counts.values()), min(counts.values())
    # Most frequent first, then alphabetical, so ties always show in the same order.
    ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    if most == least:
        return [Word(text, count, (WORD_SIZES + 1) // 2) for text, count in ordered]
    return [
        Word(text, count, 1 + round((WORD_SIZES - 1) * (count - 1) / (most - 1)))
        for text, count in ordered
    ]


@dataclass(frozen=True)
class ProfileBar:
    label: str
    mean: float | None  # None while the scale is hidden under the threshold
    percent: int  # where the mean sits between the scale's ends


def profile(scales: list[Activity], threshold: int) -> list[ProfileBar]:
    """The group's mean on each of several scales: one chart for a self-check of several parts."""
    bars = []
    for scale in scales:
        result = summarize(scale, threshold)
        # "Self-awareness: I usually notice..." is labelled "Self-awareness".
        label = scale.prompt.split(":", 1)[0] if ":" in scale.prompt else scale.prompt
        if result.hidden or result.mean is None:
            bars.append(ProfileBar(label, None, 0))
        else:
            span = scale.scale_max - scale.scale_min
            bars.append(
                ProfileBar(label, result.mean, round(100 * (result.mean - scale.scale_min) / span))
            )
    return bars
